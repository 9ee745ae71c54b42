//! The five pipeline steps as the Lambdas (and `promote run`) perform them: typed requests and
//! results — the JSON that travels through the state machine — and one file per step:
//! [`copy`] (copy-to-quarantine), [`gate`] (scan-gate), [`promote`] (promote-and-annotate),
//! [`sign`] and [`retag`] (retag-for-environment). This file holds what they share: the error,
//! request parsing, and the repositories they may touch.
//!
//! State stays small: requests and results carry references (pinned to digests), tags and
//! compact summaries, never manifests or finding lists.
//!
//! Trust: nothing here takes an earlier step's word for what matters.
//! - promote-and-annotate re-runs the gate itself (no settling) before it writes to the trusted
//!   repository, so forged input claiming a PASSED verdict gets nothing in (docs/DESIGN.md, invariant 2);
//! - sign and retag act only on the trusted repository; retag verifies the pipeline's signature
//!   (which only exists after promote-and-annotate's own gate check) and, for an environment
//!   promotion, re-runs the gate with the target environment's rules.
//!
//! Requests refuse unknown fields, so a misspelt or forged field is an `Input.Invalid` naming it.

mod copy;
mod gate;
mod promote;
mod repos;
mod retag;
mod sign;
mod sources;
pub mod sync;
#[cfg(test)]
mod tests;

pub use copy::{CopyRequest, CopyResult, CopySettings, copy_to_quarantine};
pub use gate::{ApprovalRef, GateRequest, GateResult, GateSettings, scan_gate};
pub use promote::{PromoteRequest, PromoteResult, PromoteSettings, promote_and_annotate};
pub use repos::{Application, Repositories};
pub use retag::{RetagRequest, RetagResult, RetagSettings, retag_for_environment};
pub use sign::{SignRequest, SignResult, sign};
pub use sources::SourceRegistries;

use crate::annotate::AnnotateError;
use crate::copy::CopyError;
use crate::ecr::EcrRegistry;
use crate::environment::{EnvError, Environments};
use crate::error::{Classify, ErrorType};
use crate::gate::GateError;
use crate::mutate::MutateError;
use crate::reference::{ImageRef, ReferenceError};
use crate::registry::RegistryError;
use crate::selection::SelectionError;
use crate::sign::SignError;

/// Why a step failed; each maps onto a stable [`ErrorType`].
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    Input(String),
    /// A reference in the request is malformed.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Copying failed.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// A registry call failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The gate failed, denied or timed out.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// Promote-and-annotate failed.
    #[error(transparent)]
    Annotate(#[from] AnnotateError),
    /// Annotations or labels were refused.
    #[error(transparent)]
    Mutate(#[from] MutateError),
    /// Signing or verification failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Retag or environment promotion failed.
    #[error(transparent)]
    Environment(#[from] EnvError),
    /// The image's tree was refused ([`crate::selection`]).
    #[error(transparent)]
    Selection(#[from] SelectionError),
}

impl Classify for PipelineError {
    fn error_type(&self) -> ErrorType {
        match self {
            PipelineError::Input(_) => ErrorType::InputInvalid,
            PipelineError::Reference(e) => e.error_type(),
            PipelineError::Copy(e) => e.error_type(),
            PipelineError::Registry(e) => e.error_type(),
            PipelineError::Gate(e) => e.error_type(),
            PipelineError::Annotate(e) => e.error_type(),
            PipelineError::Mutate(e) => e.error_type(),
            PipelineError::Sign(e) => e.error_type(),
            PipelineError::Environment(e) => e.error_type(),
            PipelineError::Selection(e) => e.error_type(),
        }
    }
}

/// Parse a request from the state machine; the error names the field.
pub fn parse_request<T: serde::de::DeserializeOwned>(
    step: &str,
    value: serde_json::Value,
) -> Result<T, PipelineError> {
    serde_json::from_value(value)
        .map_err(|e| PipelineError::Input(format!("{step}: invalid input: {e}")))
}

/// A repository reference from configuration: registry and repository, no tag, no digest.
///
/// Checked by hand against the distribution grammar (`host[:port]/component(/component)*`, each
/// component `[a-z0-9]+([._-][a-z0-9]+)*`) rather than through the reference parser: that one
/// compiles a large regex on first use, which is most of a Lambda's cold start.
pub fn parse_repository(what: &str, s: &str) -> Result<ImageRef, PipelineError> {
    let bad = |why: &str| PipelineError::Input(format!("{what}: {s:?} {why}"));
    let last = s.rsplit('/').next().unwrap_or(s);
    if s.contains('@') || last.contains(':') {
        return Err(bad(
            "must name a repository (registry/path), without a tag or digest",
        ));
    }
    let Some((host, path)) = s.split_once('/') else {
        return Err(bad(
            "must include the registry host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/trusted/app",
        ));
    };
    let host_ok = !host.is_empty()
        && (host.contains('.') || host.contains(':') || host == "localhost")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !host_ok {
        return Err(bad(
            "must start with a registry host (a name with a dot or a port)",
        ));
    }
    if path.len() > 255 || !path.split('/').all(is_path_component) {
        return Err(bad(
            "has an invalid repository path: lowercase letters, digits and . _ - between slashes",
        ));
    }
    Ok(ImageRef::from_parts(host, path, None, None))
}

/// One component of a repository path: `[a-z0-9]+([._-][a-z0-9]+)*`, checked by hand (see
/// [`parse_repository`]).
fn is_path_component(c: &str) -> bool {
    !c.is_empty()
        && c.starts_with(|x: char| x.is_ascii_lowercase() || x.is_ascii_digit())
        && c.ends_with(|x: char| x.is_ascii_lowercase() || x.is_ascii_digit())
        && c.chars()
            .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, '.' | '_' | '-'))
        && !c.contains("..")
}

/// A pinned reference from a request field: it must name a digest.
fn pinned(field: &str, s: &str) -> Result<ImageRef, PipelineError> {
    let r: ImageRef = s
        .parse()
        .map_err(|e: ReferenceError| PipelineError::Input(format!("{field}: {e}")))?;
    match r.digest() {
        Some(d) => Ok(r.pinned(d.clone())),
        None => Err(PipelineError::Input(format!(
            "{field}: {s:?} must be pinned to a digest (repo@sha256:…)"
        ))),
    }
}

/// The account of an ECR host, for Inspector's filters.
fn account_of(image: &ImageRef) -> Option<String> {
    EcrRegistry::from_host(image.registry()).map(|e| e.account)
}

/// A build id from a source tag when it makes a valid environment tag, else none (retag then
/// picks its own default).
pub fn build_from_source_tag(envs: &Environments, tag: Option<&str>) -> Option<String> {
    let t = tag?;
    (t != "latest" && envs.first().template.render(t).is_ok()).then(|| t.to_owned())
}
