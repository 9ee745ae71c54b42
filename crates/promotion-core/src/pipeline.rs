//! The five pipeline steps as the Lambdas (and `promote run`) perform them: typed requests and
//! results — the JSON that travels through the state machine — and one function per step.
//!
//! State stays small: requests and results carry references (pinned to digests), tags and
//! compact summaries, never manifests or finding lists.
//!
//! Trust: nothing here takes an earlier step's word for what matters.
//! - promote-and-annotate re-runs the gate itself (no settling) before it writes to the trusted
//!   repository, so forged input claiming a PASSED verdict gets nothing in (invariant 2);
//! - sign and retag act only on the trusted repository; retag verifies the pipeline's signature
//!   (which only exists after promote-and-annotate's own gate check) and, for an environment
//!   promotion, re-runs the gate with the target environment's rules.
//!
//! Requests refuse unknown fields, so a misspelt or forged field is an `Input.Invalid` naming it.

use crate::annotate::{AnnotateError, AnnotateOptions, annotate_image};
use crate::clock::Clock;
use crate::copy::{CopyError, CopyOptions, NoProgress, copy_image};
use crate::digest::Digest;
use crate::environment::{
    self, EnvError, Environments, GateCheck, RetagOptions, resolve_approvals,
};
use crate::error::{Classify, ErrorType};
use crate::gate::{self, Decision, FindingsSource, GateError, Observation, Policy, Verdict};
use crate::mutate::{Entries, MutateError};
use crate::reference::{ImageRef, ReferenceError};
use crate::registry::ecr::EcrRegistry;
use crate::registry::{Registry, RegistryError};
use crate::sign::store::{SignMode, SignOptions, sign_image};
use crate::sign::{CLAIM_GATE, PublicKey, SignError, Signer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.starts_with(|x: char| x.is_ascii_lowercase() || x.is_ascii_digit())
            && c.ends_with(|x: char| x.is_ascii_lowercase() || x.is_ascii_digit())
            && c.chars().all(|x| {
                x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, '.' | '_' | '-')
            })
            && !c.contains("..")
    };
    if path.len() > 255 || !path.split('/').all(component_ok) {
        return Err(bad(
            "has an invalid repository path: lowercase letters, digits and . _ - between slashes",
        ));
    }
    Ok(ImageRef::from_parts(host, path, None, None))
}

/// Where images come from and go to.
#[derive(Debug, Clone)]
pub struct Repositories {
    /// The registry host of the ingress repositories named by ECR push events.
    pub ingress_registry: Option<String>,
    /// The quarantine repository.
    pub quarantine: ImageRef,
    /// The trusted repository.
    pub trusted: ImageRef,
}

impl Repositories {
    fn ensure_in(
        &self,
        which: &str,
        repo: &ImageRef,
        image: &ImageRef,
        field: &str,
    ) -> Result<(), PipelineError> {
        if image.registry() != repo.registry() || image.repository() != repo.repository() {
            return Err(PipelineError::Input(format!(
                "{field}: {image} is not in the {which} repository {}",
                repo.repo_path()
            )));
        }
        Ok(())
    }
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

// ---------------------------------------------------------------------------------------------
// copy-to-quarantine

/// Input of copy-to-quarantine: a full `reference` (manual requests, the ocistow payload), or
/// an ECR push event's `repository` with its `digest` and/or `tag` in the ingress registry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyRequest {
    /// A full reference, e.g. `docker.io/library/busybox:1.36`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A repository of the ingress registry (ECR push events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The pushed digest (ECR push events); preferred over the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The pushed tag (ECR push events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Result of copy-to-quarantine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyResult {
    /// The source, pinned to the digest it resolved to.
    pub source: String,
    /// That digest.
    pub source_digest: Digest,
    /// The tag the source was named by, if any (a default build id). Always present (null
    /// when none): the state machine passes it on by path.
    #[serde(default)]
    pub source_tag: Option<String>,
    /// The quarantined image, pinned (same digest: the copy is byte-exact).
    pub quarantine: String,
    /// Layer bytes streamed through the function.
    pub bytes_streamed: u64,
    /// Blobs mounted across repositories.
    pub blobs_mounted: u64,
    /// Blobs quarantine already had.
    pub blobs_skipped: u64,
    /// Manifests written (0 on a repeat).
    pub manifests_pushed: u64,
}

