//! Pure manifest mutation: annotations on manifests and indexes, labels in image configs.
//!
//! A manifest tree (an index or a single manifest, its children and their image configs) goes
//! in; new bytes and digests come out. There is no I/O here: [`crate::annotate`] reads the tree
//! and pushes the result.
//!
//! Documents are edited as `serde_json::Value` (the workspace enables `preserve_order`), so
//! unknown fields and the order of keys survive. A document whose content does not change keeps
//! its exact bytes (and so its digest); one that changes is re-serialised compactly.
//!
//! The pipeline records where an image came from in annotations of its own namespace:
//!
//! - [`SOURCE_NAME`] (`io.ecr-promotion.source.name`): the source reference as given, e.g.
//!   `123456789012.dkr.ecr.us-east-1.amazonaws.com/quarantine/app:1.4.2`;
//! - [`SOURCE_DIGEST`] (`io.ecr-promotion.source.digest`): the digest the source resolved to (the
//!   top of the tree, index or manifest).
//!
//! `org.opencontainers.image.base.name`/`base.digest` were considered and rejected: the image
//! spec defines them as the image this one was *built from* (its `FROM`), and tools that track
//! base-image updates read them that way. A promotion source is the same image, not its base.
//!
//! Every key under [`RESERVED_PREFIX`] belongs to the pipeline: input cannot set or override
//! one (`Input.Invalid`, naming the key).

use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::manifest::{DOCKER_MANIFEST, Kind, ManifestDoc, ManifestError, OCI_MANIFEST};
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Keys the pipeline sets; input may not use this prefix.
pub const RESERVED_PREFIX: &str = "io.ecr-promotion.";
/// Annotation: the source reference as given.
pub const SOURCE_NAME: &str = "io.ecr-promotion.source.name";
/// Annotation: the digest the source resolved to.
pub const SOURCE_DIGEST: &str = "io.ecr-promotion.source.digest";
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Most annotations (or labels) one request may add.
pub const MAX_ENTRIES: usize = 64;
/// Image config media types whose `config.Labels` are edited.
pub const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
/// buildkit's attestation manifests point at their image through this index annotation.
const DOCKER_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// Why a mutation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    /// A key or value that fails validation; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// A document that is not the JSON it should be.
    #[error("{what}: {source}")]
    Manifest {
        /// Which document.
        what: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// The tree handed in misses a child or config.
    #[error("{0} is not part of the tree handed in")]
    Missing(String),
}

impl Classify for MutateError {
    fn error_type(&self) -> ErrorType {
        match self {
            MutateError::Invalid(_) => ErrorType::InputInvalid,
            MutateError::Manifest { .. } | MutateError::Missing(_) => ErrorType::ImageInvalid,
        }
    }
}

/// A descriptor's `digest` field, parsed; `Invalid` with `what()` when it is missing or bad.
fn digest_field(
    field: Option<&Value>,
    what: impl FnOnce() -> String,
) -> Result<Digest, MutateError> {
    field
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MutateError::Invalid(what()))
}

/// `Err(MutateError::Invalid(msg))`.
fn invalid<T>(msg: String) -> Result<T, MutateError> {
    Err(MutateError::Invalid(msg))
}

/// Validated key/value pairs to add (annotations or labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries(BTreeMap<String, String>);

