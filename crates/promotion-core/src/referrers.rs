//! Referrers and attachments: the one home for everything that hangs off an image by digest.
//!
//! An image's signatures, SBOMs, attestations and approvals are found by three routes, and
//! every caller (copy `--referrers`, sign, verify, discover, annotate, approvals) goes through
//! this module for them:
//!
//! - the OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`), when the registry has it;
//! - otherwise the referrers tag schema: an index tagged `sha256-<hex>` listing the referrers,
//!   maintained by the client that pushes one ([`attach`], [`merge_fallback`]);
//! - cosign's legacy tags beside it: `sha256-<hex>.sig`, `.att`, `.sbom` ([`CosignTag`]).
//!
//! Walks over referrers of referrers are bounded once, here: [`MAX_DEPTH`] levels below the
//! image and at most [`MAX_ENTRIES`] referrers per subject, so a hostile source cannot make a
//! copy or a discovery unbounded. The module also carries the small-artifact plumbing the
//! callers share: [`put_small_blob`], [`read_small_blob`], [`get_optional`].
//!
//! The fallback index is read-modify-write on a registry without conditional writes, so two
//! writers can race. [`merge_fallback`] re-reads after its write and merges again (a few
//! times) when a concurrent writer's stale index replaced its own.

use crate::digest::{Digest, Hasher};
use crate::manifest::{self, Descriptor, ManifestDoc, ManifestError, RawManifest};
use crate::reference::ImageRef;
use crate::registry::{BlobStream, Registry, RegistryError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};

/// How many levels of referrers below an image are followed (referrers of the image, of those,
/// and of those): enough for signatures of attestations of an image.
pub const MAX_DEPTH: usize = 3;
/// The most referrers one subject may have; more is refused as an invalid image.
pub const MAX_ENTRIES: usize = 1000;
/// How often [`merge_fallback`] merges again when a concurrent writer replaced its index.
const MAX_FALLBACK_ATTEMPTS: usize = 4;

/// How a referrer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// Through the referrers API.
    ReferrersApi,
    /// Through the `sha256-<hex>` fallback index.
    FallbackTag,
    /// In cosign's `sha256-<hex>.sig` manifest.
    SigTag,
}

/// cosign's legacy tags beside `sha256-<hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CosignTag {
    /// `.sig`: simple-signing signatures, one layer each.
    Sig,
    /// `.att`: attestations.
    Att,
    /// `.sbom`: SBOMs.
    Sbom,
}

impl CosignTag {
    /// Every kind, in the order they are listed.
    pub const ALL: [CosignTag; 3] = [CosignTag::Sig, CosignTag::Att, CosignTag::Sbom];

    /// The suffix without its dot (`sig`).
    pub fn suffix(self) -> &'static str {
        match self {
            CosignTag::Sig => "sig",
            CosignTag::Att => "att",
            CosignTag::Sbom => "sbom",
        }
    }

    /// The tag for `subject`: `sha256-<hex>.sig`.
    pub fn tag(self, subject: &Digest) -> String {
        format!("{}.{}", subject.fallback_tag(), self.suffix())
    }
}

/// The referrers of one subject, as listed by the route the registry offers.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The route they came from ([`Route::ReferrersApi`] or [`Route::FallbackTag`]).
    pub route: Route,
    /// Their descriptors (with `artifactType` and annotations as listed).
    pub descriptors: Vec<Descriptor>,
    /// The fallback index itself, when that route was used and the tag exists.
    pub fallback_index: Option<RawManifest>,
}

