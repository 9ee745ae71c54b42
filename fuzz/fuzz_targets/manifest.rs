//! Manifest and index documents as a registry serves them (`ManifestDoc::parse`), with no
//! `Content-Type`, with each type we send in `Accept`, and with an unknown one; and the index
//! filter the copy engine applies to such a document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promotion_core::Digest;
use promotion_core::manifest::{
    ACCEPT, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Kind, ManifestDoc, OCI_INDEX, OCI_MANIFEST,
    filter_index,
};

fn check(data: &[u8], header: Option<&str>) {
    let Ok((doc, kind, media_type)) = ManifestDoc::parse(data, header) else {
        return;
    };
    // What parse promises: a known type, the kind that type names, a config on manifests.
    match kind {
        Kind::Manifest => {
            assert!(media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST);
            assert!(doc.config.is_some());
        }
        Kind::Index => assert!(media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST),
    }
    let _ = doc.blobs().count();
    if kind == Kind::Index {
        let keep: Vec<Digest> = doc
            .manifests
            .iter()
            .take(1)
            .map(|d| d.digest.clone())
            .collect();
        let _ = filter_index(data, &keep);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, None);
    for header in ACCEPT {
        check(data, Some(header));
    }
    check(
        data,
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    );
    let _ = filter_index(data, &[]);
});
