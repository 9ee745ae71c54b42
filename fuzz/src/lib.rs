//! Helpers shared by the fuzz targets (see `fuzz_targets/`).
//!
//! The multi-document targets (`selection`, `mutate`) read one input as a small tree of
//! documents:
//!
//! - documents are separated by a NUL byte ([`SEPARATOR`]); at most [`MAX_DOCS`] are read;
//! - a document may start with one selector byte `0`..`3`, naming its media type
//!   (`promotion_core::manifest::ACCEPT[n]`), or `4`, an unknown media type; without one the
//!   media type is the OCI index type when the document mentions `"manifests"`, else the OCI
//!   manifest type;
//! - `$1`..`$9` in a document is replaced by the `sha256:<hex>` digest of that later document
//!   (after its own substitution), and `#1`..`#9` by its size, so that the fuzzer can build
//!   indexes whose entries really point at other documents without guessing a hash. Documents
//!   are finished last to first, so a document can only name a later one (no cycles).

use bytes::Bytes;
use promotion_core::Digest;
use promotion_core::manifest::{ACCEPT, OCI_INDEX, OCI_MANIFEST};

/// Separates documents in one input.
pub const SEPARATOR: u8 = 0;
/// Documents read from one input; the rest is ignored.
pub const MAX_DOCS: usize = 6;

/// One document: its final bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct Document {
    /// Bytes after placeholder substitution.
    pub bytes: Bytes,
    /// `sha256` of `bytes`.
    pub digest: Digest,
    /// The media type the registry would report.
    pub media_type: String,
}

/// Split `data` into documents (see the module documentation).
pub fn documents(data: &[u8]) -> Vec<Document> {
    let parts: Vec<&[u8]> = data.split(|b| *b == SEPARATOR).take(MAX_DOCS).collect();
    let mut done: Vec<Option<Document>> = vec![None; parts.len()];
    for i in (0..parts.len()).rev() {
        let (media_type, body) = media_type_of(parts[i]);
        let bytes = substitute(body, |n| done.get(n).and_then(Option::as_ref));
        let digest = Digest::of(&bytes);
        done[i] = Some(Document {
            bytes: Bytes::from(bytes),
            digest,
            media_type,
        });
    }
    done.into_iter().flatten().collect()
}

fn media_type_of(doc: &[u8]) -> (String, &[u8]) {
    match doc.first() {
        Some(b @ b'0'..=b'3') => (ACCEPT[usize::from(b - b'0')].to_owned(), &doc[1..]),
        Some(b'4') => ("application/x-fuzz-unknown".to_owned(), &doc[1..]),
        _ => {
            let index = doc.windows(11).any(|w| w == b"\"manifests\"");
            let mt = if index { OCI_INDEX } else { OCI_MANIFEST };
            (mt.to_owned(), doc)
        }
    }
}

/// Replace `$n` by document n's digest and `#n` by its size, for documents already finished.
fn substitute<'d>(body: &[u8], finished: impl Fn(usize) -> Option<&'d Document>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        let next = body.get(i + 1).copied();
        if let (b'$' | b'#', Some(d @ b'1'..=b'9')) = (b, next)
            && let Some(doc) = finished(usize::from(d - b'0'))
        {
            if b == b'$' {
                out.extend_from_slice(doc.digest.as_str().as_bytes());
            } else {
                out.extend_from_slice(doc.bytes.len().to_string().as_bytes());
            }
            i += 2;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_later_documents() {
        let docs = documents(b"{\"d\":\"$1\",\"s\":#1,\"x\":\"$2\"}\x002{}");
        assert_eq!(docs.len(), 2);
        let want = format!("{{\"d\":\"{}\",\"s\":2,\"x\":\"$2\"}}", Digest::of(b"{}"));
        assert_eq!(&docs[0].bytes[..], want.as_bytes());
        assert_eq!(docs[1].media_type, ACCEPT[2]);
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = format!("{}/corpus/{target}/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The seeds reach past the first error: the trees are selected (or refused for the
    /// reason the seed is about), the mutations succeed.
    #[test]
    fn seeds_are_what_they_say() {
        use promotion_core::ImageRef;
        use promotion_core::manifest::RawManifest;
        use promotion_core::mutate::{Doc, Entries, Mutation, mutate_tree};
        use promotion_core::registry::memory::MemoryRegistry;
        use promotion_core::selection::{Limits, select};
        use std::collections::HashMap;

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let repo: ImageRef = "reg.example/quarantine/app:1".parse().unwrap();
        for (name, ok) in [
            ("single-manifest", true),
            ("index-with-attestation", true),
            ("nested-index", true),
            ("docker-list", true),
            ("referrer", false),
        ] {
            let reg = MemoryRegistry::new();
            for (i, d) in documents(&seed("selection", name)).iter().enumerate() {
                let raw = RawManifest::new(d.bytes.clone(), d.media_type.clone());
                reg.put_manifest_bytes(&repo, (i == 0).then_some("1"), raw);
            }
            let got = rt.block_on(select(&reg, &repo, &Limits::default()));
            assert_eq!(got.is_ok(), ok, "{name}: {:?}", got.err());
        }
        for name in [
            "manifest-annotations",
            "manifest-labels",
            "index",
            "nested-index",
            "reserved-keys",
        ] {
            let data = seed("mutate", name);
            let docs = documents(&data[1..]);
            let mut m = Mutation::default();
            if data[0] & 1 != 0 {
                m.annotations = Entries::from_input("annotation", [("a", "b")]).unwrap();
            }
            if data[0] & 2 != 0 {
                m.labels = Entries::from_input("label", [("c", "d")]).unwrap();
            }
            let doc = |d: &Document| Doc {
                bytes: d.bytes.clone(),
                media_type: d.media_type.clone(),
            };
            let manifests: HashMap<_, _> = docs[1..]
                .iter()
                .map(|d| (d.digest.clone(), doc(d)))
                .collect();
            let configs: HashMap<_, _> = docs[1..]
                .iter()
                .map(|d| (d.digest.clone(), d.bytes.clone()))
                .collect();
            let got = mutate_tree(&doc(&docs[0]), &manifests, &configs, &m);
            assert!(got.is_ok(), "{name}: {:?}", got.err());
        }
    }
}