/// A manifest by tag or digest, or `None` when it does not exist.
pub async fn get_optional<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    reference: &str,
) -> Result<Option<RawManifest>, RegistryError> {
    match reg.get_manifest(repo, reference).await {
        Ok(m) => Ok(Some(m)),
        Err(RegistryError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The referrers of `subject` in `repo`: through the API when the registry has one, else the
/// fallback index (none when the tag does not exist).
pub async fn list<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &Digest,
) -> Result<Listing, RegistryError> {
    let listing = match reg.referrers(repo, subject).await? {
        Some(descriptors) => Listing {
            route: Route::ReferrersApi,
            descriptors,
            fallback_index: None,
        },
        None => {
            let tag = subject.fallback_tag();
            match get_optional(reg, repo, &tag).await? {
                Some(raw) => Listing {
                    route: Route::FallbackTag,
                    descriptors: index_entries(repo, &tag, &raw)?,
                    fallback_index: Some(raw),
                },
                None => Listing {
                    route: Route::FallbackTag,
                    descriptors: Vec::new(),
                    fallback_index: None,
                },
            }
        }
    };
    if listing.descriptors.len() > MAX_ENTRIES {
        return Err(RegistryError::Manifest {
            what: format!("referrers of {}@{subject}", repo.repo_path()),
            source: ManifestError::Malformed(format!(
                "{} referrers, more than the {MAX_ENTRIES} allowed",
                listing.descriptors.len()
            )),
        });
    }
    Ok(listing)
}

/// The referrers of `subject` listed by the API (when the registry has one) *and* by the
/// fallback index, without duplicates. For artifacts a writer may have had to list in the
/// fallback index on a registry with the API (a referrer of an index refused with 405).
pub async fn list_every_route<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &Digest,
) -> Result<Vec<Descriptor>, RegistryError> {
    let first = list(reg, repo, subject).await?;
    let mut out = first.descriptors;
    if first.route == Route::ReferrersApi {
        let tag = subject.fallback_tag();
        if let Some(raw) = get_optional(reg, repo, &tag).await? {
            for d in index_entries(repo, &tag, &raw)? {
                if !out.iter().any(|o| o.digest == d.digest) {
                    out.push(d);
                }
            }
        }
    }
    if out.len() > MAX_ENTRIES {
        return Err(RegistryError::Manifest {
            what: format!("referrers of {}@{subject}", repo.repo_path()),
            source: ManifestError::Malformed(format!(
                "{} referrers, more than the {MAX_ENTRIES} allowed",
                out.len()
            )),
        });
    }
    Ok(out)
}

/// cosign's legacy manifests of `subject` that exist, with their tags.
pub async fn cosign_tags<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &Digest,
) -> Result<Vec<(CosignTag, String, RawManifest)>, RegistryError> {
    let mut out = Vec::new();
    for kind in CosignTag::ALL {
        let tag = kind.tag(subject);
        if let Some(raw) = get_optional(reg, repo, &tag).await? {
            out.push((kind, tag, raw));
        }
    }
    Ok(out)
}

/// Push `raw` (a manifest whose `subject` is `subject`) by digest and, on a registry that did
/// not index it itself (no `OCI-Subject` answer, no referrers API), list it in the fallback
/// index under `artifact_type`. Idempotent: same bytes, same digest, listed once.
pub async fn attach<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &Digest,
    raw: &RawManifest,
    artifact_type: &str,
) -> Result<(), RegistryError> {
    let put = reg.put_manifest(repo, raw.digest.as_str(), raw).await?;
    if !put.subject_processed && reg.referrers(repo, subject).await?.is_none() {
        let mut d = raw.descriptor();
        d.artifact_type = Some(artifact_type.to_owned());
        merge_fallback(reg, repo, subject, &[d], None).await?;
    }
    Ok(())
}

/// Add `add` to the fallback index of `subject` in `repo` (read-modify-write, no duplicates).
/// When the index does not exist yet and `verbatim` (a source's index) lists exactly what is
/// added, its bytes are pushed unchanged so that a copy stays byte-exact. Returns whether an
/// index was written.
///
/// After writing, the index is read back: if a concurrent writer replaced it with a version
/// lacking some of `add`, the merge runs again on top of theirs.
pub async fn merge_fallback<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &Digest,
    add: &[Descriptor],
    verbatim: Option<&RawManifest>,
) -> Result<bool, RegistryError> {
    let tag = subject.fallback_tag();
    let mut written = false;
    for _ in 0..MAX_FALLBACK_ATTEMPTS {
        let current = match get_optional(reg, repo, &tag).await? {
            Some(raw) => Some(index_entries(repo, &tag, &raw)?),
            None => None,
        };
        let missing: Vec<&Descriptor> = add
            .iter()
            .filter(|d| {
                current
                    .as_ref()
                    .is_none_or(|list| !list.iter().any(|m| m.digest == d.digest))
            })
            .collect();
        if missing.is_empty() {
            return Ok(written);
        }
        let raw = match (current, verbatim) {
            (None, Some(src)) if index_entries(repo, &tag, src)?.len() == add.len() => src.clone(),
            (current, _) => {
                let mut list = current.unwrap_or_default();
                list.extend(missing.into_iter().cloned());
                RawManifest::new(
                    manifest::referrers_index(&list),
                    manifest::OCI_INDEX.to_owned(),
                )
            }
        };
        reg.put_manifest(repo, &tag, &raw).await?;
        written = true;
    }
    Err(RegistryError::Transient {
        what: format!("referrers index {}:{tag}", repo.repo_path()),
        detail: format!(
            "other writers kept replacing it; gave up after {MAX_FALLBACK_ATTEMPTS} merges"
        ),
        retry_after: None,
    })
}

/// The entries of a fallback index.
fn index_entries(
    repo: &ImageRef,
    tag: &str,
    raw: &RawManifest,
) -> Result<Vec<Descriptor>, RegistryError> {
    ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
        .map(|(doc, _, _)| doc.manifests)
        .map_err(|source| RegistryError::Manifest {
            what: format!("referrers index {}:{tag}", repo.repo_path()),
            source,
        })
}