impl CopyRequest {
    /// The source reference, validated.
    pub fn source(&self, ingress_registry: Option<&str>) -> Result<ImageRef, PipelineError> {
        match (&self.reference, &self.repository) {
            (Some(r), None) => {
                if self.digest.is_some() || self.tag.is_some() {
                    return Err(PipelineError::Input(
                        "source: give either reference, or repository with digest/tag".into(),
                    ));
                }
                r.parse::<ImageRef>()
                    .map_err(|e| PipelineError::Input(format!("source.reference: {e}")))
            }
            (None, Some(repo)) => {
                let host = ingress_registry.ok_or_else(|| {
                    PipelineError::Input(
                        "source.repository needs INGRESS_REGISTRY to be configured".into(),
                    )
                })?;
                let s = match (&self.digest, &self.tag) {
                    (Some(d), _) => format!("{host}/{repo}@{d}"),
                    (None, Some(t)) => format!("{host}/{repo}:{t}"),
                    (None, None) => {
                        return Err(PipelineError::Input(
                            "source: an ECR push needs digest or tag".into(),
                        ));
                    }
                };
                let r: ImageRef = s.parse().map_err(|e| {
                    PipelineError::Input(format!("source.repository/digest/tag: {e}"))
                })?;
                if let Some(t) = &self.tag
                    && !crate::reference::is_valid_tag(t)
                {
                    return Err(PipelineError::Input(format!(
                        "source.tag: {t:?} is not a valid tag"
                    )));
                }
                Ok(r)
            }
            _ => Err(PipelineError::Input(
                "source: give exactly one of reference or repository".into(),
            )),
        }
    }
}

/// Copy the source — resolved once — byte for byte into quarantine, by digest.
pub async fn copy_to_quarantine(
    reg: &dyn Registry,
    repos: &Repositories,
    req: &CopyRequest,
    opts: &CopyOptions,
) -> Result<CopyResult, PipelineError> {
    let src = req.source(repos.ingress_registry.as_deref())?;
    let source_tag = src.tag().map(str::to_owned).or_else(|| req.tag.clone());
    // Resolve once; from here on only the digest is named.
    let digest = match src.digest() {
        Some(d) => d.clone(),
        None => reg
            .head_manifest(&src, &src.reference())
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                what: src.to_string(),
            })?,
    };
    let src = src.pinned(digest.clone());
    let dst = repos.quarantine.pinned(digest.clone());
    let report = copy_image(reg, &src, &dst, opts, Arc::new(NoProgress)).await?;
    Ok(CopyResult {
        source: src.to_string(),
        source_digest: report.source_digest,
        source_tag,
        quarantine: dst.to_string(),
        bytes_streamed: report.bytes_streamed,
        blobs_mounted: report.blobs_mounted,
        blobs_skipped: report.blobs_skipped,
        manifests_pushed: report.manifests_pushed,
    })
}

// ---------------------------------------------------------------------------------------------
// scan-gate

/// An `ECR Referrer Action` event's repository and digest (environment promotion).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRef {
    /// The repository name (in the trusted registry).
    pub repository: String,
    /// The event's `image-digest`: the approval's or its subject's (AWS does not say which).
    pub digest: String,
}

/// Input of scan-gate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateRequest {
    /// The image to gate, pinned (quarantine, or trusted for an environment promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resolve this approval first (environment promotion from an event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
    /// The environment whose rules apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The build id to carry to retag (environment promotion), validated there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Polls so far (the state machine passes back the previous result's value).
    #[serde(default)]
    pub polls: u32,
    /// The previous read, for settling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
}

/// Result of scan-gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    /// The gated image, pinned.
    pub image: String,
    /// PASSED, FAILED or PENDING.
    pub decision: Decision,
    /// One sentence.
    pub message: String,
    /// `Verdict::compact`.
    pub summary: String,
    /// Distinct blocking ids (bounded).
    pub blocking_ids: Vec<String>,
    /// The environment whose rules applied (null: the base rules). Always present, like
    /// `build` and `observation`: the state machine passes them on by path.
    #[serde(default)]
    pub environment: Option<String>,
    /// The build id asked for (by an approval or the request).
    #[serde(default)]
    pub build: Option<String>,
    /// Polls so far, this one included.
    pub polls: u32,
    /// Seconds to wait before the next poll (PENDING).
    pub wait_seconds: u64,
    /// Carry into the next poll.
    #[serde(default)]
    pub observation: Option<Observation>,
}

