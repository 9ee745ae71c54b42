//! Checks of the test support itself, independent of `promote`: the registries start and enforce
//! auth, the fixtures are valid to an independent client (skopeo), and blob corruption works.
//! When these fail, the `copy` failures that follow say nothing about the code under test.

use crate::support::images::{
    Format, OCI_INDEX, RegistryClient, push_artifact, push_cosign_tag, push_image, push_index,
    push_referrer, write_referrers_fallback,
};
use crate::support::registry::TestRegistry;
use crate::support::{require_program, run_checked, sha256_digest};
use std::process::Command;

const LAYERS: &[usize] = &[200 * 1024];

#[test]
fn basic_auth_registry_refuses_anonymous_and_wrong_password() {
    let reg = TestRegistry::start_with_basic_auth("AWS", "right-password");
    let http = reqwest::blocking::Client::new();
    let url = format!("http://{}/v2/", reg.host());
    let status = |req: reqwest::blocking::RequestBuilder| req.send().expect("GET /v2/").status();
    assert_eq!(status(http.get(&url)).as_u16(), 401);
    assert_eq!(
        status(http.get(&url).basic_auth("AWS", Some("wrong-password"))).as_u16(),
        401
    );
    assert_eq!(
        status(http.get(&url).basic_auth("AWS", Some("right-password"))).as_u16(),
        200
    );
    // The authenticated fixture client can push and read back.
    let c = RegistryClient::new(&reg);
    let img = push_image(
        &c,
        "team/app",
        Some("1"),
        Format::Oci,
        "linux/amd64",
        LAYERS,
    );
    assert_eq!(c.manifest("team/app", "1").0, img.bytes);
}

#[test]
fn fixtures_round_trip_and_skopeo_accepts_them() {
    require_program("skopeo", "skopeo");
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let index = push_index(
        &c,
        "team/app",
        "multi",
        Format::Docker,
        &["linux/amd64", "linux/arm64/v8"],
        LAYERS,
    );
    let single = push_image(
        &c,
        "team/app",
        Some("single"),
        Format::Oci,
        "linux/amd64",
        LAYERS,
    );
    let artifact = push_artifact(
        &c,
        "team/app",
        "artifact",
        "application/vnd.example.sbom.v1",
        "application/vnd.example.sbom.config.v1+json",
        "application/spdx+json",
        b"{}",
    );
    let sig = push_referrer(
        &c,
        "team/app",
        &single,
        "application/example",
        "text/plain",
        b"x",
    );
    let fallback = write_referrers_fallback(&c, "team/app", &single, &[&sig]);
    let cosign = push_cosign_tag(&c, "team/app", &single, "sig");

    for (tag, pushed) in [
        ("multi", &index),
        ("single", &single),
        ("artifact", &artifact),
        (single.fallback_tag().as_str(), &fallback),
        (format!("{}.sig", single.fallback_tag()).as_str(), &cosign),
    ] {
        let (bytes, ct) = c.manifest("team/app", tag);
        assert_eq!(bytes, pushed.bytes, "{tag}");
        assert_eq!(ct, pushed.media_type, "{tag}");
        for b in &pushed.blobs {
            assert!(c.blob_exists("team/app", &b.digest), "{tag}: {}", b.digest);
        }
    }
    assert_eq!(fallback.media_type, OCI_INDEX);
    assert!(c.get_manifest("team/app", &sig.digest).is_some());
    assert!(c.get_manifest("team/app", "nope").is_none());
    assert!(c.list_tags("team/app").contains(&"multi".to_owned()));
    assert_eq!(c.catalog(), vec!["team/app".to_owned()]);

    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = tmp.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("policy");
    let image = format!("docker://{}/team/app:multi", reg.host());
    let out = run_checked(
        Command::new("skopeo")
            .arg("--policy")
            .arg(&policy)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(&image),
    );
    assert_eq!(sha256_digest(&out.stdout), index.digest);
    let dir = tmp.path().join("out");
    run_checked(
        Command::new("skopeo")
            .arg("--policy")
            .arg(&policy)
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(&image)
            .arg(format!("dir:{}", dir.display())),
    );
    assert_eq!(
        sha256_digest(&std::fs::read(dir.join("manifest.json")).expect("manifest.json")),
        index.digest
    );
    let listing: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir:")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for b in &index.blobs {
        let hex = crate::support::digest_hex(&b.digest);
        assert!(
            listing.iter().any(|f| f == hex),
            "skopeo wrote no file {hex} into dir:; it holds {listing:?}"
        );
    }
}

#[test]
fn corrupt_blob_keeps_size_and_changes_bytes() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let img = push_image(
        &c,
        "team/app",
        Some("1"),
        Format::Oci,
        "linux/amd64",
        LAYERS,
    );
    let layer = img.blobs.last().expect("layer");
    assert!(reg.blob_path(&layer.digest).is_file());
    reg.corrupt_blob(&layer.digest);
    let served = c.get_blob("team/app", &layer.digest);
    assert_eq!(served.len() as u64, layer.size);
    assert_ne!(sha256_digest(&served), layer.digest);
}
