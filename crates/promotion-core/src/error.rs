//! Stable error names: the contract between the Lambdas, the state machine and the CLI.
//!
//! Every module has its own `thiserror` enum; each of them maps its variants onto one of these
//! names through [`Classify`]. The state machine's `Retry`/`Catch` blocks match on the strings
//! (`ErrorEquals`), so they never change once published. [`ErrorType::ALL`] lists every name the
//! code can produce; a test checks each `ErrorEquals` in `statemachine/` against it.

use std::fmt;

/// A stable, dotted error name such as `Registry.Transient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// 429, 5xx, dropped connections, timeouts: worth retrying.
    RegistryTransient,
    /// The manifest, blob or repository does not exist.
    RegistryNotFound,
    /// 401/403, or credentials that could not be obtained.
    RegistryUnauthorized,
    /// The registry answered something the distribution spec does not allow.
    RegistryProtocol,
    /// Bytes did not hash to (or were not the size of) their descriptor.
    ImageDigestMismatch,
    /// A manifest that cannot be handled: unknown media type, malformed, too large.
    ImageInvalid,
    /// Malformed input: references, digests, tags, options, annotations.
    InputInvalid,
    /// The gate's verdict is FAILED: a finding blocks, or an image is unscannable and the
    /// policy does not allow it.
    GateDenied,
    /// The gate was still PENDING (scan not finished, findings not settled) after the policy's
    /// maximum wait.
    GateTimeout,
    /// The findings service (Inspector) failed in a way worth retrying: throttling, 5xx,
    /// network.
    FindingsUnavailable,
    /// The findings service refused the caller (IAM).
    FindingsUnauthorized,
    /// Findings not in Inspector's shape: a bad findings file, an unknown severity.
    FindingsInvalid,
    /// Inspector could not scan the image (`ACCESS_DENIED`, `INTERNAL_ERROR`, …).
    ScanFailed,
    /// The gate policy is invalid: unknown key, severity or date, missing reason.
    PolicyInvalid,
    /// A signature exists but does not verify (wrong key, tampered payload or signature, a
    /// payload for another digest).
    SignatureInvalid,
    /// No signature was found by any route (referrers API, fallback tag, `.sig` tag).
    SignatureMissing,
    /// KMS throttled the call or failed transiently: worth retrying.
    KmsThrottled,
    /// KMS refused the call (unknown or disabled key, no permission).
    KmsFailed,
    /// A key that cannot be used: wrong password, unsupported type, a KMS key that cannot sign.
    KeyInvalid,
    /// An environment tag already names another digest and the environment does not allow
    /// moving its tags.
    TagConflict,
    /// The target environment comes after one this digest has not been promoted to yet.
    EnvironmentOutOfOrder,
}

impl ErrorType {
    /// Every name the code can produce.
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::RegistryTransient,
        ErrorType::RegistryNotFound,
        ErrorType::RegistryUnauthorized,
        ErrorType::RegistryProtocol,
        ErrorType::ImageDigestMismatch,
        ErrorType::ImageInvalid,
        ErrorType::InputInvalid,
        ErrorType::GateDenied,
        ErrorType::GateTimeout,
        ErrorType::FindingsUnavailable,
        ErrorType::FindingsUnauthorized,
        ErrorType::FindingsInvalid,
        ErrorType::ScanFailed,
        ErrorType::PolicyInvalid,
        ErrorType::SignatureInvalid,
        ErrorType::SignatureMissing,
        ErrorType::KmsThrottled,
        ErrorType::KmsFailed,
        ErrorType::KeyInvalid,
        ErrorType::TagConflict,
        ErrorType::EnvironmentOutOfOrder,
    ];

    /// The stable string, as it appears in `errorType` and in `ErrorEquals`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::RegistryTransient => "Registry.Transient",
            ErrorType::RegistryNotFound => "Registry.NotFound",
            ErrorType::RegistryUnauthorized => "Registry.Unauthorized",
            ErrorType::RegistryProtocol => "Registry.Protocol",
            ErrorType::ImageDigestMismatch => "Image.DigestMismatch",
            ErrorType::ImageInvalid => "Image.Invalid",
            ErrorType::InputInvalid => "Input.Invalid",
            ErrorType::GateDenied => "Gate.Denied",
            ErrorType::GateTimeout => "Gate.Timeout",
            ErrorType::FindingsUnavailable => "Findings.Unavailable",
            ErrorType::FindingsUnauthorized => "Findings.Unauthorized",
            ErrorType::FindingsInvalid => "Findings.Invalid",
            ErrorType::ScanFailed => "Scan.Failed",
            ErrorType::PolicyInvalid => "Policy.Invalid",
            ErrorType::SignatureInvalid => "Signature.Invalid",
            ErrorType::SignatureMissing => "Signature.Missing",
            ErrorType::KmsThrottled => "Kms.Throttled",
            ErrorType::KmsFailed => "Kms.Failed",
            ErrorType::KeyInvalid => "Key.Invalid",
            ErrorType::TagConflict => "Tag.Conflict",
            ErrorType::EnvironmentOutOfOrder => "Environment.OutOfOrder",
        }
    }

    /// Whether a caller (a Step Functions `Retry`, the copy engine) should try again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorType::RegistryTransient | ErrorType::FindingsUnavailable | ErrorType::KmsThrottled
        )
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Maps a module's error onto its stable name.
pub trait Classify {
    /// The stable name of this error.
    fn error_type(&self) -> ErrorType;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_never_start_with_states() {
        let mut names: Vec<_> = ErrorType::ALL.iter().map(|e| e.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorType::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with("States.") && n.contains('.'))
        );
    }
}
