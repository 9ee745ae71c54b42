//! `promote copy` against real loopback registries (docs/DESIGN.md invariants 1, 3, 5, 6, 9, 10).
//!
//! Each test starts its own registries, builds its fixtures over plain HTTP, runs the `promote`
//! binary and then checks the destination registry directly.

use crate::support::cli::{self, Run, num, str_field};
use crate::support::images::{
    self, DOCKER_LIST, Format, OCI_INDEX, Pushed, RegistryClient, nonce, push_artifact,
    push_cosign_tag, push_image, push_index, push_referrer, write_referrers_fallback,
};
use crate::support::registry::{TestRegistry, free_port};
use crate::support::{require_program, run_checked, sha256_digest};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// Layer sizes of every fixture image: small enough to be fast, big enough to need streaming.
const LAYERS: &[usize] = &[300 * 1024, 700 * 1024];
const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64/v8", "linux/s390x"];
const SRC_REPO: &str = "team/app";
const DST_REPO: &str = "prod/app";
const TAG: &str = "1.0.0";

fn reference(reg: &TestRegistry, repo: &str, tag: &str) -> String {
    format!("{}/{repo}:{tag}", reg.host())
}

/// Copies `team/app:1.0.0` from `src` to `prod/app:1.0.0` on `dst` and returns the run.
fn copy_between(src: &TestRegistry, dst: &TestRegistry) -> cli::Promote {
    cli::copy(
        &[&src.host(), &dst.host()],
        &reference(src, SRC_REPO, TAG),
        &reference(dst, DST_REPO, TAG),
    )
}