/// How the gate step behaves.
pub struct GateSettings<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// The environments (approvals, environment names).
    pub environments: &'a Environments,
    /// Seconds between polls.
    pub poll_seconds: u64,
    /// After this many seconds of polling, PENDING becomes `Gate.Timeout`.
    pub max_wait_seconds: u64,
    /// The clock.
    pub clock: &'a dyn Clock,
}

/// Gate every platform of the image once; PENDING tells the state machine how long to wait,
/// and turns into `Gate.Timeout` once the polls add up to the maximum wait.
pub async fn scan_gate(
    reg: &dyn Registry,
    repos: &Repositories,
    findings: &dyn FindingsSource,
    settings: &GateSettings<'_>,
    req: &GateRequest,
) -> Result<GateResult, PipelineError> {
    let (image, environment, build) = match (&req.image, &req.approval) {
        (Some(i), None) => {
            let image = pinned("image", i)?;
            if let Some(e) = &req.environment {
                settings.environments.get(e)?;
            }
            (image, req.environment.clone(), req.build.clone())
        }
        (None, Some(a)) => {
            let repo = ImageRef::from_parts(repos.trusted.registry(), &a.repository, None, None);
            repos.ensure_in("trusted", &repos.trusted, &repo, "approval.repository")?;
            let digest: Digest = a
                .digest
                .parse()
                .map_err(|e| PipelineError::Input(format!("approval.digest: {e}")))?;
            let found = resolve_approvals(reg, &repo, &digest, settings.environments).await?;
            // Earliest environment first; a done one is a no-op for retag.
            let rank = |n: &str| settings.environments.names().iter().position(|x| *x == n);
            let Some(first) = found.into_iter().min_by_key(|a| rank(&a.environment)) else {
                return Err(PipelineError::Input(format!(
                    "approval: {} has no approval ({}) among its referrers",
                    repo.pinned(digest),
                    settings.environments.approval_artifact_type
                )));
            };
            (
                repo.pinned(first.subject),
                Some(first.environment),
                first.build,
            )
        }
        _ => {
            return Err(PipelineError::Input(
                "scan-gate: give exactly one of image or approval".into(),
            ));
        }
    };
    let rules = settings.policy.rules(environment.as_deref());
    let account = account_of(&image);
    let (_, platforms) = gate::resolve_platforms(reg, &image, account.as_deref()).await?;
    let verdict: Verdict = gate::evaluate(
        findings,
        &platforms,
        &rules,
        settings.clock,
        req.observation.as_ref(),
    )
    .await?;
    let polls = req.polls + 1;
    let waited = u64::from(req.polls) * settings.poll_seconds;
    if verdict.decision == Decision::Pending
        && waited + settings.poll_seconds > settings.max_wait_seconds
    {
        return Err(GateError::Timeout {
            waited_seconds: waited,
            message: format!("{image}: {}", verdict.message),
        }
        .into());
    }
    Ok(GateResult {
        image: image.to_string(),
        decision: verdict.decision,
        message: verdict.message.clone(),
        summary: verdict.compact(),
        blocking_ids: verdict.blocking_ids.clone(),
        environment,
        build,
        polls,
        wait_seconds: settings.poll_seconds,
        observation: verdict.observation.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// promote-and-annotate

/// Input of promote-and-annotate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromoteRequest {
    /// The quarantined image, pinned.
    pub quarantine: String,
    /// The environment whose rules the gate re-check applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Annotations from the request (validated; the pipeline's own keys are refused).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Result of promote-and-annotate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteResult {
    /// The trusted image, pinned to its new digest.
    pub trusted: String,
    /// The new digest.
    pub digest: Digest,
    /// The quarantined digest it came from.
    pub source_digest: Digest,
    /// The gate re-check, compact.
    pub gate: String,
    /// Manifests written (0 on a repeat).
    pub manifests_pushed: u64,
    /// Layer bytes streamed (0 within one registry: blobs are mounted).
    pub bytes_streamed: u64,
}

/// What promote-and-annotate adds, from configuration.
pub struct PromoteSettings<'a> {
    /// The policy (the gate re-check).
    pub policy: &'a Policy,
    /// Mandatory annotations.
    pub annotations: &'a Entries,
    /// Mandatory labels.
    pub labels: &'a Entries,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// Transfer settings.
    pub copy: CopyOptions,
}

/// Re-check the gate (PASSED now, or nothing is written), then copy the quarantined digest to
/// the trusted repository with annotations and labels.
pub async fn promote_and_annotate(
    reg: &dyn Registry,
    repos: &Repositories,
    findings: &dyn FindingsSource,
    settings: &PromoteSettings<'_>,
    req: &PromoteRequest,
) -> Result<PromoteResult, PipelineError> {
    let src = pinned("quarantine", &req.quarantine)?;
    repos.ensure_in("quarantine", &repos.quarantine, &src, "quarantine")?;
    let from_request = Entries::from_input("annotation", req.annotations.clone())?;
    let rules = settings.policy.rules(req.environment.as_deref());
    let verdict = gate::require_passed(
        reg,
        &src,
        account_of(&src).as_deref(),
        findings,
        &rules,
        settings.clock,
    )
    .await?;
    let mut annotations = settings.annotations.clone();
    for (k, v) in from_request.as_map() {
        annotations = annotations.with_reserved(k, v);
    }
    let annotations = annotations.with_reserved(CLAIM_GATE, &verdict.compact());
    // No tag: the environment tag comes from retag-for-environment.
    let dst = ImageRef::from_parts(
        repos.trusted.registry(),
        repos.trusted.repository(),
        None,
        None,
    );
    let opts = AnnotateOptions {
        annotations,
        labels: settings.labels.clone(),
        copy: settings.copy.clone(),
    };
    let report = annotate_image(reg, &src, &dst, &opts, Arc::new(NoProgress)).await?;
    Ok(PromoteResult {
        trusted: repos.trusted.pinned(report.digest.clone()).to_string(),
        digest: report.digest,
        source_digest: report.source_digest,
        gate: verdict.compact(),
        manifests_pushed: report.manifests_pushed,
        bytes_streamed: report.bytes_streamed,
    })
}

// ---------------------------------------------------------------------------------------------
// sign

/// Input of sign.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRequest {
    /// The trusted image, pinned.
    pub image: String,
}

