//! The one selection of an image's manifests (docs/DESIGN.md, invariant 11): which manifests
//! the gate judges — and so exactly which promote-and-annotate writes to the trusted repository
//! and sign signs. Gate, promote, sign and copy-to-quarantine all call [`select`]; none of them
//! decides on its own which entries of an index count.
//!
//! The rules, read as an attacker who can push to an ingress repository would:
//!
//! - Every image manifest of the tree is an [`Role::Image`] and is gated, at any nesting depth:
//!   nested indexes are walked (up to [`MAX_INDEX_DEPTH`] levels), never handed to the scanner.
//! - An index entry with a concrete platform (`linux/amd64`), or with no platform and nothing
//!   that claims otherwise, is an image, whatever its annotations say: containerd picks entries
//!   by platform and runs an entry without one.
//! - An entry escapes gating only as a provable BuildKit attestation ([`Role::Attestation`]):
//!   platform exactly `unknown/unknown`, `vnd.docker.reference.type: attestation-manifest`, a
//!   `vnd.docker.reference.digest` naming a sibling entry of the same index that is itself
//!   gated, and a manifest whose layers are all in-toto statements. An entry that claims to be
//!   one (an `unknown` platform, or either BuildKit annotation, on an entry without a concrete
//!   platform) and fails any of these is refused, naming the entry.
//! - Nothing may send a node outside the registry: descriptors with `urls` and non-distributable
//!   (foreign) layers are refused. A manifest with a `subject` is a referrer (a signature, an
//!   SBOM), never an image to promote: refused.
//! - An index that lists a digest twice is read once (the digest is judged once); one that lists
//!   it once as an image and once as an attestation is refused.
//! - [`Limits`] bound the manifests, blobs and bytes of one image, so a hostile index fails with a
//!   clear `Image.Invalid` instead of running a Lambda out of memory or time.
//!
//! Every manifest read here is verified against its digest by the [`Registry`] port, and the
//! selection keeps the exact bytes: the copy and annotate engines write from it rather than
//! reading the tree a second time.

use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::manifest::{Descriptor, Kind, ManifestDoc, RawManifest};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Indexes nested deeper than this are refused rather than followed.
pub const MAX_INDEX_DEPTH: usize = 4;
/// BuildKit's index-entry annotation naming what an entry is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// BuildKit's index-entry annotation naming the image an attestation describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of [`REFERENCE_TYPE`] on attestation manifests.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The layer media type of in-toto statements (BuildKit's SBOM and provenance layers).
pub const IN_TOTO_LAYER: &str = "application/vnd.in-toto+json";
/// Layer media types whose content lives outside the registry (OCI non-distributable layers,
/// Docker foreign layers).
pub const NON_DISTRIBUTABLE: [&str; 4] = [
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Whether `raw` is an inert artifact: a single manifest none of whose layers is a filesystem
/// layer (`…tar…`, Docker's `rootfs.diff`). Signatures, bundles, SBOMs and attestations are;
/// an image or an index is not. The pipeline copies only inert referrers alongside an image, so
/// a "referrer" cannot carry a runnable, ungated image into trusted by digest.
pub fn is_inert_artifact(raw: &RawManifest) -> bool {
    match ManifestDoc::parse(&raw.bytes, Some(&raw.media_type)) {
        Ok((doc, Kind::Manifest, _)) => !doc
            .layers
            .iter()
            .any(|l| l.media_type.contains(".tar") || l.media_type.contains("rootfs.diff")),
        _ => false,
    }
}

/// Bounds on one image. Part of the gate policy (`limits:`), so every step that selects applies
/// the same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Manifests in the whole tree (every index, image and attestation), default 256.
    pub max_manifests: usize,
    /// Distinct blobs (configs and layers), default 4096.
    pub max_blobs: usize,
    /// Total bytes of the distinct blobs, default 64 GiB.
    pub max_bytes: u64,
}

impl Limits {
    /// No bounds beyond the nesting depth: for an image already selected under the policy's
    /// limits (sign, on a trusted digest promote wrote).
    pub const UNBOUNDED: Limits = Limits {
        max_manifests: usize::MAX,
        max_blobs: usize::MAX,
        max_bytes: u64::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifests: 256,
            max_blobs: 4096,
            max_bytes: 64 << 30,
        }
    }
}

