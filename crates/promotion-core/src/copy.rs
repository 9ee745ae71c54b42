//! Copy an image (or index, or artifact) from one repository to another, byte for byte.
//!
//! The order follows regclient's `BlobCopy` and the distribution spec's rules:
//!
//! 1. resolve the source reference to a digest **once**; everything after names digests;
//! 2. read every manifest of the tree (children of indexes, verified against their digests);
//! 3. per unique blob, with bounded concurrency: skip when the destination has it (HEAD); else
//!    mount it across repositories of one registry (201), falling back to an upload when the
//!    registry declines (202); else stream it source → destination, hashing on the way;
//! 4. push manifests children first, each only after all its blobs (and children) are present;
//! 5. the tag last;
//! 6. optionally the referrers of every copied digest (signatures, SBOMs, attestations).
//!
//! A streamed blob is held back one chunk: its last bytes are released to the destination only
//! after the whole blob hashed to its descriptor, so a corrupt source can never complete an
//! upload, whatever the destination checks itself.

use crate::digest::{Digest, Hasher};
use crate::error::{Classify, ErrorType};
use crate::manifest::{self, Descriptor, Kind, ManifestDoc, ManifestError, RawManifest};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::referrers;
use crate::registry::{BlobStream, Registry, RegistryError, RetryPolicy};
use crate::selection::Selection;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Nesting deeper than this (index of index of index…) is refused rather than followed. (A
/// manifest tree's depth; the walk over referrers has its own bound in [`referrers`].)
const MAX_INDEX_DEPTH: usize = 4;

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Platforms to keep from an index; empty keeps all. One match gives that platform's
    /// manifest itself (its own digest); several give a filtered index (a new digest).
    pub platforms: Vec<Platform>,
    /// Also copy the referrers of every copied digest.
    pub referrers: bool,
    /// Copy only inert referrers ([`crate::selection::is_inert_artifact`]: signatures, SBOMs,
    /// attestations), skipping any that is an image or an index (the pipeline's setting).
    pub inert_referrers_only: bool,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Retries of a whole blob transfer: the only retries of a blob's GET and upload (the
    /// registry client retries other single requests, never these).
    pub retry: RetryPolicy,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platforms: Vec::new(),
            referrers: false,
            inert_referrers_only: false,
            concurrency: 4,
            retry: RetryPolicy::default(),
        }
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The destination had it.
    Skipped,
    /// Mounted from the source repository.
    Mounted,
    /// Streamed through this process.
    Streamed,
}

/// Progress callbacks, for a progress bar. Every method has a no-op default.
pub trait CopyObserver: Send + Sync {
    /// The blobs of the tree are known: how many and their total size.
    fn planned(&self, _blobs: usize, _bytes: u64) {}
    /// Bytes of a streamed blob went through.
    fn streamed(&self, _bytes: u64) {}
    /// A blob is done.
    fn blob_done(&self, _digest: &Digest, _size: u64, _outcome: BlobOutcome) {}
}

/// An observer that observes nothing.
pub struct NoProgress;
impl CopyObserver for NoProgress {}

/// One platform of the copied index and its digest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlatformDigest {
    /// `os/arch[/variant]`, or `unknown` for entries without a platform (attestations).
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: Digest,
}

/// The result of a copy: what was written and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Always `copy`.
    pub operation: &'static str,
    /// The source as given.
    pub source: String,
    /// The destination as given.
    pub destination: String,
    /// The destination digest (the source digest unless platforms were filtered).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The source digest the tag resolved to.
    pub source_digest: Digest,
    /// Per-platform digests, for indexes.
    pub platforms: Vec<PlatformDigest>,
    /// What was streamed, mounted, skipped and pushed.
    #[serde(flatten)]
    pub counts: TransferCounts,
    /// Referrer manifests copied (signatures, SBOMs, attestations).
    pub referrers_copied: u64,
    /// Referrers left behind because they were images or indexes (`inert_referrers_only`).
    pub referrers_skipped: u64,
    /// Wall time.
    pub duration_ms: u64,
}

/// What a copy-like operation (copy, annotate) moved, flattened into its report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TransferCounts {
    /// Blobs streamed through this process.
    pub blobs_streamed: u64,
    /// Blobs the destination already had.
    pub blobs_skipped: u64,
    /// Blobs mounted across repositories.
    pub blobs_mounted: u64,
    /// Layer bytes streamed (0 when everything was mounted or present).
    pub bytes_streamed: u64,
    /// Manifests written.
    pub manifests_pushed: u64,
    /// Manifests the destination already had.
    pub manifests_skipped: u64,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The request cannot be satisfied as asked (no matching platform, digest clash).
    #[error("{0}")]
    Input(String),
    /// A registry call failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A manifest could not be handled.
    #[error("{what}: {source}")]
    Manifest {
        /// Which manifest.
        what: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
}

impl Classify for CopyError {
    fn error_type(&self) -> ErrorType {
        match self {
            CopyError::Input(_) => ErrorType::InputInvalid,
            CopyError::Registry(e) => e.error_type(),
            CopyError::Manifest { .. } => ErrorType::ImageInvalid,
        }
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) blobs_streamed: AtomicU64,
    pub(crate) blobs_skipped: AtomicU64,
    pub(crate) blobs_mounted: AtomicU64,
    pub(crate) bytes_streamed: AtomicU64,
    pub(crate) manifests_pushed: AtomicU64,
    pub(crate) manifests_skipped: AtomicU64,
    pub(crate) referrers_copied: AtomicU64,
    pub(crate) referrers_skipped: AtomicU64,
}