/// The destination holds exactly what the source had: same bytes at the tag and by digest,
/// every child manifest by digest, every blob in the destination repository.
fn assert_exact_copy(dst: &RegistryClient, repo: &str, tag: &str, src: &Pushed) {
    let (bytes, content_type) = dst.manifest(repo, tag);
    assert!(
        bytes == src.bytes,
        "manifest bytes at {repo}:{tag} differ from the source (re-serialised?)\nsource:\n{}\ndestination:\n{}",
        String::from_utf8_lossy(&src.bytes),
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(sha256_digest(&bytes), src.digest);
    assert_eq!(content_type, src.media_type, "Content-Type at {repo}:{tag}");
    for m in src.manifests() {
        let (bytes, content_type) = dst.manifest(repo, &m.digest);
        assert!(
            bytes == m.bytes,
            "manifest {} differs at the destination",
            m.digest
        );
        assert_eq!(content_type, m.media_type, "Content-Type of {}", m.digest);
    }
    for blob in &src.blobs {
        assert!(
            dst.blob_exists(repo, &blob.digest),
            "blob {} ({} bytes, {}) is missing at the destination",
            blob.digest,
            blob.size,
            blob.media_type
        );
    }
}

/// The `--json` result describes the copy of `src`: operation, digest resolved from the tag,
/// media type, and for an index every platform with its child digest.
fn assert_result(v: &Value, src: &Pushed) {
    assert_eq!(str_field(v, "operation"), "copy", "{v:#}");
    assert_eq!(
        str_field(v, "digest"),
        src.digest,
        "the result must name the digest the source tag resolved to: {v:#}"
    );
    assert_eq!(str_field(v, "media_type"), src.media_type, "{v:#}");
    assert_source_digest(v, src);
    assert!(
        str_field(v, "source").contains(SRC_REPO),
        "source names the repository: {v:#}"
    );
    assert!(
        str_field(v, "destination").contains(DST_REPO),
        "destination names the repository: {v:#}"
    );
    for key in [
        "blobs_streamed",
        "blobs_skipped",
        "blobs_mounted",
        "bytes_streamed",
        "manifests_pushed",
        "manifests_skipped",
        "referrers_copied",
        "duration_ms",
    ] {
        num(v, key);
    }
    if !src.children.is_empty() {
        assert_eq!(
            platforms_of(v),
            src.children
                .iter()
                .map(|(p, c)| (p.clone(), c.digest.clone()))
                .collect::<BTreeSet<_>>(),
            "platforms in the result: {v:#}"
        );
    }
}

/// When the result also names the source digest (it must when a filter makes the destination
/// digest differ), it is the digest the tag resolved to.
fn assert_source_digest(v: &Value, src: &Pushed) {
    if let Some(d) = v.get("source_digest") {
        assert_eq!(
            d.as_str(),
            Some(src.digest.as_str()),
            "source_digest: {v:#}"
        );
    }
}

fn platforms_of(v: &Value) -> BTreeSet<(String, String)> {
    v["platforms"]
        .as_array()
        .unwrap_or_else(|| panic!("`platforms` is not an array in {v:#}"))
        .iter()
        .map(|p| {
            (
                str_field(p, "platform").to_owned(),
                str_field(p, "digest").to_owned(),
            )
        })
        .collect()
}

/// Copies a fixture pushed by `build` between two registries and checks the byte-exact result.
fn check_digest_preserved(build: impl FnOnce(&RegistryClient) -> Pushed) {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = build(&sc);

    let run = copy_between(&src, &dst).run();
    let v = run.assert_ok();

    assert_result(&v, &pushed);
    assert_exact_copy(&dc, DST_REPO, TAG, &pushed);
    assert_eq!(dc.list_tags(DST_REPO), vec![TAG.to_owned()], "only the tag");
}

#[test]
fn single_oci_image_is_copied_byte_exact() {
    check_digest_preserved(|c| {
        push_image(c, SRC_REPO, Some(TAG), Format::Oci, "linux/amd64", LAYERS)
    });
}

#[test]
fn single_docker_image_is_copied_byte_exact() {
    check_digest_preserved(|c| {
        push_image(
            c,
            SRC_REPO,
            Some(TAG),
            Format::Docker,
            "linux/amd64",
            LAYERS,
        )
    });
}

#[test]
fn oci_index_is_copied_byte_exact_with_every_platform() {
    check_digest_preserved(|c| push_index(c, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS));
}

#[test]
fn docker_manifest_list_is_copied_byte_exact_with_every_platform() {
    check_digest_preserved(|c| {
        let pushed = push_index(c, SRC_REPO, TAG, Format::Docker, PLATFORMS, LAYERS);
        assert_eq!(pushed.media_type, DOCKER_LIST);
        pushed
    });
}

#[test]
fn artifact_with_non_image_config_is_copied_byte_exact() {
    check_digest_preserved(|c| {
        push_artifact(
            c,
            SRC_REPO,
            TAG,
            "application/vnd.example.sbom.v1",
            "application/vnd.example.sbom.config.v1+json",
            "application/spdx+json",
            &images::random_bytes(200 * 1024),
        )
    });
}

#[test]
fn source_pinned_by_digest_is_copied_byte_exact() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);

    let src_ref = format!("{}/{SRC_REPO}@{}", src.host(), pushed.digest);
    let run = cli::copy(
        &[&src.host(), &dst.host()],
        &src_ref,
        &reference(&dst, DST_REPO, TAG),
    )
    .run();
    let v = run.assert_ok();

    assert_result(&v, &pushed);
    assert_exact_copy(&dc, DST_REPO, TAG, &pushed);
}

#[test]
fn rerun_streams_nothing() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);

    let first = copy_between(&src, &dst).run().assert_ok();
    assert_eq!(
        num(&first, "bytes_streamed"),
        pushed.blob_bytes(),
        "{first:#}"
    );

    let run = copy_between(&src, &dst).run();
    let v = run.assert_ok();

    assert_result(&v, &pushed);
    assert_eq!(
        num(&v, "bytes_streamed"),
        0,
        "a re-run streams nothing: {v:#}"
    );
    assert_eq!(num(&v, "blobs_streamed"), 0, "{v:#}");
    assert_eq!(num(&v, "blobs_mounted"), 0, "{v:#}");
    assert_eq!(
        num(&v, "blobs_skipped"),
        pushed.blobs.len() as u64,
        "every blob is found present and skipped: {v:#}"
    );
    assert_exact_copy(&dc, DST_REPO, TAG, &pushed);
    assert_eq!(
        dc.list_tags(DST_REPO),
        vec![TAG.to_owned()],
        "no extra tags"
    );
}