impl Entries {
    /// Validate `pairs` coming from input. `what` (`annotation`, `label`) names them in errors.
    ///
    /// Keys: 1 to [`MAX_KEY_BYTES`] bytes of `[A-Za-z0-9._/-]`, starting and ending with a
    /// letter or digit, outside [`RESERVED_PREFIX`], each given once. Values: 1 to
    /// [`MAX_VALUE_BYTES`] bytes without control characters. At most [`MAX_ENTRIES`] pairs.
    pub fn from_input<I, K, V>(what: &str, pairs: I) -> Result<Self, MutateError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut out = BTreeMap::new();
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            validate_key(what, &k)?;
            if k.starts_with(RESERVED_PREFIX) {
                return invalid(format!(
                    "{what} key {k:?} is reserved: keys under {RESERVED_PREFIX} are set by the pipeline"
                ));
            }
            validate_value(what, &k, &v)?;
            if out.insert(k.clone(), v).is_some() {
                return invalid(format!("{what} key {k:?} is given twice"));
            }
        }
        if out.len() > MAX_ENTRIES {
            return invalid(format!(
                "{} {what}s given; at most {MAX_ENTRIES} are allowed",
                out.len()
            ));
        }
        Ok(Entries(out))
    }

    /// Parse `K=V` strings (the command line's `--annotation`/`--label`).
    pub fn parse_kv<S: AsRef<str>>(what: &str, items: &[S]) -> Result<Self, MutateError> {
        let mut pairs = Vec::new();
        for item in items {
            let item = item.as_ref();
            let Some((k, v)) = item.split_once('=') else {
                return invalid(format!("{what} {:?} is not KEY=VALUE", truncate(item)));
            };
            pairs.push((k.to_owned(), v.to_owned()));
        }
        Self::from_input(what, pairs)
    }

    /// Add a pipeline-owned entry (reserved keys allowed: the pipeline sets them).
    pub fn with_reserved(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The pairs, sorted by key.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn validate_key(what: &str, k: &str) -> Result<(), MutateError> {
    let bad = |why: &str| {
        Err(MutateError::Invalid(format!(
            "{what} key {:?} {why}",
            truncate(k)
        )))
    };
    if k.is_empty() {
        return bad("is empty");
    }
    if k.len() > MAX_KEY_BYTES {
        return bad(&format!("is longer than {MAX_KEY_BYTES} bytes"));
    }
    if !k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        return bad("may only contain letters, digits, '.', '_', '-' and '/'");
    }
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !ends_ok(k.bytes().next()) || !ends_ok(k.bytes().last()) {
        return bad("must start and end with a letter or digit");
    }
    Ok(())
}

fn validate_value(what: &str, k: &str, v: &str) -> Result<(), MutateError> {
    if v.is_empty() {
        return invalid(format!("{what} {k:?} has an empty value"));
    }
    if v.len() > MAX_VALUE_BYTES {
        return invalid(format!(
            "{what} {k:?} has a value of {} bytes; at most {MAX_VALUE_BYTES} are allowed",
            v.len()
        ));
    }
    if v.chars().any(char::is_control) {
        return invalid(format!("{what} {k:?} has control characters in its value"));
    }
    Ok(())
}

/// What to change.
#[derive(Debug, Clone, Default)]
pub struct Mutation {
    /// Annotations for the index and every manifest (input plus the pipeline's own).
    pub annotations: Entries,
    /// Labels for every image config.
    pub labels: Entries,
}

/// A document of the tree as handed in: bytes and media type.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Exact bytes.
    pub bytes: Bytes,
    /// Media type.
    pub media_type: String,
}

/// A document of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutated {
    /// The digest before.
    pub old_digest: Digest,
    /// The digest after (equal to `old_digest` when unchanged).
    pub digest: Digest,
    /// The bytes after (the input bytes when unchanged).
    pub bytes: Bytes,
    /// Media type (unchanged).
    pub media_type: String,
}

impl Mutated {
    /// Whether the content changed.
    pub fn changed(&self) -> bool {
        self.digest != self.old_digest
    }
}

/// The whole result: new configs, children (in tree order) and the top.
#[derive(Debug, Clone)]
pub struct MutatedTree {
    /// Image configs that changed, one per distinct old config digest.
    pub configs: Vec<Mutated>,
    /// Reserved keys the source documents carried and the mutation removed, as
    /// `<document digest> <annotation|label> <key>`.
    pub removed: Vec<String>,
    /// Manifests below the top, children before parents.
    pub children: Vec<Mutated>,
    /// The top document.
    pub top: Mutated,
}