/// What a manifest of the tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// An image (or an artifact in an image's place): gated, promoted, signed.
    Image,
    /// A provable BuildKit attestation of the image `of` (a sibling that is gated): carried
    /// along, neither scanned nor signed.
    Attestation {
        /// The image it describes.
        of: Digest,
    },
    /// An index: walked.
    Index,
}

/// One manifest of the selection.
#[derive(Debug, Clone)]
pub struct Member {
    /// Exact bytes, verified against their digest.
    pub raw: RawManifest,
    /// What it references.
    pub doc: ManifestDoc,
    /// What it is.
    pub role: Role,
    /// The platform its index entry names (`None` for the top and entries without one).
    pub platform: Option<Platform>,
}

impl Member {
    /// `linux/amd64`, `index`, or `image` for a manifest without a platform.
    pub fn label(&self) -> String {
        match (&self.platform, &self.role) {
            (Some(p), _) => p.to_string(),
            (None, Role::Index) => "index".into(),
            (None, _) => "image".into(),
        }
    }
}

/// An image's manifests, each once, children before their parents; the top last.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The members, post-order.
    pub members: Vec<Member>,
}

impl Selection {
    /// The top manifest (what the reference resolved to).
    pub fn top(&self) -> &Member {
        // `select` never returns an empty selection.
        &self.members[self.members.len() - 1]
    }

    /// The images: what the gate judges and sign signs.
    pub fn images(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == Role::Image)
    }

    /// The provable attestations.
    pub fn attestations(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| matches!(m.role, Role::Attestation { .. }))
    }

    /// Every distinct blob of the tree (configs and layers).
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut seen = BTreeSet::new();
        self.members
            .iter()
            .flat_map(|m| m.doc.blobs())
            .filter(|b| seen.insert(b.digest.clone()))
            .cloned()
            .collect()
    }
}

/// Why an image cannot be selected.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// Reading the tree failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The tree breaks a rule; the message names the manifest or entry and the rule.
    #[error("{image}: {detail}")]
    Refused {
        /// The image.
        image: String,
        /// What, where and why.
        detail: String,
    },
}

impl Classify for SelectionError {
    fn error_type(&self) -> ErrorType {
        match self {
            SelectionError::Registry(e) => e.error_type(),
            SelectionError::Refused { .. } => ErrorType::ImageInvalid,
        }
    }
}

/// Read `image`'s tree (its reference is resolved once) and select its members. See the module
/// documentation for the rules.
pub async fn select<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    limits: &Limits,
) -> Result<Selection, SelectionError> {
    let top = reg.get_manifest(image, &image.reference()).await?;
    let mut walk = Walker {
        reg,
        image,
        limits,
        members: Vec::new(),
        roles: HashMap::new(),
        blobs: HashMap::new(),
        bytes: 0,
    };
    let top_role = walk.role_of_top(&top)?;
    walk.visit(top, top_role, None, 0, TOP.into()).await?;
    if walk.members.iter().all(|m| m.role != Role::Image) {
        return Err(walk.refuse("it has no image manifest to gate".into()));
    }
    Ok(Selection {
        members: walk.members,
    })
}

struct Walker<'a, R: ?Sized> {
    reg: &'a R,
    image: &'a ImageRef,
    limits: &'a Limits,
    members: Vec<Member>,
    roles: HashMap<Digest, Role>,
    blobs: HashMap<Digest, u64>,
    bytes: u64,
}