#[test]
fn copy_within_one_registry_mounts_every_blob() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let pushed = push_index(&c, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);

    let run = cli::copy(
        &[&reg.host()],
        &reference(&reg, SRC_REPO, TAG),
        &reference(&reg, DST_REPO, TAG),
    )
    .run();
    let v = run.assert_ok();

    assert_result(&v, &pushed);
    assert_eq!(
        num(&v, "blobs_mounted"),
        pushed.blobs.len() as u64,
        "same registry: every blob is mounted: {v:#}"
    );
    assert_eq!(
        num(&v, "bytes_streamed"),
        0,
        "mounted, not re-uploaded: {v:#}"
    );
    assert_eq!(num(&v, "blobs_streamed"), 0, "{v:#}");
    assert_exact_copy(&c, DST_REPO, TAG, &pushed);
}

#[test]
fn copy_between_registries_streams_every_blob_byte() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Docker, PLATFORMS, LAYERS);

    let run = copy_between(&src, &dst).arg("--concurrency").arg("2").run();
    let v = run.assert_ok();

    assert_result(&v, &pushed);
    assert_eq!(num(&v, "bytes_streamed"), pushed.blob_bytes(), "{v:#}");
    assert_eq!(
        num(&v, "blobs_streamed"),
        pushed.blobs.len() as u64,
        "{v:#}"
    );
    assert_eq!(
        num(&v, "blobs_mounted"),
        0,
        "no mount across registries: {v:#}"
    );
    assert_eq!(num(&v, "blobs_skipped"), 0, "{v:#}");
    assert_eq!(
        num(&v, "manifests_pushed"),
        pushed.manifests().len() as u64,
        "the index and each child: {v:#}"
    );
    assert_exact_copy(&dc, DST_REPO, TAG, &pushed);
}

/// Asserts that nothing with a manifest reached the destination.
fn assert_no_manifest(dc: &RegistryClient, digests: &[&str]) {
    assert_eq!(
        dc.get_manifest(DST_REPO, TAG)
            .map(|(b, _)| sha256_digest(&b)),
        None,
        "no manifest may be pushed at the destination tag after a failed copy"
    );
    for d in digests {
        assert!(
            dc.get_manifest(DST_REPO, d).is_none(),
            "manifest {d} must not exist at the destination"
        );
    }
    assert!(
        dc.list_tags(DST_REPO).is_empty(),
        "no tag at the destination"
    );
}

#[test]
fn corrupted_source_blob_aborts_and_pushes_no_manifest() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_image(&sc, SRC_REPO, Some(TAG), Format::Oci, "linux/amd64", LAYERS);
    let bad = pushed.blobs.last().expect("a layer").clone();
    src.corrupt_blob(&bad.digest);
    // The registry still serves the advertised size, with other bytes.
    assert_eq!(sc.get_blob(SRC_REPO, &bad.digest).len() as u64, bad.size);

    let run = copy_between(&src, &dst).run();

    run.assert_failed("Image.DigestMismatch");
    assert_no_manifest(&dc, &[&pushed.digest]);
    assert!(
        !dc.blob_exists(DST_REPO, &bad.digest),
        "the corrupted blob must not be committed"
    );
}

#[test]
fn corrupted_blob_of_one_platform_leaves_no_index() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);
    let child = pushed.child("linux/s390x");
    src.corrupt_blob(&child.blobs.last().expect("a layer").digest);

    let run = copy_between(&src, &dst).run();

    run.assert_failed("Image.DigestMismatch");
    assert_no_manifest(&dc, &[&pushed.digest, &child.digest]);
}

