//! promote-and-annotate: re-check the gate, then copy the quarantined digest into the trusted
//! repository with the mandatory annotations and labels.

use super::{PipelineError, Repositories, account_of, pinned};
use crate::annotate::{AnnotateOptions, annotate_image};
use crate::clock::Clock;
use crate::copy::{CopyOptions, NoProgress};
use crate::digest::Digest;
use crate::gate::{self, FindingsSource, Policy};
use crate::mutate::Entries;
use crate::reference::ImageRef;
use crate::registry::Registry;
use crate::sign::CLAIM_GATE;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

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
        manifests_pushed: report.counts.manifests_pushed,
        bytes_streamed: report.counts.bytes_streamed,
    })
}
