//! The scan gate: nothing with unacceptable vulnerabilities, and nothing whose scan has not
//! finished, gets a PASSED verdict.
//!
//! - [`FindingsSource`] is the port: the scan state of one platform manifest and its findings.
//!   Adapters: `promotion_aws::inspector::InspectorSource` (Amazon Inspector, in the AWS adapter crate)
//!   and [`findings::FileSource`] (the JSON `aws inspector2 list-findings` prints).
//! - [`policy::Policy`] says what blocks; [`evaluate`] applies it to every platform of an image
//!   and answers a [`verdict::Verdict`]: PASSED, FAILED or PENDING with a compact summary.
//! - Inspector scans image manifests, not indexes: callers pass every image of the one
//!   selection ([`crate::selection`]; [`resolve_platforms`] reads it through a [`Registry`]).
//! - Findings keep arriving after a scan reports success, so a PASSED verdict needs two reads
//!   at least `settle_seconds` apart that agree ([`verdict::settle`]); the caller carries the
//!   previous [`verdict::Observation`] between calls (state-machine state, or a loop in the CLI).
//! - An error is never a PASSED verdict: every failure to know is an `Err`.

pub mod findings;
pub mod policy;
pub mod time;
pub mod verdict;

pub use findings::{FileSource, Finding, Severity};
pub use policy::{Policy, PolicyError, Rules};
pub use verdict::{Decision, Observation, Verdict};

use crate::clock::Clock;
use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::reference::ImageRef;
use crate::registry::Registry;
use crate::selection::{Limits, Selection, SelectionError, select};
use async_trait::async_trait;
use std::fmt;

/// One platform manifest, as Inspector knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedImage {
    /// Registry account id (the `ecrImageRegistry` filter), when known.
    pub registry: Option<String>,
    /// Plain repository name (`team/app`).
    pub repository: String,
    /// The platform manifest digest (never an index digest: Inspector does not scan indexes).
    pub digest: Digest,
    /// `linux/amd64`, for reports, when known.
    pub platform: Option<String>,
}

impl fmt::Display for ScannedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repository, self.digest)?;
        if let Some(p) = &self.platform {
            write!(f, " ({p})")?;
        }
        Ok(())
    }
}

/// Where Inspector is with one image (ListCoverage `scanStatus.reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    /// Not scanned yet: no coverage record, `PENDING_INITIAL_SCAN`, `SCAN_IN_PROGRESS`,
    /// `PENDING_REVIVAL_SCAN`. The reason code is kept for reports.
    Pending(String),
    /// `SUCCESSFUL` (and `SCAN_FREQUENCY_SCAN_ON_PUSH`: scanned once): findings are readable.
    Scanned,
    /// Inspector will not scan it: `UNSUPPORTED_OS`, `UNSUPPORTED_MEDIA_TYPE`,
    /// `SCAN_ELIGIBILITY_EXPIRED`, `SCAN_FREQUENCY_MANUAL`, `EXCLUDED_BY_TAG`, `IMAGE_ARCHIVED`,
    /// `INVALID_ARTIFACT`, …
    Unscannable(String),
    /// The scan failed: `ACCESS_DENIED`, `ACCESS_DENIED_TO_ENCRYPTION_KEY`, `INTERNAL_ERROR`,
    /// or a reason this code does not know.
    Error(String),
}

/// The reason code Inspector reports when it has no coverage record for an image.
pub const NO_COVERAGE_RECORD: &str = "NO_COVERAGE_RECORD";

impl ScanState {
    /// Map a ListCoverage `scanStatus.reason` onto a state. Unknown reasons are errors: the gate
    /// never guesses that an image it cannot classify is scanned.
    pub fn from_reason(reason: &str) -> ScanState {
        match reason {
            "PENDING_INITIAL_SCAN" | "SCAN_IN_PROGRESS" | "PENDING_REVIVAL_SCAN" => {
                ScanState::Pending(reason.to_owned())
            }
            "SUCCESSFUL" | "SCAN_FREQUENCY_SCAN_ON_PUSH" => ScanState::Scanned,
            "UNSUPPORTED_OS"
            | "UNSUPPORTED_MEDIA_TYPE"
            | "SCAN_ELIGIBILITY_EXPIRED"
            | "SCAN_FREQUENCY_MANUAL"
            | "EXCLUDED_BY_TAG"
            | "IMAGE_ARCHIVED"
            | "INVALID_ARTIFACT"
            | "IMAGE_SIZE_EXCEEDED"
            | "NO_RESOURCES_FOUND"
            | "UNSUPPORTED_CONFIG_FILE"
            | "UNSUPPORTED_MEDIA_TYPE_FOR_IMAGE" => ScanState::Unscannable(reason.to_owned()),
            other => ScanState::Error(other.to_owned()),
        }
    }
}

