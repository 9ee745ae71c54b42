//! copy-to-quarantine: resolve the source once and copy that digest byte for byte into quarantine.

use super::{PipelineError, Repositories};
use crate::copy::{CopyOptions, NoProgress, copy_image};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
        bytes_streamed: report.counts.bytes_streamed,
        blobs_mounted: report.counts.blobs_mounted,
        blobs_skipped: report.counts.blobs_skipped,
        manifests_pushed: report.counts.manifests_pushed,
    })
}
