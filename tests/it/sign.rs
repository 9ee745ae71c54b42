//! `promote annotate`, `sign`, `verify` and `discover` against real loopback registries, with two
//! independent verifiers: trixie's skopeo 1.18 for the legacy `.sig` signatures and sigstore-js
//! (`@sigstore/verify`) for the Sigstore bundles (docs/DESIGN.md: signatures in the formats cosign
//! v3 and today's admission controllers verify; invariant 6: no duplicate signatures on a
//! re-run).

use crate::support::cli::{Promote, num, str_field};
use crate::support::images::{Format, Pushed, RegistryClient, push_index};
use crate::support::registry::TestRegistry;
use crate::support::sigstore::{generate_key, verify_with_skopeo};
use crate::support::sigstore_js::{
    BUNDLE, COSIGN_SIGN, bundles_of, sigstore_js_accepts, verify_bundle_with_sigstore_js,
};
use crate::support::{require_program, run_checked};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const LAYERS: &[usize] = &[200 * 1024, 300 * 1024];
const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64/v8"];
const PASSWORD: &str = "correct horse battery staple";

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn promote(reg: &TestRegistry) -> Promote {
    Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("--json")
}

/// `skopeo inspect` (bookworm's is fine for reading) of `docker://<image>` with `flag`.
fn inspect(image: &str, flag: &str) -> Value {
    require_program("skopeo", "skopeo");
    let out = run_checked(
        Command::new("skopeo")
            .arg("inspect")
            .arg("--tls-verify=false")
            .arg(flag)
            .arg(format!("docker://{image}")),
    );
    serde_json::from_slice(&out.stdout).expect("skopeo inspect prints JSON")
}

fn annotate_fixture(reg: &TestRegistry, format: Format) -> (Pushed, Value) {
    let c = RegistryClient::new(reg);
    let src = push_index(&c, "quarantine/app", "1.0.0", format, PLATFORMS, LAYERS);
    let v = promote(reg)
        .arg("annotate")
        .arg(format!("{}/quarantine/app:1.0.0", reg.host()))
        .arg(format!("{}/trusted/app:1.0.0", reg.host()))
        .arg("--annotation")
        .arg("org.example.team=payments")
        .arg("--label")
        .arg("org.example.owner=alice")
        .run()
        .assert_ok();
    (src, v)
}

#[test]
fn annotate_adds_annotations_to_every_platform_and_labels_to_every_config_without_streaming_layers()
{
    for format in [Format::Oci, Format::Docker] {
        let reg = TestRegistry::start();
        let (src, v) = annotate_fixture(&reg, format);
        assert_eq!(str_field(&v, "operation"), "annotate");
        assert_eq!(str_field(&v, "source_digest"), src.digest);
        assert_ne!(str_field(&v, "digest"), src.digest);
        // Within one registry every layer is mounted: zero layer bytes through this process.
        assert_eq!(num(&v, "bytes_streamed"), 0, "{v:#}");
        assert_eq!(num(&v, "blobs_streamed"), 0, "{v:#}");
        assert_eq!(num(&v, "configs_pushed"), PLATFORMS.len() as u64, "{v:#}");

        let image = format!("{}/trusted/app:1.0.0", reg.host());
        let index = inspect(&image, "--raw");
        assert_eq!(
            index["annotations"]["org.example.team"], "payments",
            "{index:#}"
        );
        assert_eq!(
            index["annotations"]["io.ecr-promotion.source.digest"],
            src.digest.as_str()
        );
        let entries = index["manifests"].as_array().expect("manifests");
        assert_eq!(entries.len(), PLATFORMS.len());
        for (entry, (platform, child)) in entries.iter().zip(&src.children) {
            let d = entry["digest"].as_str().expect("digest");
            assert_ne!(d, child.digest, "{platform}: a new digest");
            let at = format!("{}/trusted/app@{d}", reg.host());
            let m = inspect(&at, "--raw");
            assert_eq!(
                m["annotations"]["org.example.team"], "payments",
                "{platform}: {m:#}"
            );
            assert_eq!(
                m["layers"],
                serde_json::from_slice::<Value>(&child.bytes).unwrap()["layers"]
            );
            let cfg = inspect(&at, "--config");
            let labels = &cfg["config"]["Labels"];
            assert_eq!(labels["org.example.owner"], "alice", "{platform}: {cfg:#}");
            assert!(
                labels["org.example.fixture"].is_string(),
                "existing labels survive"
            );
            assert_eq!(
                cfg["config"]["Cmd"][0], "/bin/sh",
                "untouched fields survive"
            );
        }

        // Again: the same digest, nothing new written.
        let again = promote(&reg)
            .arg("annotate")
            .arg(format!("{}/quarantine/app:1.0.0", reg.host()))
            .arg(image.clone())
            .arg("--annotation")
            .arg("org.example.team=payments")
            .arg("--label")
            .arg("org.example.owner=alice")
            .run()
            .assert_ok();
        assert_eq!(again["digest"], v["digest"]);
        assert_eq!(num(&again, "manifests_pushed"), 0);
    }
}