/// Mutate a tree. `manifests` holds every manifest below `top` by digest, `configs` every image
/// config blob by digest. Indexes nested in indexes are followed.
pub fn mutate_tree(
    top: &Doc,
    manifests: &HashMap<Digest, Doc>,
    configs: &HashMap<Digest, Bytes>,
    m: &Mutation,
) -> Result<MutatedTree, MutateError> {
    let mut out = MutatedTree {
        configs: Vec::new(),
        removed: Vec::new(),
        children: Vec::new(),
        top: Mutated {
            old_digest: Digest::of(&top.bytes),
            digest: Digest::of(&top.bytes),
            bytes: top.bytes.clone(),
            media_type: top.media_type.clone(),
        },
    };
    let mut done: HashMap<Digest, Mutated> = HashMap::new();
    out.top = mutate_doc(top, manifests, configs, m, &mut done, &mut out, 0)?;
    Ok(out)
}

fn mutate_doc(
    doc: &Doc,
    manifests: &HashMap<Digest, Doc>,
    configs: &HashMap<Digest, Bytes>,
    m: &Mutation,
    done: &mut HashMap<Digest, Mutated>,
    out: &mut MutatedTree,
    depth: usize,
) -> Result<Mutated, MutateError> {
    let old_digest = Digest::of(&doc.bytes);
    if let Some(d) = done.get(&old_digest) {
        return Ok(d.clone());
    }
    let what = || format!("manifest {old_digest}");
    let (_, kind, _) = ManifestDoc::parse(&doc.bytes, Some(&doc.media_type)).map_err(|source| {
        MutateError::Manifest {
            what: what(),
            source,
        }
    })?;
    let mut v = parse_object(&doc.bytes, &what)?;
    // The document's own reserved keys go first; the pipeline's are added below.
    scrub(
        &mut v,
        "annotations",
        old_digest.as_str(),
        "annotation",
        &mut out.removed,
    );
    match kind {
        Kind::Index => {
            if depth >= 4 {
                return Err(MutateError::Invalid(
                    "indexes nested deeper than 4 levels".into(),
                ));
            }
            let mut renamed: HashMap<String, (Digest, u64)> = HashMap::new();
            let children = v
                .get_mut("manifests")
                .and_then(Value::as_array_mut)
                .ok_or_else(|| MutateError::Invalid(format!("{}: no manifests array", what())))?;
            for entry in children.iter_mut() {
                let d = digest_field(entry.get("digest"), || {
                    format!("{}: an entry has no valid digest", what())
                })?;
                let child = manifests
                    .get(&d)
                    .ok_or_else(|| MutateError::Missing(format!("manifest {d}")))?;
                let new = mutate_doc(child, manifests, configs, m, done, out, depth + 1)?;
                if new.changed() {
                    entry["digest"] = Value::String(new.digest.to_string());
                    entry["size"] = Value::from(new.bytes.len() as u64);
                    renamed.insert(d.to_string(), (new.digest.clone(), new.bytes.len() as u64));
                }
            }
            // buildkit attestation manifests name the image they describe by digest.
            for entry in children.iter_mut() {
                let at = format!(
                    "{old_digest} entry {}",
                    entry["digest"].as_str().unwrap_or("?")
                );
                scrub(entry, "annotations", &at, "annotation", &mut out.removed);
                if let Some(r) = entry
                    .get_mut("annotations")
                    .and_then(|a| a.get_mut(DOCKER_REFERENCE_DIGEST))
                    && let Some((new, _)) = r.as_str().and_then(|s| renamed.get(s))
                {
                    *r = Value::String(new.to_string());
                }
            }
            add_entries(&mut v, "annotations", m.annotations.as_map());
        }
        Kind::Manifest => {
            if let Some(cfg) = v.get_mut("config").and_then(Value::as_object_mut) {
                let mt = cfg.get("mediaType").and_then(Value::as_str).unwrap_or("");
                if IMAGE_CONFIGS.contains(&mt) {
                    let d = digest_field(cfg.get("digest"), || {
                        format!("{}: config has no valid digest", what())
                    })?;
                    let new = label_config(&d, configs, &m.labels, out)?;
                    if new.changed() {
                        cfg.insert("digest".into(), Value::String(new.digest.to_string()));
                        cfg.insert("size".into(), Value::from(new.bytes.len() as u64));
                    }
                }
            }
            // Only image manifests get annotations (artifacts such as signatures are content
            // of their own and are left as they are).
            if [OCI_MANIFEST, DOCKER_MANIFEST].contains(&doc.media_type.as_str()) {
                add_entries(&mut v, "annotations", m.annotations.as_map());
            }
        }
    }
    let result = finish(doc, old_digest.clone(), &v)?;
    if depth > 0 {
        out.children.push(result.clone());
    }
    done.insert(old_digest, result.clone());
    Ok(result)
}

