//! Manifest and index documents, read without re-serialising them.
//!
//! The copy engine must push the exact bytes it pulled (the digest is the hash of those bytes),
//! so documents are kept as raw bytes and only *read* through [`ManifestDoc`] to find the
//! descriptors they reference. Mutation (annotations, labels) lives in its own module.

use crate::digest::Digest;
use crate::platform::Platform;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI empty descriptor media type (`{}`), used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Every manifest type we understand, sent in every manifest request. distribution 2.8 answers
/// 404 for an OCI manifest when its type is missing from `Accept`, and silently picks one
/// platform of a Docker list when only the Docker manifest type is listed.
pub const ACCEPT: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// Registries (ECR among them) refuse manifests over 4 MiB; we refuse to read larger ones.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A content descriptor as it appears in manifests and indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform, on index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type, on referrer entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Other places to fetch the content from (foreign layers). Read so that the selection can
    /// refuse them: a node must never be sent outside the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    /// The value of annotation `key` on this descriptor.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// What kind of document a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image (or artifact) manifest: config plus layers.
    Manifest,
    /// An index (or Docker manifest list): other manifests.
    Index,
}

/// The parts of a manifest or index the pipeline reads. Unknown fields are ignored here and
/// survive untouched in the raw bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    /// 2 for everything we accept.
    pub schema_version: Option<u32>,
    /// The document's own media type, when it states one.
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    pub artifact_type: Option<String>,
    /// Image config (manifests only).
    pub config: Option<Descriptor>,
    /// Layers (manifests only).
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Children (indexes only).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest cannot be handled.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the shape of a manifest.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// A media type we do not copy (Docker schema 1, or something unknown).
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// Over [`MAX_MANIFEST_BYTES`].
    #[error("manifest of {0} bytes exceeds the 4 MiB limit")]
    TooLarge(usize),
}

impl ManifestDoc {
    /// Parse `bytes`; `header_type` is the registry's `Content-Type`, used when the document
    /// does not state its own media type (allowed for OCI documents).
    pub fn parse(
        bytes: &[u8],
        header_type: Option<&str>,
    ) -> Result<(Self, Kind, String), ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let doc: ManifestDoc =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if doc.schema_version != Some(2) {
            return Err(ManifestError::UnsupportedMediaType(format!(
                "schemaVersion {:?} (only schema 2 manifests are supported)",
                doc.schema_version
            )));
        }
        let media_type = match (doc.media_type.as_deref(), header_type) {
            (Some(m), _) => m.to_owned(),
            (None, Some(h)) if ACCEPT.contains(&h) => h.to_owned(),
            // OCI allows omitting mediaType; infer it from the shape.
            (None, _) if !doc.manifests.is_empty() => OCI_INDEX.to_owned(),
            (None, _) => OCI_MANIFEST.to_owned(),
        };
        let kind = match media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
            OCI_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
            other => return Err(ManifestError::UnsupportedMediaType(other.to_owned())),
        };
        if kind == Kind::Manifest && doc.config.is_none() {
            return Err(ManifestError::Malformed(
                "an image manifest needs a config".into(),
            ));
        }
        Ok((doc, kind, media_type))
    }

    /// The blobs a manifest references: config first, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter())
    }
}

/// A manifest as pulled: exact bytes, the digest of those bytes, and its media type.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The bytes, exactly as the registry served them.
    pub bytes: Bytes,
    /// `sha256` of `bytes`.
    pub digest: Digest,
    /// Media type (from the document, else the `Content-Type` header).
    pub media_type: String,
}