#[test]
fn annotate_refuses_reserved_and_invalid_entries_and_writes_nothing() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    push_index(&c, "quarantine/app", "1", Format::Oci, PLATFORMS, &[1024]);
    for (flag, value, needle) in [
        (
            "--annotation",
            "io.ecr-promotion.source.digest=sha256:x",
            "reserved",
        ),
        ("--annotation", "=v", "empty"),
        ("--label", "k=", "empty value"),
        (
            "--annotation",
            &*format!("k={}", "v".repeat(5000)),
            "at most",
        ),
    ] {
        let run = Promote::default()
            .arg("--insecure-registry")
            .arg(reg.host())
            .arg("annotate")
            .arg(format!("{}/quarantine/app:1", reg.host()))
            .arg(format!("{}/trusted/app:1", reg.host()))
            .arg(flag)
            .arg(value)
            .run();
        assert_eq!(run.code, 2, "{}", run.describe());
        let line = run.only_stderr_line();
        assert!(
            line.contains(needle) && line.contains("[Input.Invalid]"),
            "{line}"
        );
    }
    let run = Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("annotate")
        .arg(format!("{}/quarantine/none:1", reg.host()))
        .arg(format!("{}/trusted/app:1", reg.host()))
        .run();
    run.assert_failed("Registry.NotFound");
    assert!(c.list_tags("trusted/app").is_empty(), "nothing written");
}

/// Signs `image` with a key file and returns the `--json` report.
fn sign_with_file(reg: &TestRegistry, image: &str, key: &Path, extra: &[&str]) -> Value {
    let mut p = promote(reg)
        .arg("sign")
        .arg(image)
        .arg("--key")
        .arg(key.display().to_string())
        .arg("--annotation")
        .arg("org.example.approved-by=ci");
    for e in extra {
        p = p.arg(*e);
    }
    p.env("COSIGN_PASSWORD", PASSWORD).run().assert_ok()
}

fn layers_at(c: &RegistryClient, repo: &str, tag: &str) -> usize {
    let (bytes, _) = c.manifest(repo, tag);
    let v: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
    v["layers"].as_array().map_or(0, Vec::len)
}

fn entries_at(c: &RegistryClient, repo: &str, tag: &str) -> usize {
    let (bytes, _) = c.manifest(repo, tag);
    let v: Value = serde_json::from_slice(&bytes).expect("index JSON");
    v["manifests"].as_array().map_or(0, Vec::len)
}