fn label_config(
    d: &Digest,
    configs: &HashMap<Digest, Bytes>,
    labels: &Entries,
    out: &mut MutatedTree,
) -> Result<Mutated, MutateError> {
    if let Some(done) = out.configs.iter().find(|c| c.old_digest == *d) {
        return Ok(done.clone());
    }
    let Some(bytes) = configs.get(d) else {
        if labels.is_empty() {
            // Nothing to add, and the caller did not read it: left as it is.
            return Ok(Mutated {
                old_digest: d.clone(),
                digest: d.clone(),
                bytes: Bytes::new(),
                media_type: String::new(),
            });
        }
        return Err(MutateError::Missing(format!("config {d}")));
    };
    let what = || format!("image config {d}");
    let mut v = parse_object(bytes, &what)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| MutateError::Invalid(format!("{} is not an object", what())))?;
    // `config` is optional (and may be null) in the image spec.
    let inner = obj
        .entry("config")
        .or_insert_with(|| Value::Object(Map::new()));
    if inner.is_null() {
        *inner = Value::Object(Map::new());
    }
    if !inner.is_object() {
        return invalid(format!("{}: config is not an object", what()));
    }
    scrub(inner, "Labels", d.as_str(), "label", &mut out.removed);
    add_entries(inner, "Labels", labels.as_map());
    let doc = Doc {
        bytes: bytes.clone(),
        media_type: String::new(),
    };
    let new = finish(&doc, d.clone(), &v)?;
    if new.changed() {
        out.configs.push(new.clone());
    }
    Ok(new)
}

fn parse_object(bytes: &[u8], what: &dyn Fn() -> String) -> Result<Value, MutateError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| MutateError::Manifest {
        what: what(),
        source: ManifestError::Malformed(e.to_string()),
    })?;
    if !v.is_object() {
        return invalid(format!("{} is not an object", what()));
    }
    Ok(v)
}

/// Remove every key under [`RESERVED_PREFIX`] from the object `v[field]`, recording each as
/// `<at> <what> <key>`: a source document cannot speak for the pipeline.
fn scrub(v: &mut Value, field: &str, at: &str, what: &str, removed: &mut Vec<String>) {
    let Some(map) = v.get_mut(field).and_then(Value::as_object_mut) else {
        return;
    };
    let reserved: Vec<String> = map
        .keys()
        .filter(|k| k.starts_with(RESERVED_PREFIX))
        .cloned()
        .collect();
    for k in reserved {
        map.remove(&k);
        removed.push(format!("{at} {what} {k}"));
    }
}

/// Merge `entries` into `v[field]` (created when absent or null); existing keys are replaced.
fn add_entries(v: &mut Value, field: &str, entries: &BTreeMap<String, String>) {
    if entries.is_empty() {
        return;
    }
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    let slot = obj
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Some(map) = slot.as_object_mut() {
        for (k, val) in entries {
            map.insert(k.clone(), Value::String(val.clone()));
        }
    }
}

