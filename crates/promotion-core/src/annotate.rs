//! Promote-and-annotate: copy an image to another repository, adding annotations to the index
//! and every manifest and labels to every image config.
//!
//! The order is the copy engine's ([`crate::copy`]): resolve the source **once**; read the tree
//! (children verified against their digests); mutate it in memory ([`crate::mutate`], pure);
//! place the layers (skip when present, mount within one registry, else a verified stream: within
//! one registry no layer byte goes through this process); upload the new configs (small, made
//! here); push the new children by digest, then the new top, under the destination tag last.

use crate::copy::{self, CopyError, CopyObserver, CopyOptions, Engine, TransferCounts};
use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::manifest::{Kind, RawManifest};
use crate::mutate::{self, Doc, Entries, MutateError, MutatedTree, Mutation};
use crate::reference::ImageRef;
use crate::referrers::{put_small_blob, read_small_blob};
use crate::registry::{Registry, RegistryError};
use crate::selection::{Limits, Selection, SelectionError, select};
use bytes::Bytes;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Image configs larger than this are refused (real ones are a few KiB).
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// What to add.
#[derive(Debug, Clone, Default)]
pub struct AnnotateOptions {
    /// Annotations from input (validated; reserved keys refused).
    pub annotations: Entries,
    /// Labels from input (validated; reserved keys refused).
    pub labels: Entries,
    /// Transfer settings.
    pub copy: CopyOptions,
    /// Bounds on the source image ([`crate::selection`]).
    pub limits: Limits,
    /// The source to record in `io.ecr-promotion.source.name` (the original source as given),
    /// when it is not `src` itself (the pipeline promotes from quarantine).
    pub source_name: Option<String>,
}

/// One platform: its source digest and its new digest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlatformChange {
    /// `os/arch[/variant]`, or `unknown`.
    pub platform: String,
    /// Digest in the source.
    pub source_digest: Digest,
    /// Digest written.
    pub digest: Digest,
}

/// The result of promote-and-annotate.
#[derive(Debug, Clone, Serialize)]
pub struct AnnotateReport {
    /// Always `annotate`.
    pub operation: &'static str,
    /// The source as given.
    pub source: String,
    /// The destination as given.
    pub destination: String,
    /// The digest the source resolved to.
    pub source_digest: Digest,
    /// The new digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Per-platform digests, for indexes.
    pub platforms: Vec<PlatformChange>,
    /// New image configs uploaded.
    pub configs_pushed: u64,
    /// Reserved `io.ecr-promotion.*` keys the source carried, removed
    /// (`<document digest> <annotation|label> <key>`).
    pub reserved_removed: Vec<String>,
    /// What was streamed (nothing within one registry), mounted, skipped and pushed.
    #[serde(flatten)]
    pub counts: TransferCounts,
    /// Wall time.
    pub duration_ms: u64,
}