impl Stats {
    pub(crate) fn counts(&self) -> TransferCounts {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransferCounts {
            blobs_streamed: n(&self.blobs_streamed),
            blobs_skipped: n(&self.blobs_skipped),
            blobs_mounted: n(&self.blobs_mounted),
            bytes_streamed: n(&self.bytes_streamed),
            manifests_pushed: n(&self.manifests_pushed),
            manifests_skipped: n(&self.manifests_skipped),
        }
    }
}

/// A manifest of the tree with what it references.
pub(crate) struct Node {
    pub(crate) raw: RawManifest,
    pub(crate) doc: ManifestDoc,
}

/// The copy machinery, shared with [`crate::annotate`]: tree reading, blob placement (skip,
/// mount, verified stream) and idempotent manifest pushes.
pub(crate) struct Engine<'a, R: ?Sized> {
    reg: &'a R,
    src: ImageRef,
    dst: ImageRef,
    opts: &'a CopyOptions,
    obs: Arc<dyn CopyObserver>,
    pub(crate) stats: Stats,
}

/// Copy `src` to `dst`. See the module documentation for the order of operations.
#[tracing::instrument(level = "debug", skip(reg, opts, obs), fields(src = %src, dst = %dst))]
pub async fn copy_image<R: Registry + ?Sized>(
    reg: &R,
    src: &ImageRef,
    dst: &ImageRef,
    opts: &CopyOptions,
    obs: Arc<dyn CopyObserver>,
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    check_concurrency(opts)?;
    let engine = Engine::new(reg, src, dst, opts, obs);

    // 1. Resolve once. `get_manifest` verifies the bytes against the digest.
    let resolved = reg.get_manifest(src, &src.reference()).await?;
    let source_digest = resolved.digest.clone();
    tracing::debug!(digest = %source_digest, "source resolved");
    let (top, platforms) = engine.select_platforms(resolved).await?;
    check_destination(dst, &top.digest, "the copy")?;

    // 2-5. The tree: blobs, children, top manifest, tag.
    let nodes = engine.copy_tree(top.clone(), dst.tag()).await?;

    // 6. Referrers of every copied digest.
    if opts.referrers {
        let subjects: Vec<Digest> = nodes.iter().map(|n| n.raw.digest.clone()).collect();
        engine.copy_referrers(subjects).await?;
    }

    Ok(engine.report(&top, source_digest, platforms, started))
}

/// A copy needs at least one transfer at a time.
pub(crate) fn check_concurrency(opts: &CopyOptions) -> Result<(), CopyError> {
    if opts.concurrency == 0 {
        return Err(CopyError::Input("concurrency must be at least 1".into()));
    }
    Ok(())
}

/// A destination that names a digest must name the one `what` (the copy, annotating) produces.
pub(crate) fn check_destination(
    dst: &ImageRef,
    produced: &Digest,
    what: &str,
) -> Result<(), CopyError> {
    match dst.digest() {
        Some(d) if d != produced => Err(CopyError::Input(format!(
            "the destination names digest {d}, but {what} produces {produced}"
        ))),
        _ => Ok(()),
    }
}

/// Copy an image's [`Selection`] (read and checked once, [`crate::selection`]) byte for byte to
/// `dst`: copy-to-quarantine writes exactly the tree the gate will judge, and nothing when the
/// selection refused it. With `opts.referrers`, the referrers of every member come along.
pub async fn copy_selection<R: Registry + ?Sized>(
    reg: &R,
    selection: &Selection,
    src: &ImageRef,
    dst: &ImageRef,
    opts: &CopyOptions,
    obs: Arc<dyn CopyObserver>,
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    check_concurrency(opts)?;
    let top = &selection.top().raw;
    check_destination(dst, &top.digest, "the copy")?;
    let engine = Engine::new(reg, src, dst, opts, obs);
    let nodes = selection
        .members
        .iter()
        .map(|m| Node {
            raw: m.raw.clone(),
            doc: m.doc.clone(),
        })
        .collect();
    engine.write_nodes(nodes, dst.tag()).await?;
    if opts.referrers {
        let subjects = selection.members.iter().map(|m| m.raw.digest.clone());
        engine.copy_referrers(subjects.collect()).await?;
    }
    let platforms = selection
        .images()
        .filter(|m| m.platform.is_some())
        .map(|m| PlatformDigest {
            platform: m.label(),
            digest: m.raw.digest.clone(),
        })
        .collect();
    Ok(engine.report(top, top.digest.clone(), platforms, started))
}

pub(crate) fn parse(
    raw: &RawManifest,
    what: impl Fn() -> String,
) -> Result<(ManifestDoc, Kind), CopyError> {
    let (doc, kind, _) =
        ManifestDoc::parse(&raw.bytes, Some(&raw.media_type)).map_err(|source| {
            CopyError::Manifest {
                what: what(),
                source,
            }
        })?;
    Ok((doc, kind))
}

fn platform_name(d: &Descriptor) -> String {
    d.platform
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), ToString::to_string)
}