/// A descriptor as JSON, for building small artifact manifests.
pub fn descriptor_json(media_type: &str, d: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": d.as_str(), "size": size})
}

/// Upload a small blob held in memory unless the repository has it. Returns its digest and
/// whether it was uploaded.
pub async fn put_small_blob<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    bytes: &Bytes,
) -> Result<(Digest, bool), RegistryError> {
    let d = Digest::of(bytes);
    if reg.head_blob(repo, &d).await?.is_some() {
        return Ok((d, false));
    }
    // The client attempts an upload once; this is its one retry layer.
    crate::retry::RetryPolicy::default()
        .run("put_small_blob", || {
            let body = BlobStream {
                size: Some(bytes.len() as u64),
                stream: futures_util::stream::iter([Ok(bytes.clone())]).boxed(),
            };
            reg.put_blob(repo, &d, bytes.len() as u64, body)
        })
        .await?;
    Ok((d, true))
}

/// Read a small blob (a config, a signature payload) whole, refusing more than `max` bytes and
/// checking its size and digest.
pub async fn read_small_blob<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
    size: u64,
    max: u64,
) -> Result<Bytes, RegistryError> {
    let what = format!("blob {}@{digest}", repo.repo_path());
    if size > max {
        return Err(RegistryError::Protocol {
            what,
            detail: format!("{size} bytes is more than the {max} allowed"),
        });
    }
    // The client attempts a blob GET once; this is its one retry layer (the whole read).
    let (buf, hasher) = crate::retry::RetryPolicy::default()
        .run("read_small_blob", || async {
            let mut s = reg.get_blob(repo, digest).await?;
            let mut buf = BytesMut::new();
            let mut hasher = Hasher::default();
            while let Some(chunk) = s.stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                if hasher.len() > size {
                    break;
                }
                buf.extend_from_slice(&chunk);
            }
            Ok((buf, hasher))
        })
        .await?;
    let len = hasher.len();
    let actual = hasher.finish();
    if len != size || actual != *digest {
        return Err(RegistryError::DigestMismatch {
            what,
            expected: format!("{digest} ({size} bytes)"),
            actual: format!("{actual} ({len} bytes)"),
        });
    }
    Ok(buf.freeze())
}

/// The one bounded walk over referrers of referrers: breadth first from the roots, each subject
/// visited once, at most [`MAX_DEPTH`] levels.
///
/// ```text
/// let mut walk = Walk::new(roots);
/// while let Some((depth, subject)) = walk.next() {
///     for child in children_of(&subject) { walk.push(depth, child); }
/// }
/// ```
#[derive(Debug)]
pub struct Walk {
    queue: VecDeque<(usize, Digest)>,
    seen: HashSet<Digest>,
}

impl Walk {
    /// A walk starting at `roots` (depth 0: their referrers are the first level).
    pub fn new(roots: impl IntoIterator<Item = Digest>) -> Self {
        let mut walk = Walk {
            queue: VecDeque::new(),
            seen: HashSet::new(),
        };
        for d in roots {
            walk.enqueue(0, d);
        }
        walk
    }

    /// The next subject whose referrers to list, with its depth.
    #[allow(clippy::should_implement_trait)] // not an Iterator: `push` feeds it while it runs
    pub fn next(&mut self) -> Option<(usize, Digest)> {
        self.queue.pop_front()
    }

    /// `child` was found below a subject at `depth`: list its referrers too, unless it was seen
    /// or the walk is at its depth limit.
    pub fn push(&mut self, depth: usize, child: Digest) {
        self.enqueue(depth + 1, child);
    }

