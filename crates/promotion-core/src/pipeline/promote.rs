//! promote-and-annotate: select the quarantined image's tree once, re-check the gate on exactly
//! that selection, check that the first environment's tags are free for the digest it will make,
//! then write exactly that selection to the trusted repository with the mandatory annotations
//! and labels, recording the original source — or, digest-preserving, copy it unchanged with its
//! inert referrers and hand those annotations to sign as claims.

use super::{PipelineError, Repositories, account_of, build_from_source_tag, pinned};
use crate::annotate::{self, AnnotateOptions};
use crate::clock::Clock;
use crate::copy::{CopyOptions, NoProgress};
use crate::digest::Digest;
use crate::environment::retag::{env_tags, plan_tags};
use crate::environment::{EnvError, Environment, Environments};
use crate::gate::{self, FindingsSource, Policy};
use crate::mutate::Entries;
use crate::reference::ImageRef;
use crate::registry::Registry;
use crate::selection::select;
use crate::sign::{CLAIM_GATE, CLAIM_POLICY_DIGEST, CLAIM_SOURCE_DIGEST};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reserved keys reported in a result at most (the rest are counted).
const MAX_REPORTED_REMOVALS: usize = 20;

/// Input of promote-and-annotate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromoteRequest {
    /// The quarantined image, pinned.
    pub quarantine: String,
    /// The original source as copy-to-quarantine resolved it (`CopyResult::origin`, e.g.
    /// `reg/incoming/app:1.4.2@sha256:…`), recorded in the trusted image and its signature. Its
    /// digest must be the quarantined one. Absent: the quarantine reference is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The environment whose rules the gate re-check applies and whose tags must be free
    /// (default: the first environment's tags, the base rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Annotations from the request (validated; the pipeline's own keys are refused; the
    /// deployment's mandatory annotations win over them).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The build id the first environment's tag will carry (as retag will choose it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The source tag (the build id when `build` is absent, as for retag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tag: Option<String>,
    /// Promote without mutation, so the trusted digest is the upstream one and upstream
    /// signatures, SBOMs and provenance stay valid; the annotations and labels become claims of
    /// the signature and the attestation. Absent: the deployment's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_digest: Option<bool>,
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
    /// The source recorded in the image (`io.ecr-promotion.source.name`).
    pub source_name: String,
    /// The gate re-check, compact.
    pub gate: String,
    /// The gate re-check as the promotion attestation records it (sign's `gate`).
    pub gate_record: crate::sign::attest::GateRecord,
    /// Whether the digest was preserved (no mutation).
    pub preserved: bool,
    /// For a preserved digest: what the image would have recorded (the annotations and labels,
    /// the source, the gate summary, the policy digest), for sign to put in the signature and
    /// the attestation. Empty otherwise (the image records them itself).
    pub claims: BTreeMap<String, String>,
    /// Manifests written (0 on a repeat).
    pub manifests_pushed: u64,
    /// Layer bytes streamed (0 within one registry: blobs are mounted).
    pub bytes_streamed: u64,
    /// Reserved `io.ecr-promotion.*` keys the source documents carried, removed (at most 20,
    /// `<document digest> <annotation|label> <key>`).
    pub reserved_removed: Vec<String>,
}

/// What promote-and-annotate adds, from configuration.
pub struct PromoteSettings<'a> {
    /// The policy (the gate re-check, the image limits).
    pub policy: &'a Policy,
    /// The environments (the target environment's tags, the first one's by default, are
    /// checked before writing).
    pub environments: &'a Environments,
    /// Mandatory annotations.
    pub annotations: &'a Entries,
    /// Mandatory labels.
    pub labels: &'a Entries,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// Transfer settings.
    pub copy: CopyOptions,
    /// Preserve digests unless the request says otherwise (`PRESERVE_DIGEST`).
    pub preserve_digest: bool,
}

