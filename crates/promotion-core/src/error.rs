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
    /// The target environment requires a signed approval and there is none for this digest
    /// (or the environment has no approvers).
    ApprovalMissing,
    /// Approvals exist for this digest, but none verifies: unsigned, signed by a key that is not
    /// an approver's, or for another digest, repository or environment.
    ApprovalInvalid,
    /// The CLI could not start or follow a Step Functions execution (`promote start`,
    /// `promote status`: the API refused or could not be reached, the state machine does not
    /// exist), or the execution ended without success for a reason that has no name here
    /// (`States.Timeout`, aborted, a Lambda service error); or a `promote sync` whose tags
    /// failed for different reasons. No function produces it.
    ExecutionFailed,
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
        ErrorType::ApprovalMissing,
        ErrorType::ApprovalInvalid,
        ErrorType::ExecutionFailed,
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
            ErrorType::ApprovalMissing => "Approval.Missing",
            ErrorType::ApprovalInvalid => "Approval.Invalid",
            ErrorType::ExecutionFailed => "Execution.Failed",
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

    /// Error names Step Functions and the Lambda service define themselves.
    const AWS_NAMES: &[&str] = &[
        "States.ALL",
        "States.TaskFailed",
        "States.Timeout",
        "States.Runtime",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        // The Step Functions service integration (statemachine/sync.asl.json's
        // startExecution.sync:2): `StepFunctions.<exception>`.
        "StepFunctions.ExecutionLimitExceededException",
        "StepFunctions.AWSStepFunctionsException",
        "StepFunctions.SdkClientException",
    ];

    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<(&'a str, &'a serde_json::Value)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    out.push((k.as_str(), x));
                    walk(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }

    /// Every `ErrorEquals` (and every Fail state's `Error`) in statemachine/ names an error the
    /// code can produce or one AWS defines; every name a `Retry` matches is a retryable one.
    #[test]
    fn the_state_machine_names_only_errors_the_code_can_produce() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachine");
        let ours: Vec<&str> = ErrorType::ALL.iter().map(|e| e.as_str()).collect();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".asl.json") {
                continue;
            }
            files += 1;
            let def: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut pairs = Vec::new();
            walk(&def, &mut pairs);
            let mut named = 0;
            for (key, value) in &pairs {
                let names: Vec<&str> = match *key {
                    "ErrorEquals" => value
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|n| n.as_str().unwrap())
                        .collect(),
                    "Error" if value.is_string() => vec![value.as_str().unwrap()],
                    _ => continue,
                };
                for n in names {
                    named += 1;
                    assert!(
                        ours.contains(&n) || AWS_NAMES.contains(&n),
                        "{}: {n:?} is neither in ErrorType::ALL nor an AWS-defined name",
                        path.display()
                    );
                }
            }
            assert!(
                named >= 5,
                "{}: found only {named} error names",
                path.display()
            );
            // Retry only what is worth retrying.
            for (key, value) in &pairs {
                if *key != "Retry" {
                    continue;
                }
                for retrier in value.as_array().unwrap() {
                    for n in retrier["ErrorEquals"].as_array().unwrap() {
                        let n = n.as_str().unwrap();
                        if let Some(e) = ErrorType::ALL.iter().find(|e| e.as_str() == n) {
                            assert!(e.is_retryable(), "{}: Retry on {n}", path.display());
                        }
                    }
                }
            }
        }
        assert!(files >= 1, "no statemachine/*.asl.json");
    }
}