/// Where the scan of one image is, and when it last completed (when the source says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The state.
    pub state: ScanState,
    /// When the last scan completed (Inspector's `lastScannedAt`).
    pub completed_at: Option<std::time::SystemTime>,
}

/// Reads scan state and findings for one platform manifest.
#[async_trait]
pub trait FindingsSource: Send + Sync {
    /// Where the scan of `image` is.
    async fn scan_state(&self, image: &ScannedImage) -> Result<ScanState, GateError>;

    /// [`FindingsSource::scan_state`] with the completion time, when the source knows it
    /// (default: unknown).
    async fn coverage(&self, image: &ScannedImage) -> Result<Coverage, GateError> {
        Ok(Coverage {
            state: self.scan_state(image).await?,
            completed_at: None,
        })
    }

    /// The findings of `image`: ACTIVE and SUPPRESSED ones (the gate counts SUPPRESSED apart and
    /// ignores CLOSED). Findings of any other image must not be returned.
    async fn findings(&self, image: &ScannedImage) -> Result<Vec<Finding>, GateError>;

    /// Whether every read returns the same complete snapshot (a file): then there is nothing
    /// to settle.
    fn is_snapshot(&self) -> bool {
        false
    }
}

/// A source whose every image counts as scanned: for stand-ins without Inspector's
/// ListCoverage (moto_server) only — never for real gating, where an unscanned image must stay
/// PENDING.
pub struct AssumeScanned<S>(pub S);

#[async_trait]
impl<S: FindingsSource> FindingsSource for AssumeScanned<S> {
    async fn scan_state(&self, _: &ScannedImage) -> Result<ScanState, GateError> {
        Ok(ScanState::Scanned)
    }
    async fn findings(&self, image: &ScannedImage) -> Result<Vec<Finding>, GateError> {
        self.0.findings(image).await
    }
}

/// Gate failures. None of them is ever turned into a PASSED verdict.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The findings service failed in a way worth retrying (throttling, 5xx, network).
    #[error("{what}: {detail}")]
    Unavailable {
        /// The call.
        what: String,
        /// Why.
        detail: String,
    },
    /// The findings service refused the caller (IAM).
    #[error("{what}: access denied: {detail}")]
    Unauthorized {
        /// The call.
        what: String,
        /// Why.
        detail: String,
    },
    /// Findings that are not in Inspector's shape (a bad file, an unknown severity).
    #[error("{source_name}: {detail}")]
    FindingsInvalid {
        /// `findings file`, `ListFindings`, …
        source_name: String,
        /// What is wrong, and where.
        detail: String,
    },
    /// Inspector could not scan the image.
    #[error("Inspector could not scan {image}: {reason}")]
    ScanFailed {
        /// The platform manifest.
        image: String,
        /// The coverage reason (`ACCESS_DENIED`, `INTERNAL_ERROR`, …).
        reason: String,
    },
    /// Nothing to gate: the image has no scannable platform manifest.
    #[error("{image} has no platform manifest to gate")]
    NoPlatforms {
        /// The image.
        image: String,
    },
    /// Selecting the image's manifests failed: the registry, or a tree the selection refuses.
    #[error("selecting the manifests to gate: {0}")]
    Selection(#[from] SelectionError),
    /// The policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The verdict is FAILED (for callers that turn a denial into an error).
    #[error("gate denied: {0}")]
    Denied(String),
    /// Still PENDING after the policy's maximum wait.
    #[error("still pending after {waited_seconds} s: {message}")]
    Timeout {
        /// How long the caller waited.
        waited_seconds: u64,
        /// The last verdict's sentence.
        message: String,
    },
}