/// Why promote-and-annotate failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    /// Reading or writing failed.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// The mutation was refused.
    #[error(transparent)]
    Mutate(#[from] MutateError),
    /// The source's tree was refused ([`crate::selection`]).
    #[error(transparent)]
    Selection(#[from] SelectionError),
}

impl From<RegistryError> for AnnotateError {
    fn from(e: RegistryError) -> Self {
        AnnotateError::Copy(CopyError::Registry(e))
    }
}

impl Classify for AnnotateError {
    fn error_type(&self) -> ErrorType {
        match self {
            AnnotateError::Copy(e) => e.error_type(),
            AnnotateError::Mutate(e) => e.error_type(),
            AnnotateError::Selection(e) => e.error_type(),
        }
    }
}

/// Copy `src` to `dst` with annotations and labels. See the module documentation. The tree is
/// the one selection of `src` ([`crate::selection`]); a tree it refuses is not copied.
pub async fn annotate_image<R: Registry + ?Sized>(
    reg: &R,
    src: &ImageRef,
    dst: &ImageRef,
    opts: &AnnotateOptions,
    obs: Arc<dyn CopyObserver>,
) -> Result<AnnotateReport, AnnotateError> {
    let selection = select(reg, src, &opts.limits).await?;
    annotate_selection(reg, &selection, src, dst, opts, obs).await
}

/// [`annotate_image`] on a selection already made (promote-and-annotate gates exactly this
/// selection, then writes exactly it): [`plan`], then [`write`]. `src` is the repository the
/// selection was read from.
pub async fn annotate_selection<R: Registry + ?Sized>(
    reg: &R,
    selection: &Selection,
    src: &ImageRef,
    dst: &ImageRef,
    opts: &AnnotateOptions,
    obs: Arc<dyn CopyObserver>,
) -> Result<AnnotateReport, AnnotateError> {
    let planned = plan(reg, selection, src, opts).await?;
    write(reg, selection, &planned, src, dst, opts, obs).await
}

/// The mutated tree of a selection, computed before anything is written: its digest is known,
/// so a caller can check what it is about to claim (an environment tag) first.
#[derive(Debug, Clone)]
pub struct Plan {
    tree: MutatedTree,
    started: Instant,
}

impl Plan {
    /// The digest the destination will have.
    pub fn digest(&self) -> &Digest {
        &self.tree.top.digest
    }
}

/// Read the image configs and mutate the tree, in memory; nothing is written.
pub async fn plan<R: Registry + ?Sized>(
    reg: &R,
    selection: &Selection,
    src: &ImageRef,
    opts: &AnnotateOptions,
) -> Result<Plan, AnnotateError> {
    let started = Instant::now();
    let top = &selection.top().raw;
    let nodes = &selection.members;
    // The image configs to relabel (and to clear of reserved labels), read whole (small) and
    // verified.
    let mut configs: HashMap<Digest, Bytes> = HashMap::new();
    for n in nodes {
        if let Some(c) = &n.doc.config
            && mutate::IMAGE_CONFIGS.contains(&c.media_type.as_str())
            && !configs.contains_key(&c.digest)
        {
            let bytes = read_small_blob(reg, src, &c.digest, c.size, MAX_CONFIG_BYTES).await?;
            configs.insert(c.digest.clone(), bytes);
        }
    }
    // The pipeline's own keys last: nothing from the source or the request overrides them.
    let source_name = opts.source_name.clone().unwrap_or_else(|| src.to_string());
    let mutation = Mutation {
        annotations: opts
            .annotations
            .clone()
            .with_reserved(mutate::SOURCE_NAME, &source_name)
            .with_reserved(mutate::SOURCE_DIGEST, top.digest.as_str()),
        labels: opts.labels.clone(),
    };
    let doc = |r: &RawManifest| Doc {
        bytes: r.bytes.clone(),
        media_type: r.media_type.clone(),
    };
    let manifests: HashMap<Digest, Doc> = nodes
        .iter()
        .map(|n| (n.raw.digest.clone(), doc(&n.raw)))
        .collect();
    let tree = mutate::mutate_tree(&doc(top), &manifests, &configs, &mutation)?;
    Ok(Plan { tree, started })
}

/// Write a [`Plan`] to `dst`: layers skipped, mounted or streamed as a copy does, new configs,
/// children by digest, the top under `dst`'s tag (or its digest) last.
#[tracing::instrument(level = "debug", skip(reg, selection, planned, opts, obs), fields(src = %src, dst = %dst))]
pub async fn write<R: Registry + ?Sized>(
    reg: &R,
    selection: &Selection,
    planned: &Plan,
    src: &ImageRef,
    dst: &ImageRef,
    opts: &AnnotateOptions,
    obs: Arc<dyn CopyObserver>,
) -> Result<AnnotateReport, AnnotateError> {
    copy::check_concurrency(&opts.copy)?;
    let tree = &planned.tree;
    copy::check_destination(dst, &tree.top.digest, "annotating")?;
    let engine = Engine::new(reg, src, dst, &opts.copy, obs);

    // Layers (and configs left unchanged): skip, mount or stream, as a copy does.
    let replaced: HashSet<&Digest> = tree.configs.iter().map(|c| &c.old_digest).collect();
    let blobs = selection
        .blobs()
        .into_iter()
        .filter(|b| !replaced.contains(&b.digest))
        .collect();
    engine.copy_blob_list(blobs).await?;

    // New configs: made here, uploaded unless already present (a re-run).
    let mut configs_pushed = 0;
    for c in &tree.configs {
        if put_small_blob(reg, dst, &c.bytes).await?.1 {
            configs_pushed += 1;
        }
    }

    // Children by digest, then the top under its tag (or digest) last.
    for c in &tree.children {
        let raw = RawManifest::new(c.bytes.clone(), c.media_type.clone());
        engine.push_manifest(&raw, raw.digest.as_str()).await?;
    }
    let top_raw = RawManifest::new(tree.top.bytes.clone(), tree.top.media_type.clone());
    let reference = dst
        .tag()
        .map_or_else(|| top_raw.digest.to_string(), str::to_owned);
    engine.push_manifest(&top_raw, &reference).await?;

    let top = &selection.top().raw;
    let platforms = platform_changes(top, &tree.children)?;
    Ok(AnnotateReport {
        operation: "annotate",
        source: src.to_string(),
        destination: dst.to_string(),
        source_digest: top.digest.clone(),
        digest: top_raw.digest.clone(),
        media_type: top_raw.media_type.clone(),
        platforms,
        configs_pushed,
        reserved_removed: tree.removed.clone(),
        counts: engine.stats.counts(),
        duration_ms: planned.started.elapsed().as_millis() as u64,
    })
}

fn platform_changes(
    top: &RawManifest,
    children: &[mutate::Mutated],
) -> Result<Vec<PlatformChange>, AnnotateError> {
    let (doc, kind) = copy::parse(top, || format!("manifest {}", top.digest))?;
    if kind != Kind::Index {
        return Ok(Vec::new());
    }
    Ok(doc
        .manifests
        .iter()
        .map(|d| PlatformChange {
            platform: d
                .platform
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string),
            source_digest: d.digest.clone(),
            digest: children
                .iter()
                .find(|c| c.old_digest == d.digest)
                .map_or_else(|| d.digest.clone(), |c| c.digest.clone()),
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::copy::NoProgress;
    use crate::manifest::{ManifestDoc, OCI_INDEX, OCI_MANIFEST};
    use crate::registry::memory::MemoryRegistry;

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    fn desc(mt: &str, d: &Digest, size: usize) -> serde_json::Value {
        serde_json::json!({"mediaType": mt, "digest": d.as_str(), "size": size})
    }

    /// A two-platform index in `repo`, tagged `1`.
    pub(crate) fn index(reg: &MemoryRegistry, repo: &ImageRef) -> RawManifest {
        index_with(reg, repo, None)
    }

    /// A two-platform index that records a promotion, as promote-and-annotate writes it: the
    /// source, a passing gate summary and the policy digest.
    pub(crate) fn promoted_index(reg: &MemoryRegistry, repo: &ImageRef) -> RawManifest {
        let a = serde_json::json!({
            crate::sign::CLAIM_SOURCE_NAME: "upstream.example/app:1",
            crate::sign::CLAIM_SOURCE_DIGEST: crate::digest::Digest::of(b"upstream").to_string(),
            crate::sign::CLAIM_GATE: "PASSED CRITICAL=0 HIGH=0 MEDIUM=1 LOW=0 UNTRIAGED=0 suppressed=0",
            crate::sign::CLAIM_POLICY_DIGEST: crate::digest::Digest::of(b"policy").to_string(),
        });
        index_with(reg, repo, Some(a))
    }

    fn index_with(
        reg: &MemoryRegistry,
        repo: &ImageRef,
        annotations: Option<serde_json::Value>,
    ) -> RawManifest {
        let mut entries = Vec::new();
        for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
            let cfg = Bytes::from(format!(r#"{{"architecture":"{arch}","os":"linux"}}"#));
            let cd = reg.put_blob_bytes(repo, cfg.clone());
            let layer = reg.put_blob_bytes(repo, Bytes::from(vec![i as u8; 3000]));
            let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": desc("application/vnd.oci.image.config.v1+json", &cd, cfg.len()),
                "layers": [desc("application/vnd.oci.image.layer.v1.tar", &layer, 3000)]});
            let raw = RawManifest::new(
                Bytes::from(serde_json::to_vec(&m).unwrap()),
                OCI_MANIFEST.into(),
            );
            reg.put_manifest_bytes(repo, None, raw.clone());
            let mut e = desc(OCI_MANIFEST, &raw.digest, raw.bytes.len());
            e["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
            entries.push(e);
        }
        let mut idx =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        if let Some(a) = annotations {
            idx["annotations"] = a;
        }
        let raw = RawManifest::new(
            Bytes::from(serde_json::to_vec(&idx).unwrap()),
            OCI_INDEX.into(),
        );
        reg.put_manifest_bytes(repo, Some("1"), raw.clone());
        raw
    }

    fn opts() -> AnnotateOptions {
        AnnotateOptions {
            annotations: Entries::parse_kv("annotation", &["org.example.team=core"]).unwrap(),
            labels: Entries::parse_kv("label", &["owner=alice"]).unwrap(),
            copy: CopyOptions::default(),
            limits: Limits::default(),
            source_name: None,
        }
    }

    #[tokio::test]
    async fn annotates_within_one_registry_mounting_every_layer() {
        let reg = MemoryRegistry::new();
        let src = r("reg.example/quarantine/app:1");
        let dst = r("reg.example/trusted/app:1");
        let idx = index(&reg, &src);
        let rep = annotate_image(&reg, &src, &dst, &opts(), Arc::new(NoProgress))
            .await
            .unwrap();
        assert_eq!(rep.source_digest, idx.digest);
        assert_ne!(rep.digest, idx.digest);
        assert_eq!(
            (rep.counts.bytes_streamed, rep.counts.blobs_mounted),
            (0, 2)
        );
        assert_eq!(rep.configs_pushed, 2);
        assert_eq!(
            reg.calls().bytes_uploaded,
            rep.configs_pushed_bytes(&reg, &dst)
        );
        let top = reg.manifest(&dst, &rep.digest).unwrap();
        let (doc, _, _) = ManifestDoc::parse(&top.bytes, None).unwrap();
        assert_eq!(doc.annotations[mutate::SOURCE_DIGEST], idx.digest.as_str());
        assert_eq!(doc.annotations["org.example.team"], "core");
        for (entry, p) in doc.manifests.iter().zip(&rep.platforms) {
            assert_eq!(entry.digest, p.digest);
            let child = reg.manifest(&dst, &p.digest).unwrap();
            let (cdoc, _, _) = ManifestDoc::parse(&child.bytes, None).unwrap();
            assert_eq!(cdoc.annotations["org.example.team"], "core");
            assert!(reg.has_blob(&dst, &cdoc.config.unwrap().digest));
        }
        assert_eq!(reg.tag(&dst, "1"), Some(rep.digest.clone()));

        // Again: same digest, nothing written.
        let puts = reg.calls().manifest_puts;
        let again = annotate_image(&reg, &src, &dst, &opts(), Arc::new(NoProgress))
            .await
            .unwrap();
        assert_eq!(again.digest, rep.digest);
        assert_eq!(
            (again.configs_pushed, again.counts.manifests_pushed),
            (0, 0)
        );
        assert_eq!(reg.calls().manifest_puts, puts);
    }

    impl AnnotateReport {
        fn configs_pushed_bytes(&self, reg: &MemoryRegistry, dst: &ImageRef) -> u64 {
            self.platforms
                .iter()
                .map(|p| {
                    let m = reg.manifest(dst, &p.digest).unwrap();
                    ManifestDoc::parse(&m.bytes, None)
                        .unwrap()
                        .0
                        .config
                        .unwrap()
                        .size
                })
                .sum()
        }
    }

    #[tokio::test]
    async fn a_missing_source_writes_nothing() {
        let reg = MemoryRegistry::new();
        let err = annotate_image(
            &reg,
            &r("reg.example/none/app:1"),
            &r("reg.example/trusted/app:1"),
            &opts(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::RegistryNotFound);
        assert_eq!(reg.calls().manifest_puts, 0);
    }
}