/// Re-check the gate on the selection (PASSED now, or nothing is written), check the first
/// environment's tags, then write that selection to the application's trusted repository (the
/// quarantined image's application) with annotations and labels.
pub async fn promote_and_annotate(
    reg: &dyn Registry,
    repos: &Repositories,
    findings: &dyn FindingsSource,
    settings: &PromoteSettings<'_>,
    req: &PromoteRequest,
) -> Result<PromoteResult, PipelineError> {
    let src = pinned("quarantine", &req.quarantine)?;
    let app = repos.in_quarantine(&src, "quarantine")?;
    let trusted = repos.trusted_of(&app)?;
    let source_name = source_name(req.source.as_deref(), &src)?;
    let annotations = annotations(settings, req)?;
    let env = match &req.environment {
        Some(e) => settings.environments.get(e)?,
        None => settings.environments.first(),
    };
    let build = match &req.build {
        Some(b) => Some(b.clone()),
        None => build_from_source_tag(settings.environments, req.source_tag.as_deref()),
    };

    // One selection: gated now, then written exactly as gated.
    let selection = select(reg, &src, &settings.policy.limits()).await?;
    let rules = settings.policy.rules(req.environment.as_deref());
    let account = account_of(&src);
    let verdict = gate::require_passed(
        &selection,
        &src,
        account.as_deref(),
        findings,
        &rules,
        settings.clock,
    )
    .await?;
    let annotations = annotations
        .with_reserved(CLAIM_GATE, &verdict.compact())
        .with_reserved(CLAIM_POLICY_DIGEST, settings.policy.digest().as_str());
    if req.preserve_digest.unwrap_or(settings.preserve_digest) {
        return promote_preserving(
            reg,
            settings,
            &selection,
            (&src, &trusted),
            (env, build.as_deref()),
            &annotations,
            source_name,
            &verdict,
        )
        .await;
    }

    let opts = AnnotateOptions {
        annotations,
        labels: settings.labels.clone(),
        copy: settings.copy.clone(),
        limits: settings.policy.limits(),
        source_name: Some(source_name.clone()),
    };
    let plan = annotate::plan(reg, &selection, &src, &opts).await?;
    // No tag: the environment tag comes from retag-for-environment; but it must be free for
    // this digest before anything is written.
    tags_free(reg, &trusted, env, build.as_deref(), plan.digest()).await?;
    let report = annotate::write(
        reg,
        &selection,
        &plan,
        &src,
        &trusted,
        &opts,
        Arc::new(NoProgress),
    )
    .await?;
    let mut removed = report.reserved_removed;
    if removed.len() > MAX_REPORTED_REMOVALS {
        let more = removed.len() - MAX_REPORTED_REMOVALS;
        removed.truncate(MAX_REPORTED_REMOVALS);
        removed.push(format!("(+{more} more)"));
    }
    if !removed.is_empty() {
        tracing::warn!(removed = ?removed, "reserved keys in the source were removed");
    }
    Ok(PromoteResult {
        trusted: trusted.pinned(report.digest.clone()).to_string(),
        digest: report.digest,
        source_digest: report.source_digest,
        source_name,
        gate: verdict.compact(),
        gate_record: crate::sign::attest::GateRecord::from(&verdict),
        preserved: false,
        claims: BTreeMap::new(),
        manifests_pushed: report.counts.manifests_pushed,
        bytes_streamed: report.counts.bytes_streamed,
        reserved_removed: removed,
    })
}