#[test]
fn cosign_key_file_signatures_verify_with_skopeo_and_a_rerun_adds_nothing() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let (src, _) = annotate_fixture(&reg, Format::Oci);
    let image = format!("{}/trusted/app:1.0.0", reg.host());
    let scope = format!("{}/trusted/app", reg.host());
    let (index_bytes, _) = c.manifest("trusted/app", "1.0.0");
    let digest = crate::support::sha256_digest(&index_bytes);
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    let child = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

    let keys = tempfile::tempdir().unwrap();
    let (private, public) = generate_key(keys.path(), "cosign", PASSWORD);
    let (_, other_public) = generate_key(keys.path(), "other", "x");

    // Not signed yet: the oracle refuses.
    let out = verify_with_skopeo(&image, &scope, &public);
    assert!(!out.status.success(), "unsigned image accepted");

    let v = sign_with_file(&reg, &image, &private, &[]);
    assert_eq!(
        num(&v, "signatures_created"),
        2 * (1 + PLATFORMS.len() as u64),
        "a bundle and a legacy signature per digest: {v:#}"
    );
    assert_eq!(str_field(&v, "digest"), digest);
    // The source digest recorded by annotate becomes a claim.
    assert_eq!(
        v["claims"]["io.ecr-promotion.source.digest"],
        src.digest.as_str()
    );

    // The independent verifiers accept the index and each platform by digest: skopeo the
    // legacy signature, sigstore-js the bundle…
    let pem = std::fs::read_to_string(&public).unwrap();
    let other_pem = std::fs::read_to_string(&other_public).unwrap();
    let mut digests = vec![digest.clone()];
    digests.extend(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_owned()),
    );
    for d in &digests {
        let target = format!("{scope}@{d}");
        let out = verify_with_skopeo(&target, &scope, &public);
        assert!(
            out.status.success(),
            "skopeo rejected {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bundles = bundles_of(&c, "trusted/app", d);
        assert_eq!(bundles.len(), 1, "{d}");
        sigstore_js_accepts(&bundles, &pem, d).unwrap_or_else(|e| panic!("{d}: {e}"));
        // …and refuse another key and another digest.
        assert!(sigstore_js_accepts(&bundles, &other_pem, d).is_err());
        let wrong = if d == &digest { &digests[1] } else { &digest };
        assert!(sigstore_js_accepts(&bundles, &pem, wrong).is_err());
    }
    // A tampered payload (the statement names another digest, the signature kept) is refused.
    let bundle: Value = serde_json::from_slice(&bundles_of(&c, "trusted/app", &digest)[0]).unwrap();
    let mut forged = bundle.clone();
    let payload = base64_decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap());
    let statement = String::from_utf8(payload).unwrap().replace(
        crate::support::digest_hex(&digest),
        crate::support::digest_hex(&child),
    );
    forged["dsseEnvelope"]["payload"] = base64_encode(statement.as_bytes()).into();
    let out = verify_bundle_with_sigstore_js(
        &serde_json::to_vec(&forged).unwrap(),
        &pem,
        &child,
        Some(COSIGN_SIGN),
    );
    assert_eq!(out.status.code(), Some(1), "tampered bundle accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify_with_skopeo(&image, &scope, &other_public);
    assert!(
        !out.status.success(),
        "skopeo accepted a signature by another key"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // promote verify: claims with the public key, exit 1 with another one.
    let ok = promote(&reg)
        .arg("verify")
        .arg(image.clone())
        .arg("--key")
        .arg(public.display().to_string())
        .run()
        .assert_ok();
    assert_eq!(ok["claims"]["org.example.approved-by"], "ci", "{ok:#}");
    assert_eq!(
        ok["verified"],
        serde_json::json!(["bundle"]),
        "bundles first: {ok:#}"
    );
    assert_eq!(ok["identity"], scope.as_str(), "{ok:#}");
    for (require, formats) in [
        ("bundle", serde_json::json!(["bundle"])),
        ("legacy", serde_json::json!(["legacy"])),
        ("both", serde_json::json!(["bundle", "legacy"])),
    ] {
        let ok = promote(&reg)
            .arg("verify")
            .arg(image.clone())
            .arg("--key")
            .arg(public.display().to_string())
            .arg("--require")
            .arg(require)
            .run()
            .assert_ok();
        assert_eq!(ok["verified"], formats, "--require {require}: {ok:#}");
    }
    // The identity: the signatures name trusted/app, not another repository.
    promote(&reg)
        .arg("verify")
        .arg(image.clone())
        .arg("--key")
        .arg(public.display().to_string())
        .arg("--identity")
        .arg(format!("{}/trusted/other", reg.host()))
        .run()
        .assert_failed("Signature.Invalid");
    promote(&reg)
        .arg("verify")
        .arg(image.clone())
        .arg("--key")
        .arg(other_public.display().to_string())
        .run()
        .assert_failed("Signature.Invalid");

    // Idempotent: the same key and claims again add nothing.
    let sig_tag = format!("sha256-{}.sig", &digest["sha256:".len()..]);
    let fallback = format!("sha256-{}", &digest["sha256:".len()..]);
    let tags_before = c.list_tags("trusted/app");
    let again = sign_with_file(&reg, &image, &private, &[]);
    assert_eq!(num(&again, "signatures_created"), 0, "{again:#}");
    assert_eq!(c.list_tags("trusted/app"), tags_before);
    assert_eq!(
        layers_at(&c, "trusted/app", &sig_tag),
        1,
        "one signature layer"
    );
    assert_eq!(
        entries_at(&c, "trusted/app", &fallback),
        1,
        "one referrer listed"
    );

    // discover shows the signature under the index.
    let tree = promote(&reg)
        .arg("discover")
        .arg(image.clone())
        .run()
        .assert_ok();
    let text = tree.to_string();
    assert!(text.contains(BUNDLE), "{tree:#}");
    assert!(text.contains(".sig"), "{tree:#}");
    let plain = Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("discover")
        .arg(image.clone())
        .run();
    assert_eq!(plain.code, 0, "{}", plain.describe());
    assert!(plain.stdout.contains("└── "), "{}", plain.stdout);
}

#[test]
fn with_an_upstream_bundle_attached_our_signature_still_verifies_by_both_routes() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let pushed = push_index(&c, "trusted/app", "1", Format::Oci, PLATFORMS, &[1024]);
    let image = format!("{}/trusted/app:1", reg.host());
    let scope = format!("{}/trusted/app", reg.host());
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = generate_key(keys.path(), "cosign", PASSWORD);
    let (upstream, _) = generate_key(keys.path(), "upstream", PASSWORD);
    let pem = std::fs::read_to_string(&public).unwrap();

    // An upstream signature in cosign v3's format, by another key, already on the digest.
    sign_with_file(&reg, &image, &upstream, &["--mode", "bundle", "--top-only"]);
    // cosign v3 reads only bundles when there are any: our legacy signature alone is not
    // enough for `verify` (its default is cosign v3's rule)…
    sign_with_file(&reg, &image, &private, &["--mode", "legacy"]);
    let run = promote(&reg)
        .arg("verify")
        .arg(image.clone())
        .arg("--key")
        .arg(public.display().to_string())
        .run();
    run.assert_failed("Signature.Invalid");
    assert!(
        run.error_line().contains("legacy signatures are not read"),
        "{}",
        run.describe()
    );

    // …so the pipeline writes both: then every route verifies.
    let v = sign_with_file(&reg, &image, &private, &[]);
    assert_eq!(
        num(&v, "signatures_created"),
        1 + PLATFORMS.len() as u64,
        "only the bundles were missing: {v:#}"
    );
    for require in ["any", "bundle", "legacy", "both"] {
        promote(&reg)
            .arg("verify")
            .arg(image.clone())
            .arg("--key")
            .arg(public.display().to_string())
            .arg("--require")
            .arg(require)
            .run()
            .assert_ok();
    }
    let bundles = bundles_of(&c, "trusted/app", &pushed.digest);
    assert_eq!(bundles.len(), 2, "upstream's and ours");
    sigstore_js_accepts(&bundles, &pem, &pushed.digest).unwrap();
    let out = verify_with_skopeo(&image, &scope, &public);
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A re-sign adds no referrer and no .sig layer.
    let sig_tag = format!("sha256-{}.sig", crate::support::digest_hex(&pushed.digest));
    let again = sign_with_file(&reg, &image, &private, &[]);
    assert_eq!(num(&again, "signatures_created"), 0, "{again:#}");
    assert_eq!(bundles_of(&c, "trusted/app", &pushed.digest).len(), 2);
    assert_eq!(layers_at(&c, "trusted/app", &sig_tag), 1);
}