/// Result of sign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignResult {
    /// The signed image, pinned.
    pub image: String,
    /// Digests signed (the index and each platform).
    pub digests_signed: usize,
    /// Signatures written now (0 on a repeat).
    pub signatures_created: usize,
}

/// Sign the trusted digest (and each platform). The claims carry the annotations the image
/// already has (source digest, gate summary), not anything from the request.
pub async fn sign(
    reg: &dyn Registry,
    repos: &Repositories,
    signer: &dyn Signer,
    mode: SignMode,
    req: &SignRequest,
) -> Result<SignResult, PipelineError> {
    let image = pinned("image", &req.image)?;
    repos.ensure_in("trusted", &repos.trusted, &image, "image")?;
    let opts = SignOptions {
        mode,
        ..SignOptions::default()
    };
    let report = sign_image(reg, &image, signer, &opts).await?;
    Ok(SignResult {
        image: image.to_string(),
        digests_signed: report.signed.len(),
        signatures_created: report.signatures_created as usize,
    })
}

// ---------------------------------------------------------------------------------------------
// retag-for-environment

/// Input of retag-for-environment.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetagRequest {
    /// The trusted image, pinned.
    pub image: String,
    /// The target environment; default: the first environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The build id; default: see `environment::retag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The source tag of the promotion: the build id when `build` is absent and the tag makes
    /// a valid environment tag (never `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tag: Option<String>,
    /// Re-run the gate with the environment's rules first (environment promotion).
    #[serde(default)]
    pub regate: bool,
}

/// Result of retag-for-environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetagResult {
    /// The tagged image, pinned.
    pub image: String,
    /// The environment.
    pub environment: String,
    /// Every tag.
    pub tags: Vec<String>,
    /// Whether a tag was written.
    pub changed: bool,
    /// The gate re-run, compact, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
}

/// What retag needs besides the registry.
pub struct RetagSettings<'a> {
    /// The environments.
    pub environments: &'a Environments,
    /// The policy (environment promotion).
    pub policy: &'a Policy,
    /// The pipeline's public key.
    pub key: &'a PublicKey,
    /// The clock.
    pub clock: &'a dyn Clock,
}