fn secret_forms(user: &str, password: &str) -> Vec<String> {
    vec![
        password.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
    ]
}

fn assert_no_secret(run: &Run, secrets: &[String]) {
    for s in secrets {
        assert!(
            !run.stdout.contains(s.as_str()) && !run.stderr.contains(s.as_str()),
            "a secret ({} chars) leaked into the output\n{}",
            s.len(),
            run.describe()
        );
    }
}

fn test_password() -> String {
    // Well under bcrypt's 72-byte limit; random so it cannot appear by accident.
    format!("tok-{}{}", nonce(), nonce())
}

#[test]
fn basic_auth_destination_with_good_credentials() {
    let password = test_password();
    let src = TestRegistry::start();
    let dst = TestRegistry::start_with_basic_auth("AWS", &password);
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);

    let run = copy_between(&src, &dst)
        .global("--debug")
        .env("PROMOTE_DST_CREDS", format!("AWS:{password}"))
        .run();
    let v = run.assert_ok();

    assert_result(&v, &pushed);
    assert_exact_copy(&dc, DST_REPO, TAG, &pushed);
    assert_no_secret(&run, &secret_forms("AWS", &password));
}

#[test]
fn basic_auth_destination_with_wrong_or_no_password_is_unauthorized() {
    let password = test_password();
    let wrong = test_password();
    let src = TestRegistry::start();
    let dst = TestRegistry::start_with_basic_auth("AWS", &password);
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    push_image(&sc, SRC_REPO, Some(TAG), Format::Oci, "linux/amd64", LAYERS);
    let mut secrets = secret_forms("AWS", &password);
    secrets.extend(secret_forms("AWS", &wrong));

    let run = copy_between(&src, &dst)
        .env("PROMOTE_DST_CREDS", format!("AWS:{wrong}"))
        .run();
    run.assert_failed("Registry.Unauthorized");
    assert_no_secret(&run, &secrets);

    // Debug logging must not leak the password either (invariant 9).
    let run = copy_between(&src, &dst)
        .global("--debug")
        .env("PROMOTE_DST_CREDS", format!("AWS:{wrong}"))
        .run();
    run.assert_failed("Registry.Unauthorized");
    assert_no_secret(&run, &secrets);

    let run = copy_between(&src, &dst).run();
    run.assert_failed("Registry.Unauthorized");

    assert!(
        dc.catalog().is_empty(),
        "nothing was written: {:?}",
        dc.catalog()
    );
}

#[test]
fn basic_auth_source_uses_src_credentials() {
    let password = test_password();
    let src = TestRegistry::start_with_basic_auth("AWS", &password);
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_image(
        &sc,
        SRC_REPO,
        Some(TAG),
        Format::Docker,
        "linux/arm64/v8",
        LAYERS,
    );

    let run = copy_between(&src, &dst).run();
    run.assert_failed("Registry.Unauthorized");
    assert!(dc.catalog().is_empty(), "nothing was written");

    let run = copy_between(&src, &dst)
        .env("PROMOTE_SRC_CREDS", format!("AWS:{password}"))
        .run();
    let v = run.assert_ok();
    assert_result(&v, &pushed);
    assert_exact_copy(&dc, DST_REPO, TAG, &pushed);
    assert_no_secret(&run, &secret_forms("AWS", &password));
}