/// Digest-preserving promotion: the gated selection copied byte for byte (with its inert
/// referrers: upstream signatures, SBOMs, attestations) into trusted; what annotate would have
/// written is returned as claims instead. An upstream document carrying the pipeline's reserved
/// keys is refused: they cannot be removed without changing the digest, and a reader of the
/// trusted image must not mistake them for the pipeline's record.
#[allow(clippy::too_many_arguments)]
async fn promote_preserving(
    reg: &dyn Registry,
    settings: &PromoteSettings<'_>,
    selection: &crate::selection::Selection,
    (src, trusted): (&ImageRef, &ImageRef),
    (env, build): (&Environment, Option<&str>),
    annotations: &Entries,
    source_name: String,
    verdict: &crate::gate::Verdict,
) -> Result<PromoteResult, PipelineError> {
    for m in &selection.members {
        if let Some(k) = m
            .doc
            .annotations
            .keys()
            .find(|k| k.starts_with(crate::mutate::RESERVED_PREFIX))
        {
            return Err(PipelineError::Input(format!(
                "{src}: {} carries the reserved annotation {k:?}; a digest-preserving promotion \
                 cannot remove it (promote with annotations instead)",
                m.raw.digest
            )));
        }
    }
    let digest = selection.top().raw.digest.clone();
    tags_free(reg, trusted, env, build, &digest).await?;
    let copy = CopyOptions {
        referrers: true,
        inert_referrers_only: true,
        ..settings.copy.clone()
    };
    let dst = trusted.pinned(digest.clone());
    let report =
        crate::copy::copy_selection(reg, selection, src, &dst, &copy, Arc::new(NoProgress)).await?;
    let mut claims = settings.labels.as_map().clone();
    claims.extend(annotations.as_map().clone());
    claims.insert(
        crate::sign::CLAIM_SOURCE_NAME.to_owned(),
        source_name.clone(),
    );
    claims.insert(CLAIM_SOURCE_DIGEST.to_owned(), digest.to_string());
    Ok(PromoteResult {
        trusted: dst.to_string(),
        digest: digest.clone(),
        source_digest: digest,
        source_name,
        gate: verdict.compact(),
        gate_record: crate::sign::attest::GateRecord::from(verdict),
        preserved: true,
        claims,
        manifests_pushed: report.counts.manifests_pushed,
        bytes_streamed: report.counts.bytes_streamed,
        reserved_removed: Vec::new(),
    })
}

/// The name recorded as the source: the original source as given (its digest must be the
/// quarantined one: the copy is byte-exact), without the digest when it has a tag (the digest
/// is recorded apart); else the quarantine reference.
fn source_name(source: Option<&str>, quarantined: &ImageRef) -> Result<String, PipelineError> {
    let Some(s) = source else {
        return Ok(quarantined.to_string());
    };
    let origin: ImageRef = s
        .parse()
        .map_err(|e| PipelineError::Input(format!("source: {e}")))?;
    if origin.digest() != quarantined.digest() {
        return Err(PipelineError::Input(format!(
            "source: {s} does not name the quarantined digest {}",
            quarantined.digest().map(Digest::as_str).unwrap_or_default()
        )));
    }
    Ok(match origin.tag() {
        Some(t) => origin.with_tag(t).to_string(),
        None => origin.to_string(),
    })
}

/// The request's annotations (validated, reserved keys refused), then the deployment's
/// mandatory ones over them: a request cannot override what the deployment requires.
fn annotations(
    settings: &PromoteSettings<'_>,
    req: &PromoteRequest,
) -> Result<Entries, PipelineError> {
    let mut out = Entries::from_input("annotation", req.annotations.clone())?;
    for (k, v) in settings.annotations.as_map() {
        out = out.with_reserved(k, v);
    }
    Ok(out)
}

/// The environment's tags for `digest` (build `build`, else the digest's first 12 hex digits,
/// as retag chooses for a digest without environment tags) must be free or already name
/// `digest`, unless the environment allows moves: retag's own check
/// ([`plan_tags`]), asked before anything is written to trusted, so a
/// promotion retag would refuse leaves no signed, untagged image behind.
async fn tags_free(
    reg: &dyn Registry,
    trusted: &ImageRef,
    env: &Environment,
    build: Option<&str>,
    digest: &Digest,
) -> Result<(), PipelineError> {
    let build = build.map_or_else(|| digest.hex()[..12].to_owned(), str::to_owned);
    let wanted = env_tags(env, &build)?;
    match plan_tags(reg, trusted, env, digest, wanted).await {
        Ok(_) => Ok(()),
        Err(EnvError::Conflict(m)) => Err(EnvError::Conflict(format!(
            "{m}; nothing was written to {}",
            trusted.repo_path()
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}