impl RawManifest {
    /// Wrap bytes, computing their digest.
    pub fn new(bytes: Bytes, media_type: String) -> Self {
        RawManifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type,
        }
    }

    /// A descriptor pointing at this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
            artifact_type: None,
            annotations: None,
            urls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_and_oci_documents_and_infers_missing_media_types() {
        let cfg = format!(
            r#"{{"mediaType":"x","digest":"{}","size":2}}"#,
            Digest::of(b"{}")
        );
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{cfg},"layers":[]}}"#
        );
        let (_, kind, mt) = ManifestDoc::parse(docker.as_bytes(), None).unwrap();
        assert_eq!((kind, mt.as_str()), (Kind::Manifest, DOCKER_MANIFEST));

        let oci_no_type = format!(r#"{{"schemaVersion":2,"config":{cfg},"layers":[{cfg}]}}"#);
        let (doc, kind, mt) = ManifestDoc::parse(oci_no_type.as_bytes(), None).unwrap();
        assert_eq!((kind, mt.as_str()), (Kind::Manifest, OCI_MANIFEST));
        assert_eq!(doc.blobs().count(), 2);

        let index = format!(r#"{{"schemaVersion":2,"manifests":[{cfg}]}}"#);
        let (_, kind, _) =
            ManifestDoc::parse(index.as_bytes(), Some(DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(kind, Kind::Index);
    }

    #[test]
    fn rejects_schema1_unknown_types_and_oversized_documents() {
        let s1 = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(
            ManifestDoc::parse(s1, None)
                .unwrap_err()
                .to_string()
                .contains("schemaVersion")
        );
        let odd = br#"{"schemaVersion":2,"mediaType":"application/x-odd","layers":[]}"#;
        assert!(
            ManifestDoc::parse(odd, None)
                .unwrap_err()
                .to_string()
                .contains("application/x-odd")
        );
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            ManifestDoc::parse(&big, None),
            Err(ManifestError::TooLarge(_))
        ));
        assert!(matches!(
            ManifestDoc::parse(b"nope", None),
            Err(ManifestError::Malformed(_))
        ));
    }
}

/// A copy of an index keeping only the children in `keep` (platform selection). The only
/// re-serialisation the copy engine does, and only when asked to drop platforms; every other
/// field and the order of the remaining children are kept.
pub fn filter_index(bytes: &[u8], keep: &[Digest]) -> Result<Bytes, ManifestError> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    let children = doc
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| ManifestError::Malformed("an index needs a manifests array".into()))?;
    children.retain(|c| {
        c.get("digest")
            .and_then(|d| d.as_str())
            .is_some_and(|d| keep.iter().any(|k| k.as_str() == d))
    });
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| ManifestError::Malformed(e.to_string()))
}

/// A referrers index (the tag-schema fallback `sha256-<hex>`) listing `descriptors`.
pub fn referrers_index(descriptors: &[Descriptor]) -> Bytes {
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": descriptors,
    });
    #[allow(clippy::unwrap_used)] // serialising a Value of plain strings and numbers cannot fail
    Bytes::from(serde_json::to_vec(&doc).unwrap())
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn filter_index_keeps_order_unknown_fields_and_only_selected_children() {
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        let src = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","x-extra":{{"k":1}},"manifests":[{{"digest":"{a}","size":1,"mediaType":"{OCI_MANIFEST}"}},{{"digest":"{b}","size":1,"mediaType":"{OCI_MANIFEST}"}},{{"digest":"{c}","size":1,"mediaType":"{OCI_MANIFEST}"}}],"annotations":{{"z":"1"}}}}"#
        );
        let out = filter_index(src.as_bytes(), &[c.clone(), a.clone()]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let kept: Vec<_> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(kept, [a.as_str(), c.as_str()]);
        assert_eq!(v["x-extra"]["k"], 1);
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "schemaVersion",
                "mediaType",
                "x-extra",
                "manifests",
                "annotations"
            ]
        );
    }

    #[test]
    fn referrers_index_is_a_parsable_oci_index() {
        let d = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(b"r"),
            size: 3,
            platform: None,
            artifact_type: Some("application/example".into()),
            annotations: None,
            urls: None,
        };
        let bytes = referrers_index(std::slice::from_ref(&d));
        let (doc, kind, _) = ManifestDoc::parse(&bytes, None).unwrap();
        assert_eq!(kind, Kind::Index);
        assert_eq!(doc.manifests, vec![d]);
    }
}