#[test]
fn one_platform_copies_that_platform_manifest_exactly() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);
    let arm = pushed.child("linux/arm64/v8");

    let run = copy_between(&src, &dst)
        .arg("--platform")
        .arg("linux/arm64")
        .run();
    let v = run.assert_ok();
    assert_eq!(
        str_field(&v, "digest"),
        arm.digest,
        "the destination digest: {v:#}"
    );
    assert_source_digest(&v, &pushed);

    // The destination tag holds the arm64 manifest itself, byte-exact, with its own digest.
    assert_exact_copy(&dc, DST_REPO, TAG, arm);
    for (platform, other) in &pushed.children {
        if other.digest == arm.digest {
            continue;
        }
        assert!(
            dc.get_manifest(DST_REPO, &other.digest).is_none(),
            "{platform} was not asked for"
        );
        for blob in &other.blobs {
            assert!(
                !dc.blob_exists(DST_REPO, &blob.digest),
                "blob of {platform} was copied although only linux/arm64 was asked for"
            );
        }
    }
    assert!(dc.get_manifest(DST_REPO, &pushed.digest).is_none());
}

#[test]
fn two_platforms_write_a_filtered_index() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);
    let wanted = ["linux/amd64", "linux/s390x"];

    let run = copy_between(&src, &dst)
        .arg("--platform")
        .arg(wanted[0])
        .arg("--platform")
        .arg(wanted[1])
        .run();
    let v = run.assert_ok();

    let (bytes, content_type) = dc.manifest(DST_REPO, TAG);
    assert_eq!(content_type, OCI_INDEX);
    let index: Value = serde_json::from_slice(&bytes).expect("index JSON");
    let dst_digest = sha256_digest(&bytes);
    assert_ne!(
        dst_digest, pushed.digest,
        "a filtered index is a new manifest"
    );
    assert_eq!(
        str_field(&v, "digest"),
        dst_digest,
        "the destination digest: {v:#}"
    );
    assert_source_digest(&v, &pushed);
    let entries = index["manifests"].as_array().expect("manifests array");
    assert_eq!(
        entries.len(),
        2,
        "exactly the two platforms asked for: {index:#}"
    );
    let mut seen = BTreeSet::new();
    for e in entries {
        let platform = images::Platform {
            os: str_field(&e["platform"], "os").to_owned(),
            architecture: str_field(&e["platform"], "architecture").to_owned(),
            variant: e["platform"]["variant"].as_str().map(str::to_owned),
        }
        .to_string();
        assert!(wanted.contains(&platform.as_str()), "unexpected {platform}");
        let child = pushed.child(&platform);
        assert_eq!(str_field(e, "digest"), child.digest, "child digest kept");
        assert_eq!(num(e, "size"), child.bytes.len() as u64);
        assert_eq!(str_field(e, "mediaType"), child.media_type);
        seen.insert(platform);
    }
    assert_eq!(seen.len(), 2);
    for p in wanted {
        let child = pushed.child(p);
        let (b, _) = dc.manifest(DST_REPO, &child.digest);
        assert!(b == child.bytes, "{p} manifest is byte-exact");
        for blob in &child.blobs {
            assert!(
                dc.blob_exists(DST_REPO, &blob.digest),
                "{p} blob {}",
                blob.digest
            );
        }
    }
    assert!(
        dc.get_manifest(DST_REPO, &pushed.child("linux/arm64/v8").digest)
            .is_none(),
        "arm64 was filtered out"
    );
    assert_eq!(
        platforms_of(&v),
        wanted
            .iter()
            .map(|p| ((*p).to_owned(), pushed.child(p).digest.clone()))
            .collect(),
        "{v:#}"
    );
}

/// Runs skopeo with an accept-anything policy of our own (the host's may be stricter).
fn skopeo(policy_dir: &std::path::Path) -> Command {
    require_program("skopeo", "skopeo");
    let policy = policy_dir.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("write policy");
    let mut cmd = Command::new("skopeo");
    cmd.arg("--policy").arg(policy);
    cmd
}