impl<'a, R: Registry + ?Sized> Engine<'a, R> {
    /// The report of a copy that wrote `top` (from `source_digest`).
    fn report(
        &self,
        top: &RawManifest,
        source_digest: Digest,
        platforms: Vec<PlatformDigest>,
        started: Instant,
    ) -> CopyReport {
        CopyReport {
            operation: "copy",
            source: self.src.to_string(),
            destination: self.dst.to_string(),
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            source_digest,
            platforms,
            counts: self.stats.counts(),
            referrers_copied: self.stats.referrers_copied.load(Ordering::Relaxed),
            referrers_skipped: self.stats.referrers_skipped.load(Ordering::Relaxed),
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// An engine copying from `src` to `dst`.
    pub(crate) fn new(
        reg: &'a R,
        src: &ImageRef,
        dst: &ImageRef,
        opts: &'a CopyOptions,
        obs: Arc<dyn CopyObserver>,
    ) -> Self {
        Engine {
            reg,
            src: src.clone(),
            dst: dst.clone(),
            opts,
            obs,
            stats: Stats::default(),
        }
    }

    /// Apply `--platform`: the top manifest to write, and the platforms it carries.
    async fn select_platforms(
        &self,
        top: RawManifest,
    ) -> Result<(RawManifest, Vec<PlatformDigest>), CopyError> {
        let (doc, kind) = parse(&top, || format!("manifest {}", self.src))?;
        if kind == Kind::Manifest {
            // A single-platform image is copied as it is; its platform lives in its config.
            if !self.opts.platforms.is_empty() {
                tracing::warn!(source = %self.src, "--platform ignored: the source is a single manifest, not an index");
            }
            return Ok((top, Vec::new()));
        }
        let all = |entries: &[&Descriptor]| -> Vec<PlatformDigest> {
            entries
                .iter()
                .map(|d| PlatformDigest {
                    platform: platform_name(d),
                    digest: d.digest.clone(),
                })
                .collect()
        };
        if self.opts.platforms.is_empty() {
            let entries: Vec<&Descriptor> = doc.manifests.iter().collect();
            return Ok((top, all(&entries)));
        }
        let selected: Vec<&Descriptor> = doc
            .manifests
            .iter()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| self.opts.platforms.iter().any(|s| s.selects(p)))
            })
            .collect();
        match selected.as_slice() {
            // Everything selected: the index as it is, byte for byte.
            all_of if all_of.len() == doc.manifests.len() => Ok((top, all(all_of))),
            [] => {
                let available: Vec<String> = doc.manifests.iter().map(platform_name).collect();
                Err(CopyError::Input(format!(
                    "no platform of {} matches {}; it has {}",
                    self.src,
                    self.opts
                        .platforms
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    available.join(", ")
                )))
            }
            [one] => {
                let child = self
                    .reg
                    .get_manifest(&self.src, one.digest.as_str())
                    .await?;
                Ok((child, all(&selected)))
            }
            many => {
                let keep: Vec<Digest> = many.iter().map(|d| d.digest.clone()).collect();
                let bytes = manifest::filter_index(&top.bytes, &keep).map_err(|source| {
                    CopyError::Manifest {
                        what: format!("index {}", self.src),
                        source,
                    }
                })?;
                Ok((RawManifest::new(bytes, top.media_type.clone()), all(many)))
            }
        }
    }

    /// Copy a manifest tree and write `top` under `tag` (or its digest). Returns the nodes
    /// written, children first.
    async fn copy_tree(&self, top: RawManifest, tag: Option<&str>) -> Result<Vec<Node>, CopyError> {
        let mut nodes = Vec::new();
        self.collect(top, 0, &mut nodes).await?;
        self.write_nodes(nodes, tag).await
    }

    /// Write a tree already read (post-order, the top last): blobs, then manifests children
    /// first, the top under `tag` (or its digest).
    async fn write_nodes(
        &self,
        nodes: Vec<Node>,
        tag: Option<&str>,
    ) -> Result<Vec<Node>, CopyError> {
        self.copy_blob_list(nodes.iter().flat_map(|n| n.doc.blobs().cloned()).collect())
            .await?;
        // Children first (post-order), each by digest; the top last, under its tag.
        let last = nodes.len() - 1;
        for (i, n) in nodes.iter().enumerate() {
            let reference = match (i == last, tag) {
                (true, Some(t)) => t.to_owned(),
                _ => n.raw.digest.to_string(),
            };
            self.push_manifest(&n.raw, &reference).await?;
        }
        Ok(nodes)
    }

    /// Transfer blobs, each unique digest once (platforms share configs and base layers),
    /// with bounded concurrency. The first failure cancels the transfers in flight, which
    /// abandons their uploads uncommitted.
    pub(crate) async fn copy_blob_list(&self, blobs: Vec<Descriptor>) -> Result<(), CopyError> {
        let unique: BTreeMap<Digest, Descriptor> =
            blobs.into_iter().map(|b| (b.digest.clone(), b)).collect();
        self.obs
            .planned(unique.len(), unique.values().map(|b| b.size).sum());
        stream::iter(
            unique
                .into_values()
                .map(|b| async move { self.transfer_blob(&b).await }),
        )
        .buffer_unordered(self.opts.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Read the tree below `m` (post-order: children before their parent).
    pub(crate) async fn collect(
        &self,
        m: RawManifest,
        depth: usize,
        out: &mut Vec<Node>,
    ) -> Result<(), CopyError> {
        let (doc, kind) = parse(&m, || {
            format!("manifest {}@{}", self.src.repo_path(), m.digest)
        })?;
        if kind == Kind::Index {
            if depth >= MAX_INDEX_DEPTH {
                return Err(CopyError::Input(format!(
                    "indexes nested deeper than {MAX_INDEX_DEPTH} levels"
                )));
            }
            for child in &doc.manifests {
                let raw = self
                    .reg
                    .get_manifest(&self.src, child.digest.as_str())
                    .await?;
                Box::pin(self.collect(raw, depth + 1, out)).await?;
            }
        }
        out.push(Node { raw: m, doc });
        Ok(())
    }

    pub(crate) async fn push_manifest(
        &self,
        raw: &RawManifest,
        reference: &str,
    ) -> Result<(), CopyError> {
        // Idempotent: a manifest (or tag) already naming these bytes is not written again.
        if self.reg.head_manifest(&self.dst, reference).await?.as_ref() == Some(&raw.digest) {
            self.stats.manifests_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.reg.put_manifest(&self.dst, reference, raw).await?;
        self.stats.manifests_pushed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(digest = %raw.digest, reference, "manifest pushed");
        Ok(())
    }

    async fn transfer_blob(&self, b: &Descriptor) -> Result<(), CopyError> {
        let outcome = self.place_blob(b).await?;
        match outcome {
            BlobOutcome::Skipped => &self.stats.blobs_skipped,
            BlobOutcome::Mounted => &self.stats.blobs_mounted,
            BlobOutcome::Streamed => &self.stats.blobs_streamed,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.obs.blob_done(&b.digest, b.size, outcome);
        tracing::debug!(digest = %b.digest, size = b.size, ?outcome, "blob done");
        Ok(())
    }

    async fn place_blob(&self, b: &Descriptor) -> Result<BlobOutcome, CopyError> {
        if self.reg.head_blob(&self.dst, &b.digest).await?.is_some() {
            return Ok(BlobOutcome::Skipped);
        }
        if self.src.same_registry(&self.dst) && self.src.repository() != self.dst.repository() {
            match self.reg.mount_blob(&self.dst, &b.digest, &self.src).await {
                Ok(true) => return Ok(BlobOutcome::Mounted),
                Ok(false) => tracing::debug!(digest = %b.digest, "mount declined, uploading"),
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    tracing::debug!(digest = %b.digest, error = %e, "mount failed, uploading")
                }
            }
        }
        // The one retry layer of a blob: the registry client attempts its GET and its upload
        // once each, and a transfer that fails (at once or half-way) is retried whole (a fresh
        // GET and a fresh upload session), never resumed, within the policy's budget.
        let streamed = self
            .opts
            .retry
            .run("transfer_blob", || async {
                let before = Arc::new(AtomicU64::new(0));
                let r = self.stream_blob(b, before.clone()).await;
                // Bytes of a failed attempt were sent but not kept; count only the final one.
                r.map(|()| before.load(Ordering::Relaxed))
            })
            .await?;
        self.stats
            .bytes_streamed
            .fetch_add(streamed, Ordering::Relaxed);
        Ok(BlobOutcome::Streamed)
    }

    async fn stream_blob(&self, b: &Descriptor, sent: Arc<AtomicU64>) -> Result<(), RegistryError> {
        let what = format!("blob {}@{}", self.src.repo_path(), b.digest);
        let source = self.reg.get_blob(&self.src, &b.digest).await?;
        if let Some(len) = source.size
            && len != b.size
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: format!("{} bytes", b.size),
                actual: format!("{len} bytes"),
            });
        }
        let verdict: Arc<Mutex<Option<RegistryError>>> = Arc::default();
        let body = verifying(
            source,
            b.clone(),
            what,
            verdict.clone(),
            sent,
            self.obs.clone(),
        );
        let result = self.reg.put_blob(&self.dst, &b.digest, b.size, body).await;
        // A verification failure aborts the upload from inside the body; the transport then
        // reports a dropped request. The verdict says what really happened.
        #[allow(clippy::unwrap_used)] // poisoned only if a holder panicked
        if let Some(e) = verdict.lock().unwrap().take() {
            return Err(e);
        }
        result
    }

    /// Whether the referrer `raw` of `subject` stays behind: with `inert_referrers_only`, one
    /// that is an image or an index (counted and logged).
    fn leaves_behind(&self, subject: &Digest, raw: &RawManifest) -> bool {
        let skip = self.opts.inert_referrers_only && !crate::selection::is_inert_artifact(raw);
        if skip {
            tracing::warn!(subject = %subject, referrer = %raw.digest,
                "a referrer that is an image or an index was not copied");
            self.stats.referrers_skipped.fetch_add(1, Ordering::Relaxed);
        }
        skip
    }

    /// Copy the referrers of `subjects` (and their referrers, as far as the one bounded walk
    /// of [`referrers::Walk`] goes): each referrer's tree, the fallback index where the
    /// destination has no referrers API, and cosign's legacy tags.
    async fn copy_referrers(&self, subjects: Vec<Digest>) -> Result<(), CopyError> {
        let mut walk = referrers::Walk::new(subjects);
        while let Some((depth, subject)) = walk.next() {
            let mut listing = referrers::list(self.reg, &self.src, &subject).await?;
            let mut kept = Vec::with_capacity(listing.descriptors.len());
            for d in &listing.descriptors {
                let raw = self.reg.get_manifest(&self.src, d.digest.as_str()).await?;
                if self.leaves_behind(&subject, &raw) {
                    continue;
                }
                kept.push(d.clone());
                let nodes = self.copy_tree(raw, None).await?;
                self.stats.referrers_copied.fetch_add(1, Ordering::Relaxed);
                for n in nodes {
                    walk.push(depth, n.raw.digest);
                }
            }
            // Only what was copied is listed; a source index listing more is not kept verbatim.
            if kept.len() != listing.descriptors.len() {
                listing.fallback_index = None;
            }
            listing.descriptors = kept;
            // A registry with the referrers API indexes `subject` itself; one without needs
            // the fallback tag maintained by the client.
            if !listing.descriptors.is_empty()
                && self.reg.referrers(&self.dst, &subject).await?.is_none()
                && referrers::merge_fallback(
                    self.reg,
                    &self.dst,
                    &subject,
                    &listing.descriptors,
                    listing.fallback_index.as_ref(),
                )
                .await?
            {
                self.stats.manifests_pushed.fetch_add(1, Ordering::Relaxed);
            }
            for (_, tag, raw) in referrers::cosign_tags(self.reg, &self.src, &subject).await? {
                if self.leaves_behind(&subject, &raw) {
                    continue;
                }
                let nodes = self.copy_tree(raw, Some(&tag)).await?;
                self.stats.referrers_copied.fetch_add(1, Ordering::Relaxed);
                for n in nodes {
                    walk.push(depth, n.raw.digest);
                }
            }
        }
        Ok(())
    }
}