/// Verify the pipeline's signature, re-run the gate when asked, check the order, then tag.
pub async fn retag_for_environment(
    reg: &dyn Registry,
    repos: &Repositories,
    findings: &dyn FindingsSource,
    settings: &RetagSettings<'_>,
    req: &RetagRequest,
) -> Result<RetagResult, PipelineError> {
    let image = pinned("image", &req.image)?;
    repos.ensure_in("trusted", &repos.trusted, &image, "image")?;
    let env = match &req.environment {
        Some(e) => settings.environments.get(e)?.name.clone(),
        None => settings.environments.first().name.clone(),
    };
    let check = req.regate.then(|| GateCheck {
        source: findings,
        rules: settings.policy.rules(Some(&env)),
        clock: settings.clock,
        account: account_of(&image),
    });
    let opts = RetagOptions {
        build: req
            .build
            .clone()
            .or_else(|| build_from_source_tag(settings.environments, req.source_tag.as_deref())),
        extra_tags: Vec::new(),
    };
    let done = environment::promote_to_environment(
        reg,
        &image,
        settings.environments,
        &env,
        &opts,
        settings.key,
        check,
    )
    .await?;
    Ok(RetagResult {
        image: image.to_string(),
        environment: done.retag.environment.clone(),
        tags: done.retag.tags.iter().map(|t| t.tag.clone()).collect(),
        changed: done.retag.changed,
        gate: done.gate.as_ref().map(Verdict::compact),
    })
}