#[test]
fn skopeo_reads_the_copy_byte_exact() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let sc = RegistryClient::new(&src);
    let pushed = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);
    copy_between(&src, &dst).run().assert_ok();
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = format!("docker://{}", reference(&dst, DST_REPO, TAG));

    let out = run_checked(
        skopeo(tmp.path())
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(&image),
    );
    assert_eq!(
        sha256_digest(&out.stdout),
        pushed.digest,
        "skopeo's raw manifest hashes to the copied digest"
    );

    let out_dir = tmp.path().join("out");
    run_checked(
        skopeo(tmp.path())
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(&image)
            .arg(format!("dir:{}", out_dir.display())),
    );
    let manifest = std::fs::read(out_dir.join("manifest.json")).expect("dir:manifest.json");
    assert_eq!(sha256_digest(&manifest), pushed.digest);
    for blob in &pushed.blobs {
        let hex = crate::support::digest_hex(&blob.digest);
        let bytes = std::fs::read(out_dir.join(hex))
            .unwrap_or_else(|e| panic!("skopeo did not write blob {}: {e}", blob.digest));
        assert_eq!(sha256_digest(&bytes), blob.digest);
    }
}

/// An image with a signature-like and an SBOM-like referrer (listed in the fallback tag) and a
/// cosign legacy `.sig` tag.
struct WithReferrers {
    image: Pushed,
    signature: Pushed,
    sbom: Pushed,
    cosign: Pushed,
}

fn push_with_referrers(c: &RegistryClient) -> WithReferrers {
    let image = push_image(c, SRC_REPO, Some(TAG), Format::Oci, "linux/amd64", LAYERS);
    let signature = push_referrer(
        c,
        SRC_REPO,
        &image,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        images::COSIGN_SIMPLESIGNING,
        br#"{"critical":{"type":"cosign container image signature"}}"#,
    );
    let sbom = push_referrer(
        c,
        SRC_REPO,
        &image,
        "application/spdx+json",
        "application/spdx+json",
        &images::random_bytes(64 * 1024),
    );
    write_referrers_fallback(c, SRC_REPO, &image, &[&signature, &sbom]);
    let cosign = push_cosign_tag(c, SRC_REPO, &image, "sig");
    WithReferrers {
        image,
        signature,
        sbom,
        cosign,
    }
}

/// The fallback index at `subject.fallback_tag()` lists exactly `expected` referrers.
fn assert_fallback_lists(dc: &RegistryClient, subject: &Pushed, expected: &[&Pushed]) {
    let (bytes, content_type) = dc.manifest(DST_REPO, &subject.fallback_tag());
    assert_eq!(content_type, OCI_INDEX, "fallback tag holds an OCI index");
    let index: Value = serde_json::from_slice(&bytes).expect("fallback index JSON");
    let listed: BTreeSet<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|e| str_field(e, "digest"))
        .collect();
    let want: BTreeSet<&str> = expected.iter().map(|r| r.digest.as_str()).collect();
    assert_eq!(
        listed,
        want,
        "referrers listed in {}: {index:#}",
        subject.fallback_tag()
    );
    for e in index["manifests"].as_array().expect("manifests") {
        let r = expected
            .iter()
            .find(|r| r.digest == str_field(e, "digest"))
            .expect("listed referrer");
        assert_eq!(
            e["artifactType"].as_str(),
            r.artifact_type.as_deref(),
            "artifactType of {} in the fallback index",
            r.digest
        );
    }
}

#[test]
fn referrers_are_copied_with_the_flag() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let f = push_with_referrers(&sc);

    let run = copy_between(&src, &dst).arg("--referrers").run();
    let v = run.assert_ok();

    assert_result(&v, &f.image);
    assert_exact_copy(&dc, DST_REPO, TAG, &f.image);
    for r in [&f.signature, &f.sbom] {
        assert_exact_copy(&dc, DST_REPO, &r.digest, r);
    }
    assert_fallback_lists(&dc, &f.image, &[&f.signature, &f.sbom]);
    let sig_tag = format!("{}.sig", f.image.fallback_tag());
    assert_exact_copy(&dc, DST_REPO, &sig_tag, &f.cosign);
    assert!(
        num(&v, "referrers_copied") >= 2,
        "both OCI referrers are counted: {v:#}"
    );

    // Idempotent: a second run adds no duplicate referrer and no tag.
    let tags_before = dc.list_tags(DST_REPO);
    copy_between(&src, &dst)
        .arg("--referrers")
        .run()
        .assert_ok();
    assert_eq!(dc.list_tags(DST_REPO), tags_before);
    assert_fallback_lists(&dc, &f.image, &[&f.signature, &f.sbom]);
}