/// The new document: the original bytes when the content is unchanged, else compact JSON.
fn finish(doc: &Doc, old_digest: Digest, v: &Value) -> Result<Mutated, MutateError> {
    let original: Value =
        serde_json::from_slice(&doc.bytes).map_err(|e| MutateError::Manifest {
            what: format!("document {old_digest}"),
            source: ManifestError::Malformed(e.to_string()),
        })?;
    if original == *v {
        return Ok(Mutated {
            digest: old_digest.clone(),
            old_digest,
            bytes: doc.bytes.clone(),
            media_type: doc.media_type.clone(),
        });
    }
    let bytes = Bytes::from(serde_json::to_vec(v).map_err(|e| MutateError::Manifest {
        what: format!("document {old_digest}"),
        source: ManifestError::Malformed(e.to_string()),
    })?);
    Ok(Mutated {
        digest: Digest::of(&bytes),
        old_digest,
        bytes,
        media_type: doc.media_type.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::OCI_INDEX;

    fn desc(mt: &str, bytes: &[u8]) -> Value {
        serde_json::json!({"mediaType": mt, "digest": Digest::of(bytes).as_str(), "size": bytes.len()})
    }

    struct Tree {
        top: Doc,
        manifests: HashMap<Digest, Doc>,
        configs: HashMap<Digest, Bytes>,
        children: Vec<Bytes>,
    }

    fn tree() -> Tree {
        let mut manifests = HashMap::new();
        let mut configs = HashMap::new();
        let mut children = Vec::new();
        let mut entries = Vec::new();
        for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
            // Pretty-printed with unknown fields: must survive exactly.
            let cfg = format!(
                "{{\n  \"architecture\": \"{arch}\",\n  \"os\": \"linux\",\n  \"x-unknown\": [1, 2.50, {{\"z\": null}}],\n  \"config\": {{\"Env\": [\"A=1\"], \"Labels\": {{\"existing\": \"{i}\"}}}},\n  \"rootfs\": {{\"type\": \"layers\", \"diff_ids\": []}}\n}}"
            );
            let cfg = Bytes::from(cfg);
            configs.insert(Digest::of(&cfg), cfg.clone());
            let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": desc("application/vnd.oci.image.config.v1+json", &cfg),
                "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", b"layer")],
                "x-vendor": {"keep": true}});
            let mb = Bytes::from(serde_json::to_vec_pretty(&m).unwrap());
            manifests.insert(
                Digest::of(&mb),
                Doc {
                    bytes: mb.clone(),
                    media_type: OCI_MANIFEST.into(),
                },
            );
            let mut e = desc(OCI_MANIFEST, &mb);
            e["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            entries.push(e);
            children.push(mb);
        }
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
            "annotations": {"org.example.keep": "yes"}});
        Tree {
            top: Doc {
                bytes: Bytes::from(serde_json::to_vec_pretty(&idx).unwrap()),
                media_type: OCI_INDEX.into(),
            },
            manifests,
            configs,
            children,
        }
    }

    fn mutation() -> Mutation {
        Mutation {
            annotations: Entries::parse_kv("annotation", &["org.example.team=payments"])
                .unwrap()
                .with_reserved(SOURCE_DIGEST, "sha256:abc"),
            labels: Entries::parse_kv("label", &["owner=alice"]).unwrap(),
        }
    }

    #[test]
    fn annotates_every_level_labels_every_config_and_keeps_unknown_fields() {
        let t = tree();
        let out = mutate_tree(&t.top, &t.manifests, &t.configs, &mutation()).unwrap();
        assert_eq!(out.children.len(), 2);
        assert_eq!(out.configs.len(), 2);
        let top: Value = serde_json::from_slice(&out.top.bytes).unwrap();
        assert_eq!(top["annotations"]["org.example.team"], "payments");
        assert_eq!(top["annotations"]["org.example.keep"], "yes");
        assert_eq!(top["annotations"][SOURCE_DIGEST], "sha256:abc");
        // Index entries point at the new children, with their sizes; platforms kept.
        for (entry, child) in top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&out.children)
        {
            assert_eq!(entry["digest"], child.digest.as_str());
            assert_eq!(entry["size"], child.bytes.len() as u64);
            assert!(entry["platform"]["os"] == "linux");
            let m: Value = serde_json::from_slice(&child.bytes).unwrap();
            assert_eq!(m["annotations"]["org.example.team"], "payments");
            assert_eq!(m["x-vendor"]["keep"], true);
            let cfg = out
                .configs
                .iter()
                .find(|c| c.digest.as_str() == m["config"]["digest"])
                .unwrap();
            assert_eq!(m["config"]["size"], cfg.bytes.len() as u64);
            let c: Value = serde_json::from_slice(&cfg.bytes).unwrap();
            assert_eq!(c["config"]["Labels"]["owner"], "alice");
            assert!(c["config"]["Labels"]["existing"].is_string());
            assert_eq!(c["config"]["Env"][0], "A=1");
            // Unknown fields survive with their values and key order.
            assert_eq!(c["x-unknown"][1].as_f64(), Some(2.5));
            let keys: Vec<_> = c.as_object().unwrap().keys().cloned().collect();
            assert_eq!(
                keys,
                ["architecture", "os", "x-unknown", "config", "rootfs"]
            );
        }
    }

    #[test]
    fn nothing_to_add_keeps_every_byte() {
        let t = tree();
        let out = mutate_tree(&t.top, &t.manifests, &t.configs, &Mutation::default()).unwrap();
        assert_eq!(out.top.bytes, t.top.bytes);
        assert!(!out.top.changed());
        assert!(out.configs.is_empty());
        for (c, orig) in out.children.iter().zip(&t.children) {
            assert_eq!(&c.bytes, orig);
        }
    }

    #[test]
    fn a_single_manifest_and_a_config_without_config_section() {
        let cfg = Bytes::from_static(br#"{"architecture":"amd64","os":"linux","config":null}"#);
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": desc("application/vnd.docker.container.image.v1+json", &cfg), "layers": []});
        let top = Doc {
            bytes: Bytes::from(serde_json::to_vec(&m).unwrap()),
            media_type: DOCKER_MANIFEST.into(),
        };
        let configs = HashMap::from([(Digest::of(&cfg), cfg.clone())]);
        let out = mutate_tree(&top, &HashMap::new(), &configs, &mutation()).unwrap();
        let c: Value = serde_json::from_slice(&out.configs[0].bytes).unwrap();
        assert_eq!(c["config"]["Labels"]["owner"], "alice");
        assert!(out.children.is_empty());
        let v: Value = serde_json::from_slice(&out.top.bytes).unwrap();
        assert_eq!(v["config"]["digest"], out.configs[0].digest.as_str());
    }

    #[test]
    fn reserved_keys_and_bad_entries_are_refused_naming_the_key() {
        let cases: Vec<(Vec<String>, &str)> = vec![
            (vec![format!("{SOURCE_DIGEST}=x")], "reserved"),
            (vec!["io.ecr-promotion.anything=x".into()], "reserved"),
            (vec!["=v".into()], "empty"),
            (vec!["k=".into()], "empty value"),
            (vec!["novalue".into()], "KEY=VALUE"),
            (
                vec![format!("{}=v", "k".repeat(MAX_KEY_BYTES + 1))],
                "longer",
            ),
            (
                vec![format!("k={}", "v".repeat(MAX_VALUE_BYTES + 1))],
                "at most",
            ),
            (vec!["bad key=v".into()], "may only contain"),
            (vec![".k=v".into()], "start and end"),
            (vec!["k=a\nb".into()], "control"),
            (vec!["k=1".into(), "k=2".into()], "twice"),
            (
                (0..=MAX_ENTRIES).map(|i| format!("k{i}=v")).collect(),
                "at most",
            ),
        ];
        for (input, needle) in cases {
            let e = Entries::parse_kv("annotation", &input).unwrap_err();
            assert_eq!(e.error_type(), ErrorType::InputInvalid);
            assert!(e.to_string().contains(needle), "{input:?}: {e}");
        }
        let e = Entries::parse_kv("label", &[format!("{SOURCE_NAME}=x")]).unwrap_err();
        assert!(e.to_string().contains(SOURCE_NAME), "{e}");
    }

    #[test]
    fn a_missing_child_is_reported() {
        let t = tree();
        let e = mutate_tree(&t.top, &HashMap::new(), &t.configs, &mutation()).unwrap_err();
        assert!(matches!(e, MutateError::Missing(_)), "{e}");
    }
}
