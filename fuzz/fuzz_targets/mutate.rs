//! Manifest mutation (`mutate::mutate_tree`, promote-and-annotate's engine) on documents read
//! from an ingress repository. The first input byte chooses the mutation (bit 0: annotations,
//! bit 1: labels, bit 2: no children); the rest is split into documents (see the fuzz crate's
//! `documents`): the first is the top, the others are the children and image configs, by digest.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use promotion_core::Digest;
use promotion_core::manifest::ManifestDoc;
use promotion_core::mutate::{
    Doc, Entries, Mutation, RESERVED_PREFIX, SOURCE_DIGEST, SOURCE_NAME, mutate_tree,
};
use promotion_core_fuzz::documents;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let docs = documents(rest);
    let Some(top) = docs.first() else {
        return;
    };
    let mut m = Mutation::default();
    if control & 1 != 0 {
        m.annotations = Entries::from_input(
            "annotation",
            [(
                "org.opencontainers.image.source",
                "https://example.test/app",
            )],
        )
        .expect("valid annotations")
        .with_reserved(SOURCE_NAME, "ingress.test/app:1")
        .with_reserved(SOURCE_DIGEST, top.digest.as_str());
    }
    if control & 2 != 0 {
        m.labels = Entries::from_input("label", [("team", "fuzz")]).expect("valid labels");
    }
    let mut manifests: HashMap<Digest, Doc> = HashMap::new();
    let mut configs: HashMap<Digest, Bytes> = HashMap::new();
    if control & 4 == 0 {
        for d in &docs[1..] {
            let doc = Doc {
                bytes: d.bytes.clone(),
                media_type: d.media_type.clone(),
            };
            manifests.insert(d.digest.clone(), doc);
            configs.insert(d.digest.clone(), d.bytes.clone());
        }
    }
    let top_doc = Doc {
        bytes: top.bytes.clone(),
        media_type: top.media_type.clone(),
    };
    let Ok(tree) = mutate_tree(&top_doc, &manifests, &configs, &m) else {
        return;
    };
    for out in tree.children.iter().chain(&tree.configs).chain([&tree.top]) {
        assert_eq!(
            out.digest,
            Digest::of(&out.bytes),
            "digest of the new bytes"
        );
    }
    assert_eq!(tree.top.old_digest, top.digest);
    // The result is still a document of the same kind, and a source document cannot speak for
    // the pipeline: every reserved annotation left is one the mutation set.
    let (before, kind, _) =
        ManifestDoc::parse(&top.bytes, Some(&top.media_type)).expect("mutate_tree parsed the top");
    let (after, kind_after, _) = ManifestDoc::parse(&tree.top.bytes, Some(&tree.top.media_type))
        .unwrap_or_else(|e| panic!("the mutated top no longer parses: {e}"));
    assert_eq!(kind, kind_after);
    assert_eq!(before.manifests.len(), after.manifests.len());
    for (k, v) in &after.annotations {
        if k.starts_with(RESERVED_PREFIX) {
            assert_eq!(
                m.annotations.as_map().get(k),
                Some(v),
                "reserved annotation {k} survived from the source"
            );
        }
    }
});