#[test]
fn referrers_are_not_copied_without_the_flag() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let f = push_with_referrers(&sc);

    let run = copy_between(&src, &dst).run();
    let v = run.assert_ok();

    assert_exact_copy(&dc, DST_REPO, TAG, &f.image);
    assert_eq!(
        dc.list_tags(DST_REPO),
        vec![TAG.to_owned()],
        "no fallback or .sig tag"
    );
    for r in [&f.signature, &f.sbom, &f.cosign] {
        assert!(
            dc.get_manifest(DST_REPO, &r.digest).is_none(),
            "{} copied",
            r.digest
        );
    }
    assert_eq!(num(&v, "referrers_copied"), 0, "{v:#}");
}

#[test]
fn referrers_of_index_and_children_are_copied() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    let index = push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);
    let arm = index.child("linux/arm64/v8");
    let index_sig = push_referrer(
        &sc,
        SRC_REPO,
        &index,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        images::COSIGN_SIMPLESIGNING,
        b"{}",
    );
    write_referrers_fallback(&sc, SRC_REPO, &index, &[&index_sig]);
    let arm_attestation = push_referrer(
        &sc,
        SRC_REPO,
        arm,
        "application/vnd.in-toto+json",
        "application/vnd.in-toto+json",
        br#"{"_type":"https://in-toto.io/Statement/v1"}"#,
    );
    write_referrers_fallback(&sc, SRC_REPO, arm, &[&arm_attestation]);

    let run = copy_between(&src, &dst).arg("--referrers").run();
    let v = run.assert_ok();

    assert_exact_copy(&dc, DST_REPO, TAG, &index);
    assert_exact_copy(&dc, DST_REPO, &index_sig.digest, &index_sig);
    assert_exact_copy(&dc, DST_REPO, &arm_attestation.digest, &arm_attestation);
    assert_fallback_lists(&dc, &index, &[&index_sig]);
    assert_fallback_lists(&dc, arm, &[&arm_attestation]);
    assert!(num(&v, "referrers_copied") >= 2, "{v:#}");
}

#[test]
fn malformed_references_are_input_invalid() {
    let dst = TestRegistry::start();
    let dc = RegistryClient::new(&dst);
    let host = dst.host();
    let good = reference(&dst, DST_REPO, TAG);
    let bad_refs = [
        format!("{host}/Team/App:{TAG}"),
        format!("{host}/team/app:bad tag"),
        format!("{host}/team/app@sha256:1234"),
        format!("{host}/team//app:{TAG}"),
        format!("{host}/team/app:-x"),
    ];
    for bad in &bad_refs {
        for (src, dst_ref) in [(bad.as_str(), good.as_str()), (good.as_str(), bad.as_str())] {
            let run = cli::copy(&[&host], src, dst_ref).run();
            assert!(
                run.code == 1 || run.code == 2,
                "a malformed reference is a usage error (2) or Input.Invalid (1)\n{}",
                run.describe()
            );
            assert!(
                run.stderr.contains("Input.Invalid"),
                "stderr names Input.Invalid\n{}",
                run.describe()
            );
            assert!(
                run.stderr.contains(bad.as_str()) || run.stdout.contains(bad.as_str()),
                "the error names the offending reference {bad:?}\n{}",
                run.describe()
            );
        }
    }
    assert!(dc.catalog().is_empty(), "bad input changes nothing");
}