impl Classify for GateError {
    fn error_type(&self) -> ErrorType {
        match self {
            GateError::Unavailable { .. } => ErrorType::FindingsUnavailable,
            GateError::Unauthorized { .. } => ErrorType::FindingsUnauthorized,
            GateError::FindingsInvalid { .. } => ErrorType::FindingsInvalid,
            GateError::ScanFailed { .. } => ErrorType::ScanFailed,
            GateError::NoPlatforms { .. } => ErrorType::ImageInvalid,
            GateError::Selection(e) => e.error_type(),
            GateError::Policy(e) => e.error_type(),
            GateError::Denied(_) => ErrorType::GateDenied,
            GateError::Timeout { .. } => ErrorType::GateTimeout,
        }
    }
}

/// The image manifests of `image` (tag or digest) as the one selection finds them
/// ([`crate::selection`]: nested indexes walked, only provable attestations left out, hostile
/// trees refused), each as a [`ScannedImage`] in `image`'s repository and `account`.
pub async fn resolve_platforms(
    registry: &dyn Registry,
    image: &ImageRef,
    account: Option<&str>,
    limits: &Limits,
) -> Result<(Digest, Vec<ScannedImage>), GateError> {
    let selection = select(registry, image, limits).await?;
    Ok((
        selection.top().raw.digest.clone(),
        scanned_images(&selection, image, account),
    ))
}

/// The images of a selection, as Inspector knows them.
pub fn scanned_images(
    selection: &Selection,
    image: &ImageRef,
    account: Option<&str>,
) -> Vec<ScannedImage> {
    selection
        .images()
        .map(|m| ScannedImage {
            registry: account.map(str::to_owned),
            repository: image.repository().to_owned(),
            digest: m.raw.digest.clone(),
            platform: m.platform.as_ref().map(ToString::to_string),
        })
        .collect()
}

/// Gate every platform of one image once: read scan states and findings through `source`,
/// apply `rules`, and answer PASSED, FAILED or PENDING.
///
/// `previous` is the [`Observation`] carried from the last call (in `Verdict::observation`);
/// PASSED needs every platform scanned and, unless settling is off or the source is a
/// snapshot, a previous observation at least `settle_seconds` old that agrees with this read.
/// FAILED is answered as soon as a scanned platform has a blocking finding or a platform is
/// unscannable and the policy does not allow it.
pub async fn evaluate(
    source: &dyn FindingsSource,
    images: &[ScannedImage],
    rules: &Rules,
    clock: &dyn Clock,
    previous: Option<&Observation>,
) -> Result<Verdict, GateError> {
    if images.is_empty() {
        return Err(GateError::NoPlatforms {
            image: "the image".into(),
        });
    }
    let mut reads = Vec::with_capacity(images.len());
    for image in images {
        let Coverage {
            state,
            completed_at,
        } = source.coverage(image).await?;
        let findings = match &state {
            ScanState::Error(reason) => {
                return Err(GateError::ScanFailed {
                    image: image.to_string(),
                    reason: reason.clone(),
                });
            }
            ScanState::Scanned => {
                let mut all = source.findings(image).await?;
                // Defence in depth: stand-ins (and files) return findings of other images.
                all.retain(|f| f.is_for_digest(image.digest.as_str()));
                all
            }
            ScanState::Pending(_) | ScanState::Unscannable(_) => Vec::new(),
        };
        reads.push(verdict::PlatformRead {
            image: image.clone(),
            state,
            findings,
            completed_at,
        });
    }
    Ok(verdict::decide(
        &reads,
        rules,
        clock.now(),
        previous,
        source.is_snapshot(),
    ))
}

