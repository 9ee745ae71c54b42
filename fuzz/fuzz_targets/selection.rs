//! The one selection of an image's manifests (`selection::select`) on a tree an attacker pushed
//! to an ingress repository: the input is split into a few documents (see the fuzz crate's
//! `documents`), stored in one repository of an in-memory registry (the first one tagged), and
//! selected by that tag with small limits. It must end with Ok or Err, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promotion_core::ImageRef;
use promotion_core::manifest::RawManifest;
use promotion_core::registry::memory::MemoryRegistry;
use promotion_core::selection::{Limits, Role, select};
use promotion_core_fuzz::documents;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

const LIMITS: Limits = Limits {
    max_manifests: 8,
    max_blobs: 16,
    max_bytes: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let docs = documents(data);
    let Some(top) = docs.first() else {
        return;
    };
    let repo: ImageRef = "reg.example/quarantine/app:1"
        .parse()
        .expect("a valid reference");
    let reg = MemoryRegistry::new();
    for (i, d) in docs.iter().enumerate() {
        let raw = RawManifest::new(d.bytes.clone(), d.media_type.clone());
        reg.put_manifest_bytes(&repo, (i == 0).then_some("1"), raw);
    }
    let Ok(selection) = runtime().block_on(select(&reg, &repo, &LIMITS)) else {
        return;
    };
    // What the gate, promote and sign rely on.
    assert_eq!(
        selection.top().raw.digest,
        top.digest,
        "the top is what the tag named"
    );
    assert!(selection.members.len() <= LIMITS.max_manifests);
    assert!(
        selection.images().count() >= 1,
        "a selection has an image to gate"
    );
    assert!(selection.blobs().len() <= LIMITS.max_blobs);
    let mut seen = std::collections::HashSet::new();
    for m in &selection.members {
        assert!(
            seen.insert(m.raw.digest.clone()),
            "{} selected twice",
            m.raw.digest
        );
        assert!(
            m.doc.subject.is_none(),
            "a referrer was selected as an image"
        );
        if let Role::Attestation { of } = &m.role {
            let gated = selection.images().any(|i| &i.raw.digest == of);
            assert!(
                gated,
                "attestation {} of {of}, which is not gated",
                m.raw.digest
            );
        }
    }
});