impl<R: Registry + ?Sized> Walker<'_, R> {
    fn refuse(&self, detail: String) -> SelectionError {
        SelectionError::Refused {
            image: self.image.to_string(),
            detail,
        }
    }

    fn parse(&self, raw: &RawManifest, what: &str) -> Result<(ManifestDoc, Kind), SelectionError> {
        ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
            .map(|(doc, kind, _)| (doc, kind))
            .map_err(|e| self.refuse(format!("{what} ({}): {e}", raw.digest)))
    }

    fn role_of_top(&self, top: &RawManifest) -> Result<Role, SelectionError> {
        let (_, kind) = self.parse(top, TOP)?;
        Ok(match kind {
            Kind::Index => Role::Index,
            Kind::Manifest => Role::Image,
        })
    }

    async fn visit(
        &mut self,
        raw: RawManifest,
        role: Role,
        platform: Option<Platform>,
        depth: usize,
        what: String,
    ) -> Result<(), SelectionError> {
        if let Some(seen) = self.roles.get(&raw.digest) {
            if *seen != role {
                return Err(self.refuse(format!(
                    "{what} ({}) is listed twice with different roles",
                    raw.digest
                )));
            }
            return Ok(());
        }
        if self.roles.len() >= self.limits.max_manifests {
            return Err(self.refuse(format!(
                "more than {} manifests (limits.max_manifests)",
                self.limits.max_manifests
            )));
        }
        self.roles.insert(raw.digest.clone(), role.clone());
        let (doc, kind) = self.parse(&raw, &what)?;
        if let Some(subject) = &doc.subject {
            return Err(self.refuse(format!(
                "{what} ({}) has a subject ({}): it is a referrer, copied beside an image, \
                 never promoted as one",
                raw.digest, subject.digest
            )));
        }
        match (&role, kind) {
            (Role::Index, Kind::Index) => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(self.refuse(format!(
                        "indexes nested deeper than {MAX_INDEX_DEPTH} levels"
                    )));
                }
                self.visit_entries(&doc, depth, &what).await?;
            }
            (Role::Index, Kind::Manifest) => {
                return Err(self.refuse(format!(
                    "{what} ({}) is listed as an index but is an image manifest",
                    raw.digest
                )));
            }
            (_, Kind::Index) => {
                return Err(self.refuse(format!(
                    "{what} ({}) is listed as a manifest but is an index",
                    raw.digest
                )));
            }
            (Role::Attestation { .. }, Kind::Manifest) => {
                if let Some(l) = doc.layers.iter().find(|l| l.media_type != IN_TOTO_LAYER) {
                    return Err(self.refuse(format!(
                        "{what} ({}) claims to be a BuildKit attestation but has a layer of \
                         type {:?} (only {IN_TOTO_LAYER} is allowed)",
                        raw.digest, l.media_type
                    )));
                }
                self.count_blobs(&doc, &what)?;
            }
            (Role::Image, Kind::Manifest) => self.count_blobs(&doc, &what)?,
        }
        self.members.push(Member {
            raw,
            doc,
            role,
            platform,
        });
        Ok(())
    }

    async fn visit_entries(
        &mut self,
        doc: &ManifestDoc,
        depth: usize,
        what: &str,
    ) -> Result<(), SelectionError> {
        let mut claims = Vec::with_capacity(doc.manifests.len());
        for (i, entry) in doc.manifests.iter().enumerate() {
            let name = entry_name(what, i, entry);
            refuse_urls(entry, &name).map_err(|d| self.refuse(d))?;
            let claim = self.claim(entry, &doc.manifests, &name)?;
            claims.push((name, claim));
        }
        for ((name, claim), entry) in claims.into_iter().zip(&doc.manifests) {
            let raw = self
                .reg
                .get_manifest(self.image, entry.digest.as_str())
                .await?;
            if raw.digest != entry.digest {
                return Err(self.refuse(format!("{name}: the registry served another digest")));
            }
            Box::pin(self.visit(raw, claim, entry.platform.clone(), depth + 1, name)).await?;
        }
        Ok(())
    }

    /// What `entry` is, judged from the index alone (its manifest is checked against this role
    /// when it is read).
    fn claim(
        &self,
        entry: &Descriptor,
        siblings: &[Descriptor],
        name: &str,
    ) -> Result<Role, SelectionError> {
        let kind_of = |d: &Descriptor| match d.media_type.as_str() {
            crate::manifest::OCI_INDEX | crate::manifest::DOCKER_MANIFEST_LIST => Role::Index,
            _ => Role::Image,
        };
        if is_concrete(entry.platform.as_ref()) || !claims_attestation(entry) {
            return Ok(kind_of(entry));
        }
        // It claims to be an attestation: every condition must hold.
        let refuse = |why: &str| {
            self.refuse(format!(
                "{name} claims to be a BuildKit attestation but {why}; refused"
            ))
        };
        let unknown = entry.platform.as_ref().is_some_and(|p| {
            p.os == "unknown" && p.architecture == "unknown" && p.variant.is_none()
        });
        if !unknown {
            return Err(refuse("its platform is not exactly unknown/unknown"));
        }
        if entry.annotation(REFERENCE_TYPE) != Some(ATTESTATION_MANIFEST) {
            return Err(refuse(&format!(
                "its {REFERENCE_TYPE} is not {ATTESTATION_MANIFEST:?}"
            )));
        }
        let Some(of) = entry
            .annotation(REFERENCE_DIGEST)
            .and_then(|d| d.parse::<Digest>().ok())
        else {
            return Err(refuse(&format!("it has no valid {REFERENCE_DIGEST}")));
        };
        let gated_sibling = siblings.iter().any(|s| {
            s.digest == of
                && !std::ptr::eq(s, entry)
                && kind_of(s) == Role::Image
                && (is_concrete(s.platform.as_ref()) || !claims_attestation(s))
        });
        if !gated_sibling {
            return Err(refuse(&format!(
                "its {REFERENCE_DIGEST} {of} names no gated image of the same index"
            )));
        }
        if kind_of(entry) == Role::Index {
            return Err(refuse("it is an index"));
        }
        Ok(Role::Attestation { of })
    }

    fn count_blobs(&mut self, doc: &ManifestDoc, what: &str) -> Result<(), SelectionError> {
        for (i, b) in doc.blobs().enumerate() {
            let name = if i == 0 {
                format!("{what}: config {}", b.digest)
            } else {
                format!("{what}: layer {} ({})", i - 1, b.digest)
            };
            refuse_urls(b, &name).map_err(|d| self.refuse(d))?;
            if NON_DISTRIBUTABLE.contains(&b.media_type.as_str()) {
                return Err(self.refuse(format!(
                    "{name} is a non-distributable layer ({}): its content lives outside the \
                     registry",
                    b.media_type
                )));
            }
            if self.blobs.insert(b.digest.clone(), b.size).is_none() {
                self.bytes = self.bytes.saturating_add(b.size);
            }
        }
        if self.blobs.len() > self.limits.max_blobs {
            return Err(self.refuse(format!(
                "more than {} distinct blobs (limits.max_blobs)",
                self.limits.max_blobs
            )));
        }
        if self.bytes > self.limits.max_bytes {
            return Err(self.refuse(format!(
                "blobs of more than {} bytes in all (limits.max_bytes)",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }
}

/// Whether a platform is one a runtime would pick (`os` and `architecture` set, neither
/// `unknown`).
fn is_concrete(p: Option<&Platform>) -> bool {
    p.is_some_and(|p| {
        !p.os.is_empty()
            && !p.architecture.is_empty()
            && p.os != "unknown"
            && p.architecture != "unknown"
    })
}

/// Whether an entry says, in any way, that it is an attestation rather than an image.
fn claims_attestation(entry: &Descriptor) -> bool {
    entry.annotation(REFERENCE_TYPE).is_some()
        || entry.annotation(REFERENCE_DIGEST).is_some()
        || entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
}

fn refuse_urls(d: &Descriptor, name: &str) -> Result<(), String> {
    match &d.urls {
        Some(urls) if !urls.is_empty() => Err(format!(
            "{name} lists urls: its content would be fetched from outside the registry"
        )),
        _ => Ok(()),
    }
}

/// `index entry 1 (sha256:…, linux/amd64)`, prefixed by its parent's name below the top.
fn entry_name(parent: &str, i: usize, entry: &Descriptor) -> String {
    let platform = entry
        .platform
        .as_ref()
        .map_or_else(|| "no platform".to_owned(), ToString::to_string);
    let own = format!("index entry {i} ({}, {platform})", entry.digest);
    if parent == TOP {
        own
    } else {
        format!("{parent} > {own}")
    }
}

const TOP: &str = "the top manifest";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fixtures {
    //! Trees for the selection's tests and its callers' (gate, sign, promote).
    use super::*;
    use crate::manifest::{OCI_INDEX, OCI_MANIFEST};
    use crate::registry::memory::MemoryRegistry;
    use serde_json::{Value, json};

    pub(crate) const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub(crate) const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

    /// The repository the selection's own tests use.
    pub(crate) fn repo() -> ImageRef {
        "reg.example/quarantine/app:1".parse().unwrap()
    }

    /// Builds documents into one repository of a memory registry.
    pub(crate) struct Tree<'a> {
        pub(crate) reg: &'a MemoryRegistry,
        pub(crate) repo: ImageRef,
    }

    /// A builder over [`repo`].
    pub(crate) fn tree(reg: &MemoryRegistry) -> Tree<'_> {
        Tree { reg, repo: repo() }
    }

    impl Tree<'_> {
        /// Stores an image manifest with an image config (labels `labels`) and `layers` (media
        /// type, bytes), and `extra` top-level fields.
        pub(crate) fn manifest_with(
            &self,
            layers: &[(&str, &[u8])],
            extra: Value,
            labels: Value,
        ) -> RawManifest {
            let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
                "config": {"Labels": labels}, "n": rand_n()}))
            .unwrap();
            let size = config.len();
            let cfg = self.reg.put_blob_bytes(&self.repo, config.into());
            let layers: Vec<Value> = layers
                .iter()
                .map(|(mt, b)| {
                    let d = self
                        .reg
                        .put_blob_bytes(&self.repo, bytes::Bytes::copy_from_slice(b));
                    json!({"mediaType": mt, "digest": d, "size": b.len()})
                })
                .collect();
            let mut m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": CONFIG, "digest": cfg, "size": size}, "layers": layers});
            if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            self.put(&m, OCI_MANIFEST, None)
        }

        /// [`Tree::manifest_with`] without labels.
        pub(crate) fn manifest(&self, layers: &[(&str, &[u8])], extra: Value) -> RawManifest {
            self.manifest_with(layers, extra, json!({}))
        }

        /// Stores a document, optionally tagged.
        pub(crate) fn put(&self, v: &Value, mt: &str, tag: Option<&str>) -> RawManifest {
            let raw = RawManifest::new(serde_json::to_vec(v).unwrap().into(), mt.to_owned());
            self.reg.put_manifest_bytes(&self.repo, tag, raw.clone());
            raw
        }

        /// Stores an OCI index of `entries`.
        pub(crate) fn index(&self, entries: Vec<Value>, tag: Option<&str>) -> RawManifest {
            self.index_with(entries, json!({}), tag)
        }

        /// Stores an OCI index of `entries` with `annotations`.
        pub(crate) fn index_with(
            &self,
            entries: Vec<Value>,
            annotations: Value,
            tag: Option<&str>,
        ) -> RawManifest {
            let mut v = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
            if annotations.as_object().is_some_and(|a| !a.is_empty()) {
                v["annotations"] = annotations;
            }
            self.put(&v, OCI_INDEX, tag)
        }

        /// An index entry for a provable BuildKit attestation of `of`.
        pub(crate) fn attestation_of(&self, of: &RawManifest) -> Value {
            let att = self.manifest(&[(IN_TOTO_LAYER, b"{\"_type\":\"stmt\"}")], json!({}));
            entry(
                &att,
                Some("unknown/unknown"),
                json!({REFERENCE_TYPE: ATTESTATION_MANIFEST, REFERENCE_DIGEST: of.digest}),
            )
        }
    }

    fn rand_n() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    /// An index entry for `m`: `platform` as `os/arch[/variant]`, `annotations` unless null.
    pub(crate) fn entry(m: &RawManifest, platform: Option<&str>, annotations: Value) -> Value {
        let mut e = json!({"mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len()});
        if let Some(p) = platform {
            let parts: Vec<&str> = p.split('/').collect();
            e["platform"] = json!({"os": parts[0], "architecture": parts[1]});
            if let Some(v) = parts.get(2) {
                e["platform"]["variant"] = json!(v);
            }
        }
        if !annotations.is_null() {
            e["annotations"] = annotations;
        }
        e
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::manifest::OCI_MANIFEST;
    use crate::registry::memory::MemoryRegistry;
    use serde_json::{Value, json};

    async fn sel(reg: &MemoryRegistry) -> Result<Selection, SelectionError> {
        select(reg, &repo(), &Limits::default()).await
    }

    fn labels(s: &Selection) -> Vec<String> {
        s.images().map(Member::label).collect()
    }

    #[tokio::test]
    async fn gates_every_image_and_leaves_out_only_provable_attestations() {
        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        let amd = t.manifest(&[(LAYER, b"amd")], json!({}));
        let arm = t.manifest(&[(LAYER, b"arm")], json!({}));
        let bare = t.manifest(&[(LAYER, b"bare")], json!({}));
        let att = t.attestation_of(&amd);
        t.index(
            vec![
                entry(&amd, Some("linux/amd64"), Value::Null),
                entry(&arm, Some("linux/arm64"), Value::Null),
                entry(&bare, None, Value::Null),
                att,
            ],
            Some("1"),
        );
        let s = sel(&reg).await.unwrap();
        assert_eq!(labels(&s), ["linux/amd64", "linux/arm64", "image"]);
        assert_eq!(s.attestations().count(), 1);
        assert_eq!(s.top().role, Role::Index);
        assert_eq!(s.members.len(), 5);
    }

    /// The hole this module closes: an entry with a real platform that wears BuildKit's
    /// annotation is an image, and is gated.
    #[tokio::test]
    async fn an_annotated_entry_with_a_real_platform_is_gated() {
        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        let amd = t.manifest(&[(LAYER, b"amd")], json!({}));
        let arm = t.manifest(&[(LAYER, b"arm")], json!({}));
        t.index(
            vec![
                entry(
                    &amd,
                    Some("linux/amd64"),
                    json!({REFERENCE_TYPE: ATTESTATION_MANIFEST, REFERENCE_DIGEST: arm.digest}),
                ),
                entry(&arm, Some("linux/arm64"), Value::Null),
            ],
            Some("1"),
        );
        let s = sel(&reg).await.unwrap();
        assert_eq!(labels(&s), ["linux/amd64", "linux/arm64"]);
        assert_eq!(s.attestations().count(), 0);
    }

    #[tokio::test]
    async fn anything_that_only_looks_like_an_attestation_is_refused_naming_the_entry() {
        type Case = (&'static str, Box<dyn Fn(&Tree, &RawManifest) -> Value>);
        let cases: Vec<Case> = vec![
            (
                "not exactly unknown/unknown",
                Box::new(|t, img| {
                    let mut e = t.attestation_of(img);
                    e["platform"] = json!({"os": "linux", "architecture": "unknown"});
                    e
                }),
            ),
            (
                "is not \"attestation-manifest\"",
                Box::new(|t, img| {
                    let mut e = t.attestation_of(img);
                    e["annotations"][REFERENCE_TYPE] = json!("sbom");
                    e
                }),
            ),
            (
                "names no gated image",
                Box::new(|t, _| {
                    let other = t.manifest(&[(LAYER, b"elsewhere")], json!({}));
                    t.attestation_of(&other)
                }),
            ),
            (
                "has a layer of type",
                Box::new(|t, img| {
                    let att = t.manifest(&[(LAYER, b"a tarball")], json!({}));
                    entry(
                        &att,
                        Some("unknown/unknown"),
                        json!({REFERENCE_TYPE: ATTESTATION_MANIFEST, REFERENCE_DIGEST: img.digest}),
                    )
                }),
            ),
            (
                "no valid vnd.docker.reference.digest",
                Box::new(|t, img| {
                    let mut e = t.attestation_of(img);
                    e["annotations"]
                        .as_object_mut()
                        .unwrap()
                        .remove(REFERENCE_DIGEST);
                    e
                }),
            ),
            (
                "not exactly unknown/unknown",
                Box::new(|t, img| {
                    // No platform at all, but BuildKit's annotations.
                    let mut e = t.attestation_of(img);
                    e.as_object_mut().unwrap().remove("platform");
                    e
                }),
            ),
        ];
        for (needle, make) in cases {
            let reg = MemoryRegistry::new();
            let t = tree(&reg);
            let amd = t.manifest(&[(LAYER, b"amd")], json!({}));
            let odd = make(&t, &amd);
            let odd_digest = odd["digest"].as_str().unwrap().to_owned();
            t.index(
                vec![entry(&amd, Some("linux/amd64"), Value::Null), odd],
                Some("1"),
            );
            let e = sel(&reg).await.unwrap_err();
            assert_eq!(e.error_type(), ErrorType::ImageInvalid, "{e}");
            let msg = e.to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
            assert!(
                msg.contains(&format!("index entry 1 ({odd_digest}")),
                "{msg}"
            );
        }
    }

    #[tokio::test]
    async fn nested_indexes_are_walked_and_never_gated_as_images() {
        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        let amd = t.manifest(&[(LAYER, b"amd")], json!({}));
        let arm = t.manifest(&[(LAYER, b"arm")], json!({}));
        let inner = t.index(vec![entry(&arm, Some("linux/arm64"), Value::Null)], None);
        t.index(
            vec![
                entry(&amd, Some("linux/amd64"), Value::Null),
                entry(&inner, None, Value::Null),
            ],
            Some("1"),
        );
        let s = sel(&reg).await.unwrap();
        let images: Vec<&Digest> = s.images().map(|m| &m.raw.digest).collect();
        assert_eq!(images, [&amd.digest, &arm.digest]);
        assert_eq!(
            s.members.iter().filter(|m| m.role == Role::Index).count(),
            2
        );
    }

    #[tokio::test]
    async fn foreign_layers_urls_and_referrers_are_refused() {
        let foreign = NON_DISTRIBUTABLE[3];
        let subject = json!({"subject": {"mediaType": OCI_MANIFEST,
            "digest": Digest::of(b"s"), "size": 1}});
        let with_urls = |t: &Tree| {
            let m = t.manifest(&[(LAYER, b"u")], json!({}));
            let (mut doc, _, _) = ManifestDoc::parse(&m.bytes, None).unwrap();
            doc.layers[0].urls = Some(vec!["https://elsewhere.example/l".into()]);
            let mut v: Value = serde_json::from_slice(&m.bytes).unwrap();
            v["layers"] = serde_json::to_value(&doc.layers).unwrap();
            t.put(&v, OCI_MANIFEST, Some("1"))
        };
        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        t.manifest(&[(foreign, b"f")], json!({}));
        let m = t.manifest(&[(foreign, b"f")], json!({}));
        reg.put_manifest_bytes(&repo(), Some("1"), m);
        let e = sel(&reg).await.unwrap_err().to_string();
        assert!(e.contains("non-distributable"), "{e}");

        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        with_urls(&t);
        let e = sel(&reg).await.unwrap_err().to_string();
        assert!(e.contains("layer 0") && e.contains("urls"), "{e}");

        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        let m = t.manifest(&[(LAYER, b"r")], subject);
        reg.put_manifest_bytes(&repo(), Some("1"), m);
        let e = sel(&reg).await.unwrap_err().to_string();
        assert!(e.contains("has a subject") && e.contains("referrer"), "{e}");
    }

    #[tokio::test]
    async fn duplicates_are_read_once_and_limits_give_a_clear_error() {
        let reg = MemoryRegistry::new();
        let t = tree(&reg);
        let amd = t.manifest(&[(LAYER, b"amd"), (LAYER, b"amd2")], json!({}));
        t.index(
            vec![
                entry(&amd, Some("linux/amd64"), Value::Null),
                entry(&amd, Some("linux/amd64"), Value::Null),
            ],
            Some("1"),
        );
        let s = sel(&reg).await.unwrap();
        assert_eq!(s.images().count(), 1);
        assert_eq!(s.blobs().len(), 3);
        for (limits, needle) in [
            (
                Limits {
                    max_manifests: 1,
                    ..Limits::default()
                },
                "limits.max_manifests",
            ),
            (
                Limits {
                    max_blobs: 2,
                    ..Limits::default()
                },
                "limits.max_blobs",
            ),
            (
                Limits {
                    max_bytes: 10,
                    ..Limits::default()
                },
                "limits.max_bytes",
            ),
        ] {
            let e = select(&reg, &repo(), &limits).await.unwrap_err();
            assert_eq!(e.error_type(), ErrorType::ImageInvalid);
            assert!(e.to_string().contains(needle), "{e}");
        }
    }
}