/// A build id from a source tag when it makes a valid environment tag, else none (retag then
/// picks its own default).
pub fn build_from_source_tag(envs: &Environments, tag: Option<&str>) -> Option<String> {
    let t = tag?;
    (t != "latest" && envs.first().template.render(t).is_ok()).then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::gate::{FileSource, ScanState, ScannedImage};
    use crate::registry::auth::async_trait;
    use crate::registry::memory::MemoryRegistry;

    fn repos() -> Repositories {
        Repositories {
            ingress_registry: Some("ingress.test".into()),
            quarantine: parse_repository("q", "reg.test/promotion/quarantine").unwrap(),
            trusted: parse_repository("t", "reg.test/promotion/trusted").unwrap(),
        }
    }

    /// A two-platform index in quarantine; returns it pinned and its amd64 digest.
    fn quarantined(reg: &MemoryRegistry) -> (String, Digest) {
        let raw = crate::annotate::tests::index(reg, &repos().quarantine.with_tag("x"));
        let (doc, _, _) = crate::manifest::ManifestDoc::parse(&raw.bytes, None).unwrap();
        (
            repos().quarantine.pinned(raw.digest).to_string(),
            doc.manifests[0].digest.clone(),
        )
    }

    fn critical_on(digest: &Digest) -> FileSource {
        FileSource::from_json(&format!(
            r#"{{"findings":[{{"findingArn":"arn:aws:inspector2:us-east-1:1:finding/x","severity":"CRITICAL",
            "status":"ACTIVE","type":"PACKAGE_VULNERABILITY","fixAvailable":"YES",
            "packageVulnerabilityDetails":{{"vulnerabilityId":"CVE-2026-9999","source":"NVD",
              "vulnerablePackages":[{{"name":"openssl","version":"1"}}]}},
            "resources":[{{"id":"x","type":"AWS_ECR_CONTAINER_IMAGE","details":{{"awsEcrContainerImage":
              {{"imageHash":"{digest}","repositoryName":"promotion/quarantine"}}}}}}]}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn requests_name_unknown_and_missing_fields() {
        let e = parse_request::<PromoteRequest>(
            "promote-and-annotate",
            serde_json::json!({"quarantine": "x", "verdict": "PASSED"}),
        )
        .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::InputInvalid);
        assert!(e.to_string().contains("verdict"), "{e}");
        let e = parse_request::<SignRequest>("sign", serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("image"), "{e}");
        for (req, needle) in [
            (CopyRequest::default(), "exactly one"),
            (
                CopyRequest {
                    repository: Some("incoming/app".into()),
                    ..CopyRequest::default()
                },
                "digest or tag",
            ),
            (
                CopyRequest {
                    reference: Some("a/b:1".into()),
                    tag: Some("1".into()),
                    ..CopyRequest::default()
                },
                "either reference",
            ),
        ] {
            let e = req.source(Some("ingress.test")).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let pushed = CopyRequest {
            repository: Some("incoming/app".into()),
            digest: Some(Digest::of(b"x").to_string()),
            tag: Some("1.4.2".into()),
            ..CopyRequest::default()
        };
        let src = pushed.source(Some("ingress.test")).unwrap();
        assert_eq!(
            src.digest(),
            Some(&Digest::of(b"x")),
            "the digest wins over the tag"
        );
        for bad in [
            "reg.test/app:1",
            "app",
            "reg.test/App",
            "reg.test/a//b",
            "reg.test/a@sha256:00",
            "noport/app",
        ] {
            assert!(parse_repository("X", bad).is_err(), "{bad}");
        }
        let r = parse_repository("X", "127.0.0.1:5000/promotion/trusted").unwrap();
        assert_eq!(
            (r.registry(), r.repository()),
            ("127.0.0.1:5000", "promotion/trusted")
        );
        // The same answer as the reference parser for a valid repository.
        let full: ImageRef = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trusted/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap();
        let r = parse_repository(
            "X",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trusted/app",
        )
        .unwrap();
        assert_eq!(
            (r.registry(), r.repository()),
            (full.registry(), full.repository())
        );
    }

    #[tokio::test]
    async fn promote_rechecks_the_gate_and_writes_nothing_on_a_denial() {
        let reg = MemoryRegistry::new();
        let (q, amd64) = quarantined(&reg);
        let policy = Policy::default();
        let settings = PromoteSettings {
            policy: &policy,
            annotations: &Entries::default(),
            labels: &Entries::default(),
            clock: &SystemClock,
            copy: CopyOptions::default(),
        };
        let req = PromoteRequest {
            quarantine: q.clone(),
            ..PromoteRequest::default()
        };
        let err = promote_and_annotate(&reg, &repos(), &critical_on(&amd64), &settings, &req)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::GateDenied, "{err}");
        assert!(reg.tags(&repos().trusted).is_empty());
        assert_eq!(reg.calls().manifest_puts, 0, "nothing written");

        // Clean findings: promoted, with the gate summary recorded on the image.
        let clean = FileSource::from_json(r#"{"findings":[]}"#).unwrap();
        let done = promote_and_annotate(&reg, &repos(), &clean, &settings, &req)
            .await
            .unwrap();
        let raw = reg.manifest(&repos().trusted, &done.digest).unwrap();
        let (doc, _, _) = crate::manifest::ManifestDoc::parse(&raw.bytes, None).unwrap();
        assert!(doc.annotations[CLAIM_GATE].starts_with("PASSED"));
        // Outside quarantine: refused.
        let outside = PromoteRequest {
            quarantine: repos().trusted.pinned(done.digest.clone()).to_string(),
            ..PromoteRequest::default()
        };
        let err = promote_and_annotate(&reg, &repos(), &clean, &settings, &outside)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not in the quarantine repository"),
            "{err}"
        );
    }

    struct NeverScanned;
    #[async_trait]
    impl FindingsSource for NeverScanned {
        async fn scan_state(&self, _: &ScannedImage) -> Result<ScanState, GateError> {
            Ok(ScanState::Pending("PENDING_INITIAL_SCAN".into()))
        }
        async fn findings(&self, _: &ScannedImage) -> Result<Vec<crate::gate::Finding>, GateError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn the_gate_asks_to_wait_and_turns_into_a_timeout_at_the_bound() {
        let reg = MemoryRegistry::new();
        let (q, _) = quarantined(&reg);
        let policy = Policy::default();
        let envs = Environments::default();
        let settings = GateSettings {
            policy: &policy,
            environments: &envs,
            poll_seconds: 30,
            max_wait_seconds: 90,
            clock: &SystemClock,
        };
        let mut req = GateRequest {
            image: Some(q),
            ..GateRequest::default()
        };
        for expected in 1..=3 {
            let r = scan_gate(&reg, &repos(), &NeverScanned, &settings, &req)
                .await
                .unwrap();
            assert_eq!(r.decision, Decision::Pending);
            assert_eq!((r.polls, r.wait_seconds), (expected, 30));
            req.polls = r.polls;
        }
        let err = scan_gate(&reg, &repos(), &NeverScanned, &settings, &req)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::GateTimeout, "{err}");
    }
}