#[test]
fn unreachable_registry_fails_with_one_clear_line() {
    let dst = TestRegistry::start();
    let dc = RegistryClient::new(&dst);
    let dead = format!("127.0.0.1:{}", free_port());

    let run = cli::copy(
        &[&dead, &dst.host()],
        &format!("{dead}/{SRC_REPO}:{TAG}"),
        &reference(&dst, DST_REPO, TAG),
    )
    .run();

    run.assert_failed("Registry.Transient");
    assert!(
        run.error_line().contains(&dead),
        "the error names the registry {dead}\n{}",
        run.describe()
    );
    assert!(
        run.duration < Duration::from_secs(60),
        "gave up within a minute\n{}",
        run.describe()
    );
    assert!(dc.catalog().is_empty(), "nothing was written");
}

#[test]
fn missing_source_tag_is_not_found() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    push_image(&sc, SRC_REPO, Some(TAG), Format::Oci, "linux/amd64", LAYERS);

    for missing in [
        reference(&src, SRC_REPO, "no-such-tag"),
        reference(&src, "team/no-such-repo", TAG),
        format!("{}/{SRC_REPO}@sha256:{}", src.host(), "0".repeat(64)),
    ] {
        let run = cli::copy(
            &[&src.host(), &dst.host()],
            &missing,
            &reference(&dst, DST_REPO, TAG),
        )
        .run();
        run.assert_failed("Registry.NotFound");
        assert!(
            run.error_line().contains(&missing),
            "the error names {missing}\n{}",
            run.describe()
        );
    }
    assert!(dc.catalog().is_empty(), "nothing was written");
}

/// "1 failed (one clear line on stderr)": without `-v` a failure prints the error line and
/// nothing else on stderr, with or without `--json`.
#[test]
fn a_failure_prints_exactly_one_line_on_stderr() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let src_ref = reference(&src, SRC_REPO, "no-such-tag");
    let dst_ref = reference(&dst, DST_REPO, TAG);

    let run = cli::copy(&[&src.host(), &dst.host()], &src_ref, &dst_ref).run();
    run.assert_failed("Registry.NotFound");
    assert!(run.only_stderr_line().starts_with("error: "));

    let run = cli::Promote::new([
        "--insecure-registry",
        &src.host(),
        "--insecure-registry",
        &dst.host(),
        "copy",
        &src_ref,
        &dst_ref,
    ])
    .run();
    run.assert_failed("Registry.NotFound");
    assert!(
        run.stdout.trim().is_empty(),
        "no JSON without --json\n{}",
        run.describe()
    );
    assert!(run.only_stderr_line().starts_with("error: "));
}

#[test]
fn missing_arguments_are_a_usage_error() {
    let run = cli::Promote::new(["copy", "127.0.0.1:1/only/source:1"]).run();
    assert_eq!(run.code, 2, "usage error\n{}", run.describe());
    assert!(
        !run.stderr.trim().is_empty(),
        "says what is wrong\n{}",
        run.describe()
    );
}

#[test]
fn platform_matching_nothing_fails_and_writes_nothing() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (sc, dc) = (RegistryClient::new(&src), RegistryClient::new(&dst));
    push_index(&sc, SRC_REPO, TAG, Format::Oci, PLATFORMS, LAYERS);

    let run = copy_between(&src, &dst)
        .arg("--platform")
        .arg("linux/riscv64")
        .run();

    // Like a malformed reference, a selector that matches nothing is bad input (exit 1 or 2).
    assert!(
        run.code == 1 || run.code == 2,
        "no such platform\n{}",
        run.describe()
    );
    assert!(
        run.error_line().ends_with("[Input.Invalid]"),
        "Input.Invalid\n{}",
        run.describe()
    );
    assert!(
        run.error_line().contains("linux/riscv64"),
        "the error names the platform\n{}",
        run.describe()
    );
    assert!(dc.catalog().is_empty(), "nothing was written");
}