/// Wrap a source stream so that it is hashed and counted on the way and its last chunk is
/// released only after the whole blob matched `expected`. On a mismatch the stream ends with
/// an error (aborting the upload) and `verdict` records why.
fn verifying(
    source: BlobStream,
    expected: Descriptor,
    what: String,
    verdict: Arc<Mutex<Option<RegistryError>>>,
    sent: Arc<AtomicU64>,
    obs: Arc<dyn CopyObserver>,
) -> BlobStream {
    let size = Some(expected.size);
    BlobStream {
        size,
        stream: Verifying {
            inner: source.stream,
            hasher: Hasher::default(),
            held: None,
            done: false,
            expected,
            what,
            verdict,
            sent,
            obs,
        }
        .boxed(),
    }
}

/// The stream [`verifying`] returns. Everything it needs lives here, so a chunk costs a hash
/// update and a move, never an allocation.
struct Verifying {
    inner: futures_util::stream::BoxStream<'static, Result<Bytes, RegistryError>>,
    hasher: Hasher,
    /// The chunk released only once the next one arrived (or the whole blob verified).
    held: Option<Bytes>,
    done: bool,
    expected: Descriptor,
    what: String,
    verdict: Arc<Mutex<Option<RegistryError>>>,
    sent: Arc<AtomicU64>,
    obs: Arc<dyn CopyObserver>,
}

