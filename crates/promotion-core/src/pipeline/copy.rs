//! copy-to-quarantine: resolve the source once and copy that digest byte for byte into quarantine.

use super::{PipelineError, Repositories, SourceRegistries};
use crate::copy::{CopyOptions, NoProgress, copy_selection};
use crate::digest::Digest;
use crate::environment::Environments;
use crate::mutate::Entries;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};
use crate::selection::{Limits, select};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// The request's annotations: validated here, before anything is written (promote adds
    /// them).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The request's build id: validated here against the first environment's tag template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The application the source is promoted as (its quarantine and trusted repositories);
    /// default: derived from the source repository (`Repositories::application_of_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The promotion will preserve the digest: the source's inert referrers come along into
    /// quarantine whatever the deployment's `COPY_REFERRERS` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_digest: Option<bool>,
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
    /// The source as given, with its tag (if any) and the digest it resolved to, e.g.
    /// `reg.example/incoming/app:1.4.2@sha256:…`: the provenance promote records.
    pub origin: String,
    /// The application: the quarantine and trusted repositories it is promoted through.
    pub application: String,
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

/// What copy-to-quarantine needs besides the registry.
pub struct CopySettings<'a> {
    /// Transfer settings.
    pub copy: CopyOptions,
    /// The policy's bounds on one image.
    pub limits: Limits,
    /// The environments (the request's build id is checked against the first one's template).
    pub environments: &'a Environments,
    /// The registries the source may be in (besides the deployment's own).
    pub sources: &'a SourceRegistries,
}

/// Validate the whole request, resolve the source once, select its tree (refusing hostile ones)
/// and copy exactly that tree byte for byte into quarantine, by digest. Nothing is written when
/// any of it fails.
pub async fn copy_to_quarantine(
    reg: &dyn Registry,
    repos: &Repositories,
    req: &CopyRequest,
    settings: &CopySettings<'_>,
) -> Result<CopyResult, PipelineError> {
    let src = req.source(repos.ingress_registry.as_deref())?;
    // Before anything is fetched: a request must not point the function at any host it likes.
    settings.sources.check(&src, repos)?;
    let app = repos.application_of_source(&src, req.application.as_deref())?;
    let quarantine = repos.quarantine_of(&app)?;
    Entries::from_input("annotation", req.annotations.clone())?;
    if let Some(b) = &req.build {
        settings
            .environments
            .first()
            .template
            .render(b)
            .map_err(|e| PipelineError::Input(format!("build: {e}")))?;
    }
    let source_tag = src.tag().map(str::to_owned).or_else(|| req.tag.clone());
    // Resolve once; from here on only the digest is named. A tag given with a digest must
    // still name it: the tag becomes the build id and the recorded source.
    let resolved = match &source_tag {
        Some(t) => {
            Some(
                reg.head_manifest(&src, t)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound {
                        what: src.with_tag(t).to_string(),
                    })?,
            )
        }
        None => None,
    };
    let digest = match (src.digest(), resolved) {
        (Some(d), Some(r)) if *d != r => {
            return Err(PipelineError::Input(format!(
                "source: tag {:?} of {} names {r}, not {d}: pushed again since? the tag is not \
                 recorded for a digest it does not name",
                source_tag.as_deref().unwrap_or_default(),
                src.repo_path()
            )));
        }
        (Some(d), _) => d.clone(),
        (None, Some(r)) => r,
        // The reference grammar defaults to `latest`, so this cannot happen; refused, not assumed.
        (None, None) => {
            return Err(PipelineError::Input(format!(
                "source: {src} names neither a tag nor a digest"
            )));
        }
    };
    let origin = ImageRef::from_parts(
        src.registry(),
        src.repository(),
        source_tag.as_deref(),
        Some(digest.clone()),
    );
    let src = src.pinned(digest.clone());
    let selection = select(reg, &src, &settings.limits).await?;
    let dst = quarantine.pinned(digest.clone());
    let report = copy_selection(
        reg,
        &selection,
        &src,
        &dst,
        &crate::copy::CopyOptions {
            referrers: settings.copy.referrers || req.preserve_digest == Some(true),
            inert_referrers_only: true,
            ..settings.copy.clone()
        },
        Arc::new(NoProgress),
    )
    .await?;
    Ok(CopyResult {
        source: src.to_string(),
        source_digest: report.source_digest,
        source_tag,
        origin: origin.to_string(),
        application: app.to_string(),
        quarantine: dst.to_string(),
        bytes_streamed: report.counts.bytes_streamed,
        blobs_mounted: report.counts.blobs_mounted,
        blobs_skipped: report.counts.blobs_skipped,
        manifests_pushed: report.counts.manifests_pushed,
    })
}