/// Gate `image` once, now, and accept nothing but PASSED: for the steps that must not take an
/// earlier verdict on faith (promote-and-annotate before writing to the trusted repository,
/// environment promotion against today's findings). No second read: the findings were settled
/// by the gate loop that came before, or have been standing for days; but a scan that completed
/// less than `settle_seconds` ago (when the source says when) is not settled, whoever calls, so
/// a direct invocation cannot skip the settle interval. FAILED is `Gate.Denied`; still PENDING
/// (a scan that has not finished or settled) is `Gate.Timeout`, with nothing waited.
pub async fn require_passed(
    selection: &Selection,
    image: &ImageRef,
    account: Option<&str>,
    source: &dyn FindingsSource,
    rules: &Rules,
    clock: &dyn Clock,
) -> Result<Verdict, GateError> {
    let platforms = scanned_images(selection, image, account);
    let settle = rules.settle_seconds;
    let mut rules = rules.clone();
    rules.settle_seconds = 0;
    let verdict = evaluate(source, &platforms, &rules, clock, None).await?;
    let age = verdict
        .last_scan_completed
        .map(|t| clock.now().duration_since(t).unwrap_or_default().as_secs());
    match verdict.decision {
        Decision::Passed if !source.is_snapshot() && age.is_some_and(|a| a < settle) => {
            Err(GateError::Timeout {
                waited_seconds: 0,
                message: format!(
                    "{image}: a scan completed {} s ago, less than the policy's settle_seconds \
                     ({settle}): findings may still be arriving",
                    age.unwrap_or_default()
                ),
            })
        }
        Decision::Passed => Ok(verdict),
        Decision::Failed => Err(GateError::Denied(format!("{image}: {}", verdict.message))),
        Decision::Pending => Err(GateError::Timeout {
            waited_seconds: 0,
            message: format!("{image}: {}", verdict.message),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    struct Fixed(ScanState);
    #[async_trait]
    impl FindingsSource for Fixed {
        async fn scan_state(&self, _: &ScannedImage) -> Result<ScanState, GateError> {
            Ok(self.0.clone())
        }
        async fn findings(&self, _: &ScannedImage) -> Result<Vec<Finding>, GateError> {
            Ok(Vec::new())
        }
    }

    fn image() -> ScannedImage {
        ScannedImage {
            registry: None,
            repository: "app".into(),
            digest: Digest::of(b"x"),
            platform: None,
        }
    }

    #[tokio::test]
    async fn errors_never_pass() {
        let rules = Rules {
            allow_unscannable: true,
            settle_seconds: 0,
            ..Rules::default()
        };
        let e = evaluate(
            &Fixed(ScanState::Error("ACCESS_DENIED".into())),
            &[image()],
            &rules,
            &SystemClock,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::ScanFailed);
        assert!(e.to_string().contains("ACCESS_DENIED"), "{e}");
        let e = evaluate(&Fixed(ScanState::Scanned), &[], &rules, &SystemClock, None)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::ImageInvalid);
        let v = evaluate(
            &Fixed(ScanState::Scanned),
            &[image()],
            &rules,
            &SystemClock,
            None,
        )
        .await
        .unwrap();
        assert_eq!(v.decision, Decision::Passed);
    }

    #[tokio::test]
    async fn resolves_index_platforms_without_attestations() {
        use crate::registry::memory::MemoryRegistry;
        use crate::selection::fixtures::{LAYER, entry, repo, tree};
        use serde_json::{Value, json};
        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        let amd = t.manifest(&[(LAYER, b"amd")], json!({}));
        let arm = t.manifest(&[(LAYER, b"arm")], json!({}));
        let att = t.attestation_of(&amd);
        let top = t.index(
            vec![
                entry(&amd, Some("linux/amd64"), Value::Null),
                entry(&arm, Some("linux/arm64/v8"), Value::Null),
                att,
            ],
            Some("1"),
        );
        let (digest, platforms) =
            resolve_platforms(&reg, &repo(), Some("123456789012"), &Limits::default())
                .await
                .unwrap();
        assert_eq!(digest, top.digest);
        let got: Vec<_> = platforms
            .iter()
            .map(|p| (p.digest.clone(), p.platform.clone().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (amd.digest, "linux/amd64".to_owned()),
                (arm.digest, "linux/arm64/v8".to_owned())
            ]
        );
        assert_eq!(platforms[0].repository, "quarantine/app");
        assert_eq!(platforms[0].registry.as_deref(), Some("123456789012"));
    }

    #[test]
    fn coverage_reasons_map_onto_states() {
        assert_eq!(ScanState::from_reason("SUCCESSFUL"), ScanState::Scanned);
        assert!(matches!(
            ScanState::from_reason("PENDING_REVIVAL_SCAN"),
            ScanState::Pending(_)
        ));
        assert!(matches!(
            ScanState::from_reason("EXCLUDED_BY_TAG"),
            ScanState::Unscannable(_)
        ));
        assert!(matches!(
            ScanState::from_reason("ACCESS_DENIED_TO_ENCRYPTION_KEY"),
            ScanState::Error(_)
        ));
        assert!(matches!(
            ScanState::from_reason("SOMETHING_NEW"),
            ScanState::Error(_)
        ));
    }
}