impl Verifying {
    /// Ends the stream with `e`: recorded as the verdict, reported to the transport as the
    /// aborted upload it causes.
    fn fail(&mut self, e: RegistryError) -> RegistryError {
        self.done = true;
        let msg = e.to_string();
        #[allow(clippy::unwrap_used)] // poisoned only if a holder panicked
        self.verdict.lock().unwrap().replace(e);
        RegistryError::Transient {
            what: "upload aborted".into(),
            detail: msg,
            retry_after: None,
        }
    }

    fn release(&self, chunk: Bytes) -> Bytes {
        self.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.obs.streamed(chunk.len() as u64);
        chunk
    }
}

impl futures_util::Stream for Verifying {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match futures_util::ready!(this.inner.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => {
                    this.hasher.update(&chunk);
                    if this.hasher.len() > this.expected.size {
                        let e = RegistryError::DigestMismatch {
                            what: this.what.clone(),
                            expected: format!("{} bytes", this.expected.size),
                            actual: format!("more than {} bytes", this.expected.size),
                        };
                        return Poll::Ready(Some(Err(this.fail(e))));
                    }
                    if let Some(prev) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(this.release(prev))));
                    }
                }
                Some(Err(e)) => {
                    // The source failed (dropped, too slow): that is the transfer's error,
                    // not the upload the transport will report as aborted.
                    return Poll::Ready(Some(Err(this.fail(e))));
                }
                None => {
                    let hasher = std::mem::take(&mut this.hasher);
                    let len = hasher.len();
                    let actual = hasher.finish();
                    if len != this.expected.size || actual != this.expected.digest {
                        let e = RegistryError::DigestMismatch {
                            what: this.what.clone(),
                            expected: format!(
                                "{} ({} bytes)",
                                this.expected.digest, this.expected.size
                            ),
                            actual: format!("{actual} ({len} bytes)"),
                        };
                        return Poll::Ready(Some(Err(this.fail(e))));
                    }
                    this.done = true;
                    return Poll::Ready(this.held.take().map(|last| Ok(this.release(last))));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::manifest::{OCI_INDEX, OCI_MANIFEST};
    use crate::registry::memory::{Behaviour, MemoryRegistry};
    use std::time::Duration;

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    fn fast() -> CopyOptions {
        CopyOptions {
            retry: RetryPolicy {
                max_retries: 3,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                ..RetryPolicy::default()
            },
            ..CopyOptions::default()
        }
    }

    fn desc(mt: &str, d: &Digest, size: usize) -> serde_json::Value {
        serde_json::json!({"mediaType": mt, "digest": d.as_str(), "size": size})
    }

    /// An image with `layers` random-ish layers; returns the manifest.
    fn image(
        reg: &MemoryRegistry,
        repo: &ImageRef,
        tag: Option<&str>,
        seed: u8,
        layers: &[usize],
    ) -> RawManifest {
        let config = Bytes::from(format!(
            r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#
        ));
        let cd = reg.put_blob_bytes(repo, config.clone());
        let ls: Vec<_> = layers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let bytes: Vec<u8> = (0..*n)
                    .map(|j| {
                        (j as u8)
                            .wrapping_mul(31)
                            .wrapping_add(seed)
                            .wrapping_add(i as u8)
                    })
                    .collect();
                let d = reg.put_blob_bytes(repo, Bytes::from(bytes));
                desc("application/vnd.oci.image.layer.v1.tar", &d, *n)
            })
            .collect();
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc("application/vnd.oci.image.config.v1+json", &cd, config.len()), "layers": ls});
        let raw = RawManifest::new(
            Bytes::from(serde_json::to_vec_pretty(&m).unwrap()),
            OCI_MANIFEST.into(),
        );
        reg.put_manifest_bytes(repo, tag, raw.clone());
        raw
    }

    fn index(
        reg: &MemoryRegistry,
        repo: &ImageRef,
        tag: &str,
        children: &[(&RawManifest, &str)],
    ) -> RawManifest {
        let ms: Vec<_> = children
            .iter()
            .map(|(m, p)| {
                let mut d = desc(OCI_MANIFEST, &m.digest, m.bytes.len());
                let parts: Vec<&str> = p.split('/').collect();
                d["platform"] = serde_json::json!({"os": parts[0], "architecture": parts[1]});
                d
            })
            .collect();
        let doc = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ms});
        let raw = RawManifest::new(
            Bytes::from(serde_json::to_vec(&doc).unwrap()),
            OCI_INDEX.into(),
        );
        reg.put_manifest_bytes(repo, Some(tag), raw.clone());
        raw
    }

    fn multi(reg: &MemoryRegistry, repo: &ImageRef) -> (RawManifest, RawManifest, RawManifest) {
        let amd = image(reg, repo, None, 1, &[5000, 3000]);
        let arm = image(reg, repo, None, 2, &[4000]);
        let idx = index(
            reg,
            repo,
            "1.0",
            &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
        );
        (idx, amd, arm)
    }

    fn three(reg: &MemoryRegistry, repo: &ImageRef) -> RawManifest {
        let (_, amd, arm) = multi(reg, repo);
        let s390 = image(reg, repo, None, 3, &[100]);
        index(
            reg,
            repo,
            "3",
            &[
                (&amd, "linux/amd64"),
                (&arm, "linux/arm64"),
                (&s390, "linux/s390x"),
            ],
        )
    }

    async fn copy(
        reg: &MemoryRegistry,
        src: &str,
        dst: &str,
        opts: &CopyOptions,
    ) -> Result<CopyReport, CopyError> {
        copy_image(reg, &r(src), &r(dst), opts, Arc::new(NoProgress)).await
    }

    #[tokio::test]
    async fn copies_an_index_byte_for_byte_resolving_the_tag_once() {
        let reg = MemoryRegistry::new();
        let (idx, amd, arm) = multi(&reg, &r("src.example/team/app"));
        let rep = copy(
            &reg,
            "src.example/team/app:1.0",
            "dst.example/prod/app:1.0",
            &fast(),
        )
        .await
        .unwrap();
        let dst = r("dst.example/prod/app");
        assert_eq!(rep.digest, idx.digest);
        assert_eq!(rep.source_digest, idx.digest);
        assert_eq!(reg.tag(&dst, "1.0"), Some(idx.digest.clone()));
        assert_eq!(reg.manifest(&dst, &idx.digest).unwrap().bytes, idx.bytes);
        assert!(
            reg.manifest(&dst, &amd.digest).is_some() && reg.manifest(&dst, &arm.digest).is_some()
        );
        assert_eq!(rep.platforms.len(), 2);
        let configs: u64 = [&amd, &arm]
            .iter()
            .map(|m| {
                ManifestDoc::parse(&m.bytes, None)
                    .unwrap()
                    .0
                    .config
                    .unwrap()
                    .size
            })
            .sum();
        assert_eq!(
            (rep.counts.blobs_streamed, rep.counts.bytes_streamed),
            (5, 5000 + 3000 + 4000 + configs)
        );
        assert_eq!(reg.calls().tag_gets, 1, "the tag is resolved exactly once");
        assert_eq!(reg.calls().bytes_uploaded, rep.counts.bytes_streamed);
    }

    #[tokio::test]
    async fn a_rerun_streams_nothing_and_writes_nothing() {
        let reg = MemoryRegistry::new();
        multi(&reg, &r("src.example/app"));
        copy(&reg, "src.example/app:1.0", "dst.example/app:1.0", &fast())
            .await
            .unwrap();
        let before = reg.calls();
        let rep = copy(&reg, "src.example/app:1.0", "dst.example/app:1.0", &fast())
            .await
            .unwrap();
        assert_eq!(
            (
                rep.counts.bytes_streamed,
                rep.counts.blobs_streamed,
                rep.counts.manifests_pushed
            ),
            (0, 0, 0)
        );
        assert_eq!(
            (rep.counts.blobs_skipped, rep.counts.manifests_skipped),
            (5, 3)
        );
        assert_eq!(reg.calls().manifest_puts, before.manifest_puts);
    }

    #[tokio::test]
    async fn same_registry_mounts_and_falls_back_to_upload_when_declined() {
        let reg = MemoryRegistry::new();
        multi(&reg, &r("reg.example/quarantine/app"));
        let rep = copy(
            &reg,
            "reg.example/quarantine/app:1.0",
            "reg.example/trusted/app:1.0",
            &fast(),
        )
        .await
        .unwrap();
        assert_eq!(
            (rep.counts.blobs_mounted, rep.counts.bytes_streamed),
            (5, 0)
        );

        reg.set_behaviour(Behaviour {
            decline_mounts: true,
            ..Behaviour::default()
        });
        let rep = copy(
            &reg,
            "reg.example/quarantine/app:1.0",
            "reg.example/other/app:1.0",
            &fast(),
        )
        .await
        .unwrap();
        assert_eq!(
            (rep.counts.blobs_mounted, rep.counts.blobs_streamed),
            (0, 5)
        );
        assert!(rep.counts.bytes_streamed > 0);
    }

    #[tokio::test]
    async fn a_corrupt_source_blob_fails_and_leaves_no_manifest() {
        let reg = MemoryRegistry::new();
        let src = r("src.example/app");
        let (idx, amd, _) = multi(&reg, &src);
        let (doc, _, _) = ManifestDoc::parse(&amd.bytes, None).unwrap();
        let layer = &doc.layers[0];
        reg.corrupt_blob(
            &src,
            &layer.digest,
            Bytes::from(vec![0u8; layer.size as usize]),
        );
        let err = copy(&reg, "src.example/app:1.0", "dst.example/app:1.0", &fast())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::ImageDigestMismatch, "{err}");
        let dst = r("dst.example/app");
        assert_eq!(reg.tag(&dst, "1.0"), None);
        assert!(
            reg.manifest(&dst, &idx.digest).is_none() && reg.manifest(&dst, &amd.digest).is_none()
        );
        assert!(
            !reg.has_blob(&dst, &layer.digest),
            "the corrupt blob was never committed"
        );
    }

    #[tokio::test]
    async fn a_transfer_dropped_mid_stream_is_retried_whole_and_counted_once() {
        let reg = MemoryRegistry::new();
        image(&reg, &r("src.example/app"), Some("1"), 9, &[10_000]);
        reg.set_behaviour(Behaviour {
            fail_blob_reads: 1,
            ..Behaviour::default()
        });
        let rep = copy(
            &reg,
            "src.example/app:1",
            "dst.example/app:1",
            &CopyOptions {
                concurrency: 1,
                ..fast()
            },
        )
        .await
        .unwrap();
        assert_eq!(rep.counts.blobs_streamed, 2);
        assert_eq!(rep.counts.bytes_streamed, reg.calls().bytes_uploaded);
    }

    #[tokio::test]
    async fn platform_selection_gives_the_child_or_a_filtered_index() {
        let reg = MemoryRegistry::new();
        let (idx, _, arm) = multi(&reg, &r("src.example/app"));
        let one = CopyOptions {
            platforms: vec!["linux/arm64".parse().unwrap()],
            ..fast()
        };
        let rep = copy(&reg, "src.example/app:1.0", "dst.example/app:arm", &one)
            .await
            .unwrap();
        assert_eq!(rep.digest, arm.digest);
        assert_eq!(
            reg.tag(&r("dst.example/app"), "arm"),
            Some(arm.digest.clone())
        );

        let both = CopyOptions {
            platforms: vec![
                "linux/arm64".parse().unwrap(),
                "linux/amd64".parse().unwrap(),
            ],
            ..fast()
        };
        let rep = copy(&reg, "src.example/app:1.0", "dst.example/app:both", &both)
            .await
            .unwrap();
        assert_eq!(
            rep.digest, idx.digest,
            "selecting every platform keeps the index byte for byte"
        );
        let idx3 = three(&reg, &r("src.example/app"));
        let rep = copy(&reg, "src.example/app:3", "dst.example/app:two", &both)
            .await
            .unwrap();
        assert_eq!(rep.platforms.len(), 2);
        // Two of three children: a filtered index with a new digest.
        assert_ne!(rep.digest, idx3.digest);
        let (doc, _, _) = ManifestDoc::parse(
            &reg.manifest(&r("dst.example/app"), &rep.digest)
                .unwrap()
                .bytes,
            None,
        )
        .unwrap();
        assert_eq!(doc.manifests.len(), 2);

        let none = CopyOptions {
            platforms: vec!["windows/amd64".parse().unwrap()],
            ..fast()
        };
        let err = copy(&reg, "src.example/app:1.0", "dst.example/app:x", &none)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::InputInvalid);
        assert!(
            err.to_string().contains("linux/amd64, linux/arm64"),
            "{err}"
        );
    }

    fn referrer(
        reg: &MemoryRegistry,
        repo: &ImageRef,
        subject: &RawManifest,
        artifact_type: &str,
        seed: u8,
    ) -> RawManifest {
        let payload = reg.put_blob_bytes(repo, Bytes::from(vec![seed; 100]));
        let empty = reg.put_blob_bytes(repo, Bytes::from_static(b"{}"));
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": desc(crate::manifest::OCI_EMPTY, &empty, 2),
            "layers": [desc("application/octet-stream", &payload, 100)],
            "subject": desc(&subject.media_type, &subject.digest, subject.bytes.len())});
        let raw = RawManifest::new(
            Bytes::from(serde_json::to_vec(&m).unwrap()),
            OCI_MANIFEST.into(),
        );
        reg.put_manifest_bytes(repo, None, raw.clone());
        raw
    }

    #[tokio::test]
    async fn referrers_come_along_through_the_fallback_tag_and_cosign_tags() {
        let reg = MemoryRegistry::new();
        let src = r("src.example/app");
        let (idx, _, _) = multi(&reg, &src);
        let sig = referrer(
            &reg,
            &src,
            &idx,
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            1,
        );
        let sbom = referrer(&reg, &src, &idx, "application/spdx+json", 2);
        let fallback = RawManifest::new(
            manifest::referrers_index(&[sig.descriptor(), sbom.descriptor()]),
            OCI_INDEX.into(),
        );
        reg.put_manifest_bytes(&src, Some(&idx.digest.fallback_tag()), fallback.clone());
        let legacy = image(
            &reg,
            &src,
            Some(&format!("{}.sig", idx.digest.fallback_tag())),
            3,
            &[10],
        );

        let without = copy(&reg, "src.example/app:1.0", "dst.example/a:1.0", &fast())
            .await
            .unwrap();
        assert_eq!(without.referrers_copied, 0);
        assert!(reg.tags(&r("dst.example/a")) == vec!["1.0".to_owned()]);

        let opts = CopyOptions {
            referrers: true,
            ..fast()
        };
        let rep = copy(&reg, "src.example/app:1.0", "dst.example/b:1.0", &opts)
            .await
            .unwrap();
        let dst = r("dst.example/b");
        assert_eq!(rep.referrers_copied, 3);
        assert!(
            reg.manifest(&dst, &sig.digest).is_some() && reg.manifest(&dst, &sbom.digest).is_some()
        );
        // No index existed at the destination: the source's fallback index is copied verbatim.
        assert_eq!(
            reg.tag(&dst, &idx.digest.fallback_tag()),
            Some(fallback.digest.clone())
        );
        assert_eq!(
            reg.tag(&dst, &format!("{}.sig", idx.digest.fallback_tag())),
            Some(legacy.digest)
        );

        // Idempotent: a second run adds nothing and does not duplicate index entries.
        let again = copy(&reg, "src.example/app:1.0", "dst.example/b:1.0", &opts)
            .await
            .unwrap();
        assert_eq!(
            (again.counts.manifests_pushed, again.counts.bytes_streamed),
            (0, 0)
        );
    }

    #[tokio::test]
    async fn referrers_merge_into_an_existing_destination_index_without_duplicates() {
        let reg = MemoryRegistry::new();
        let src = r("src.example/app");
        let dst = r("dst.example/app");
        let img = image(&reg, &src, Some("1"), 4, &[10]);
        let sig = referrer(&reg, &src, &img, "application/example.sig", 1);
        reg.put_manifest_bytes(
            &src,
            Some(&img.digest.fallback_tag()),
            RawManifest::new(
                manifest::referrers_index(&[sig.descriptor()]),
                OCI_INDEX.into(),
            ),
        );
        // The destination already lists another referrer (and our blob) in its index.
        let other = image(&reg, &dst, None, 5, &[10]);
        reg.put_manifest_bytes(
            &dst,
            Some(&img.digest.fallback_tag()),
            RawManifest::new(
                manifest::referrers_index(&[other.descriptor(), sig.descriptor()]),
                OCI_INDEX.into(),
            ),
        );
        copy(
            &reg,
            "src.example/app:1",
            "dst.example/app:1",
            &CopyOptions {
                referrers: true,
                ..fast()
            },
        )
        .await
        .unwrap();
        let idx_digest = reg.tag(&dst, &img.digest.fallback_tag()).unwrap();
        let (doc, _, _) =
            ManifestDoc::parse(&reg.manifest(&dst, &idx_digest).unwrap().bytes, None).unwrap();
        assert_eq!(doc.manifests.len(), 2, "no duplicate entry");

        // With the referrers API at the destination no fallback tag is written at all.
        let api = MemoryRegistry::new();
        api.set_behaviour(Behaviour {
            referrers_api: true,
            ..Behaviour::default()
        });
        let img = image(&api, &src, Some("1"), 4, &[10]);
        referrer(&api, &src, &img, "application/example.sig", 1);
        let rep = copy(
            &api,
            "src.example/app:1",
            "dst.example/app:1",
            &CopyOptions {
                referrers: true,
                ..fast()
            },
        )
        .await
        .unwrap();
        assert_eq!(rep.referrers_copied, 1);
        assert_eq!(api.tags(&dst), vec!["1".to_owned()]);
    }

    #[tokio::test]
    async fn a_destination_digest_must_match_what_is_copied() {
        let reg = MemoryRegistry::new();
        image(&reg, &r("src.example/app"), Some("1"), 1, &[10]);
        let wrong = format!("dst.example/app@{}", Digest::of(b"other"));
        let err = copy(&reg, "src.example/app:1", &wrong, &fast())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::InputInvalid);
    }
}