    fn enqueue(&mut self, depth: usize, d: Digest) {
        if depth < MAX_DEPTH && self.seen.insert(d.clone()) {
            self.queue.push_back((depth, d));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::memory::{Behaviour, MemoryRegistry};

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    /// A referrer of `subject` whose blobs are in `repo` (the manifest itself is not pushed).
    fn referrer(reg: &MemoryRegistry, repo: &ImageRef, subject: &Digest, n: u8) -> RawManifest {
        reg.put_blob_bytes(repo, Bytes::from_static(b"{}"));
        reg.put_blob_bytes(repo, Bytes::from(vec![n]));
        RawManifest::new(
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": manifest::OCI_MANIFEST,
                    "artifactType": "application/example",
                    "config": descriptor_json("application/vnd.oci.empty.v1+json", &Digest::of(b"{}"), 2),
                    "layers": [descriptor_json("application/example", &Digest::of(&[n]), 1)],
                    "subject": descriptor_json(manifest::OCI_MANIFEST, subject, 10),
                }))
                .unwrap(),
            ),
            manifest::OCI_MANIFEST.to_owned(),
        )
    }

    #[tokio::test]
    async fn attach_lists_once_in_the_fallback_index_and_list_reads_it_back() {
        let reg = MemoryRegistry::new();
        let repo = r("reg.example/team/app");
        let subject = Digest::of(b"image");
        let a = referrer(&reg, &repo, &subject, 1);
        attach(&reg, &repo, &subject, &a, "application/example")
            .await
            .unwrap();
        attach(&reg, &repo, &subject, &a, "application/example")
            .await
            .unwrap();
        let l = list(&reg, &repo, &subject).await.unwrap();
        assert_eq!(l.route, Route::FallbackTag);
        assert_eq!(l.descriptors.len(), 1, "listed once");
        assert_eq!(l.descriptors[0].digest, a.digest);
        assert_eq!(
            l.descriptors[0].artifact_type.as_deref(),
            Some("application/example")
        );
    }

    #[tokio::test]
    async fn with_the_referrers_api_no_fallback_index_is_written() {
        let reg = MemoryRegistry::new();
        reg.set_behaviour(Behaviour {
            referrers_api: true,
            ..Behaviour::default()
        });
        let repo = r("reg.example/team/app");
        let subject = Digest::of(b"image");
        let a = referrer(&reg, &repo, &subject, 1);
        attach(&reg, &repo, &subject, &a, "application/example")
            .await
            .unwrap();
        assert_eq!(reg.tag(&repo, &subject.fallback_tag()), None);
        let l = list(&reg, &repo, &subject).await.unwrap();
        assert_eq!(l.route, Route::ReferrersApi);
        assert_eq!(l.descriptors.len(), 1);
    }

    #[tokio::test]
    async fn a_concurrent_writer_that_replaces_the_index_does_not_lose_our_entry() {
        let reg = MemoryRegistry::new();
        let repo = r("reg.example/team/app");
        let subject = Digest::of(b"image");
        let theirs = referrer(&reg, &repo, &subject, 2);
        reg.put_manifest_bytes(&repo, None, theirs.clone());
        let their_index = RawManifest::new(
            manifest::referrers_index(&[theirs.descriptor()]),
            manifest::OCI_INDEX.to_owned(),
        );
        // Another writer read the (empty) index before our write and puts its own after it.
        reg.set_behaviour(Behaviour {
            clobber_after_put: Some((subject.fallback_tag(), their_index)),
            ..Behaviour::default()
        });
        let ours = referrer(&reg, &repo, &subject, 1);
        attach(&reg, &repo, &subject, &ours, "application/example")
            .await
            .unwrap();
        let l = list(&reg, &repo, &subject).await.unwrap();
        let digests: Vec<&Digest> = l.descriptors.iter().map(|d| &d.digest).collect();
        assert_eq!(digests, [&theirs.digest, &ours.digest], "both survive");
    }

    #[tokio::test]
    async fn too_many_referrers_are_refused() {
        let reg = MemoryRegistry::new();
        let repo = r("reg.example/team/app");
        let subject = Digest::of(b"image");
        let many: Vec<Descriptor> = (0..=MAX_ENTRIES)
            .map(|i| {
                RawManifest::new(
                    Bytes::from(format!("{{\"schemaVersion\":2,\"n\":{i}}}")),
                    manifest::OCI_MANIFEST.to_owned(),
                )
                .descriptor()
            })
            .collect();
        let index = RawManifest::new(
            manifest::referrers_index(&many),
            manifest::OCI_INDEX.to_owned(),
        );
        reg.put_manifest_bytes(&repo, Some(&subject.fallback_tag()), index);
        let err = list(&reg, &repo, &subject).await.unwrap_err();
        assert!(
            err.to_string().contains("more than the 1000 allowed"),
            "{err}"
        );
    }

    #[test]
    fn the_walk_visits_each_subject_once_and_stops_at_the_depth_limit() {
        let d = |n: u8| Digest::of(&[n]);
        let mut walk = Walk::new([d(0), d(0)]);
        let mut visited = Vec::new();
        while let Some((depth, s)) = walk.next() {
            visited.push((depth, s.clone()));
            // Every subject has one referrer, n+1, and points back at the root (a cycle).
            let n = (0..=255u8).find(|n| d(*n) == s).unwrap();
            walk.push(depth, d(n + 1));
            walk.push(depth, d(0));
        }
        let depths: Vec<usize> = visited.iter().map(|(depth, _)| *depth).collect();
        assert_eq!(depths, (0..MAX_DEPTH).collect::<Vec<_>>());
    }

    #[test]
    fn cosign_tags_are_spelt_once() {
        let d = Digest::of(b"x");
        assert_eq!(CosignTag::Sig.tag(&d), format!("sha256-{}.sig", d.hex()));
        let all: Vec<&str> = CosignTag::ALL.iter().map(|k| k.suffix()).collect();
        assert_eq!(all, ["sig", "att", "sbom"]);
    }
}