#[test]
fn bad_keys_and_missing_images_fail_with_one_line_and_write_nothing() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    push_index(&c, "trusted/app", "1", Format::Oci, PLATFORMS, &[1024]);
    let image = format!("{}/trusted/app:1", reg.host());
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = generate_key(keys.path(), "cosign", PASSWORD);

    let run = promote(&reg)
        .arg("sign")
        .arg(image.clone())
        .arg("--key")
        .arg(private.display().to_string())
        .env("COSIGN_PASSWORD", "wrong")
        .run();
    run.assert_failed("Key.Invalid");
    assert!(
        run.error_line().contains("wrong password"),
        "{}",
        run.describe()
    );

    let run = promote(&reg)
        .arg("sign")
        .arg(format!("{}/trusted/none:1", reg.host()))
        .arg("--key")
        .arg(private.display().to_string())
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    run.assert_failed("Registry.NotFound");
    assert_eq!(
        c.list_tags("trusted/app"),
        vec!["1".to_owned()],
        "nothing written"
    );

    promote(&reg)
        .arg("verify")
        .arg(image)
        .arg("--key")
        .arg(public.display().to_string())
        .run()
        .assert_failed("Signature.Missing");
}

/// `promote` pointed at moto (KMS `MessageType=DIGEST` corrected, the CLI's default mode).
fn kms_promote(reg: &TestRegistry, moto: &crate::support::moto::Moto) -> Promote {
    promote(reg)
        .arg("--aws-endpoint-url")
        .arg(moto.url())
        .arg("--aws-region")
        .arg(crate::support::moto::REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
}

/// DIGEST, the default message mode (and the one the template deploys), against KMS.
#[test]
fn kms_signatures_on_moto_verify_with_promote_and_skopeo_for_p256_and_rsa() {
    let moto = crate::support::moto::Moto::start();
    for spec in ["ECC_NIST_P256", "RSA_3072"] {
        let reg = TestRegistry::start();
        let c = RegistryClient::new(&reg);
        push_index(&c, "trusted/app", "1", Format::Oci, PLATFORMS, &[2048]);
        let image = format!("{}/trusted/app:1", reg.host());
        let scope = format!("{}/trusted/app", reg.host());
        let key_id = moto.create_signing_key(spec);
        let uri = format!("awskms:///{key_id}");

        let v = kms_promote(&reg, &moto)
            .arg("sign")
            .arg(image.clone())
            .arg("--key")
            .arg(uri.clone())
            .arg("--annotation")
            .arg("org.example.env=dev")
            .run()
            .assert_ok();
        assert_eq!(
            num(&v, "signatures_created"),
            2 * (1 + PLATFORMS.len() as u64),
            "{spec}: {v:#}"
        );

        let ok = kms_promote(&reg, &moto)
            .arg("verify")
            .arg(image.clone())
            .arg("--key")
            .arg(uri.clone())
            .run()
            .assert_ok();
        assert_eq!(ok["claims"]["org.example.env"], "dev", "{spec}: {ok:#}");

        // The oracle, with the public key exported through KMS GetPublicKey.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("kms.pub");
        std::fs::write(&pem, moto.public_key_pem(&key_id)).unwrap();
        let out = verify_with_skopeo(&image, &scope, &pem);
        assert!(
            out.status.success(),
            "{spec}: skopeo rejected the KMS signature: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Randomised ECDSA signatures, yet a re-run adds nothing.
        let again = kms_promote(&reg, &moto)
            .arg("sign")
            .arg(image.clone())
            .arg("--key")
            .arg(uri.clone())
            .arg("--kms-message-mode")
            .arg("digest")
            .arg("--annotation")
            .arg("org.example.env=dev")
            .run()
            .assert_ok();
        assert_eq!(num(&again, "signatures_created"), 0, "{spec}: {again:#}");
    }
}

/// RAW stays a configuration for KMS stand-ins without the DIGEST fix; it still signs.
#[test]
fn kms_raw_message_mode_still_signs_and_unusable_keys_are_refused() {
    let moto = crate::support::moto::Moto::start();
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    push_index(&c, "trusted/app", "1", Format::Oci, PLATFORMS, &[2048]);
    let image = format!("{}/trusted/app:1", reg.host());
    let key_id = moto.create_signing_key("ECC_NIST_P256");
    let uri = format!("awskms:///{key_id}");

    let v = kms_promote(&reg, &moto)
        .arg("sign")
        .arg(image.clone())
        .arg("--key")
        .arg(uri.clone())
        .arg("--kms-message-mode")
        .arg("raw")
        .run()
        .assert_ok();
    assert_eq!(
        num(&v, "signatures_created"),
        2 * (1 + PLATFORMS.len() as u64),
        "a bundle and a legacy signature per digest: {v:#}"
    );
    kms_promote(&reg, &moto)
        .arg("verify")
        .arg(image.clone())
        .arg("--key")
        .arg(uri)
        .run()
        .assert_ok();

    let enc = moto.create_encryption_key();
    let run = kms_promote(&reg, &moto)
        .arg("sign")
        .arg(image.clone())
        .arg("--key")
        .arg(format!("awskms:///{enc}"))
        .run();
    run.assert_failed("Key.Invalid");
    assert!(
        run.error_line().contains("cannot sign"),
        "{}",
        run.describe()
    );

    let before = c.list_tags("trusted/app");
    let run = kms_promote(&reg, &moto)
        .arg("sign")
        .arg(image)
        .arg("--key")
        .arg("awskms:///00000000-0000-0000-0000-000000000000")
        .run();
    run.assert_failed("Kms.Failed");
    assert_eq!(c.list_tags("trusted/app"), before, "nothing written");
}

/// A KMS that signs the wrong bytes: moto as installed signs SHA-256(digest) in DIGEST mode. The
/// signer checks every signature with the key's public key before storing it, so nothing is
/// written.
#[test]
fn a_kms_signature_that_does_not_verify_is_never_stored() {
    let moto = crate::support::moto::Moto::start_uncorrected();
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    push_index(&c, "trusted/app", "1", Format::Oci, PLATFORMS, &[2048]);
    let image = format!("{}/trusted/app:1", reg.host());
    let key_id = moto.create_signing_key("ECC_NIST_P256");

    let run = kms_promote(&reg, &moto)
        .arg("sign")
        .arg(image)
        .arg("--key")
        .arg(format!("awskms:///{key_id}"))
        .run();
    run.assert_failed("Signature.Invalid");
    assert_eq!(
        c.list_tags("trusted/app"),
        vec!["1".to_owned()],
        "nothing written"
    );
}

/// The independent bundle verifier is no rubber stamp: its self-test builds bundles with
/// node:crypto alone and shows tampered payloads and types, other keys, other digests, other
/// predicate types, RSA-PSS and malformed bundles refused.
#[test]
fn the_sigstore_js_verifier_refuses_what_it_must() {
    let node = crate::support::sigstore_js::node();
    let out = Command::new(node)
        .arg(crate::support::pipeline::root().join("scripts/node/verify-bundle.selftest.mjs"))
        .output()
        .expect("run the self-test");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cases as expected"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
