//! `promote run`: the whole pipeline in-process against a real registry, with a local cosign key
//! and a findings file standing in for KMS and Inspector; skopeo 1.18 verifies the signature.

use crate::support::cli::{Promote, str_field};
use crate::support::images::{
    Format, RegistryClient, push_disguised_index, push_index, push_index_with, push_referrer,
    random_bytes, write_referrers_fallback,
};
use crate::support::registry::TestRegistry;
use crate::support::sigstore::{generate_key, verify_with_skopeo};
use crate::support::sigstore_js::{BUNDLE, bundles_of, sigstore_js_accepts};
use serde_json::{Value, json};
use std::path::Path;

const PASSWORD: &str = "run-test-password";

fn findings(dir: &Path, digest: &str, severity: &str) -> String {
    let v = json!({"findings": [{
        "awsAccountId": "123456789012",
        "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/run-test",
        "severity": severity, "status": "ACTIVE", "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": "YES",
        "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-3000", "source": "NVD",
            "vulnerablePackages": [{"name": "zlib", "version": "1.2.13"}]},
        "resources": [{"id": "x", "type": "AWS_ECR_CONTAINER_IMAGE", "details": {
            "awsEcrContainerImage": {"imageHash": digest, "repositoryName": "q/app"}}}]
    }]});
    let p = dir.join(format!("findings-{severity}.json"));
    std::fs::write(&p, v.to_string()).expect("findings");
    p.display().to_string()
}

fn run(reg: &TestRegistry, src: &str, key: &Path, findings: &str) -> crate::support::cli::Run {
    run_with(reg, src, key, findings, &[])
}

/// `promote --json run` as [`run`] does, with `extra` arguments.
fn run_with(
    reg: &TestRegistry,
    src: &str,
    key: &Path,
    findings: &str,
    extra: &[&str],
) -> crate::support::cli::Run {
    let mut p = Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("--json")
        .arg("run")
        .arg(src)
        .arg("--quarantine")
        .arg(format!("{}/q/app", reg.host()))
        .arg("--trusted")
        .arg(format!("{}/t/app", reg.host()))
        .arg("--key")
        .arg(key.display().to_string())
        .arg("--findings")
        .arg(findings)
        .arg("--annotation")
        .arg("org.example.team=payments")
        .env("COSIGN_PASSWORD", PASSWORD);
    for e in extra {
        p = p.arg(*e);
    }
    p.run()
}

#[test]
fn run_promotes_signs_and_tags_in_process_and_a_rerun_adds_nothing() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let app = push_index(
        &c,
        "upstream/app",
        "1.0",
        Format::Oci,
        &["linux/amd64", "linux/arm64"],
        &[4096],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = generate_key(dir.path(), "pipeline", PASSWORD);
    let medium = findings(dir.path(), &app.child("linux/amd64").digest, "MEDIUM");
    let src = format!("{}/upstream/app:1.0", reg.host());

    let v = run(&reg, &src, &private, &medium).assert_ok();
    assert_eq!(str_field(&v, "outcome"), "PROMOTED");
    assert_eq!(v["retag"]["tags"], json!(["dev-1.0"]), "{v:#}");
    let trusted = v["promote"]["trusted"]
        .as_str()
        .expect("trusted")
        .to_owned();
    let steps: Vec<&str> = v["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["step"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        steps,
        [
            "copy-to-quarantine",
            "scan-gate",
            "promote-and-annotate",
            "sign",
            "retag-for-environment"
        ]
    );
    // Quarantine byte-exact; trusted annotated; the environment tag names the trusted digest.
    assert_eq!(c.manifest("q/app", &app.digest).0, app.bytes);
    let digest = trusted.split('@').nth(1).expect("pinned");
    let (bytes, _) = c.manifest("t/app", "dev-1.0");
    assert_eq!(bytes, c.manifest("t/app", digest).0);
    let index: Value = serde_json::from_slice(&bytes).expect("index");
    assert_eq!(index["annotations"]["org.example.team"], "payments");
    // The independent verifier accepts the signature.
    let out = verify_with_skopeo(
        &format!("{}/t/app:dev-1.0", reg.host()),
        &format!("{}/t/app", reg.host()),
        &public,
    );
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let again = run(&reg, &src, &private, &medium).assert_ok();
    assert_eq!(v["sign"]["attestationCreated"], true, "{v:#}");
    assert_eq!(again["sign"]["signaturesCreated"], 0, "{again:#}");
    assert_eq!(again["sign"]["attestationCreated"], false, "{again:#}");
    assert_eq!(again["retag"]["changed"], false);
    assert_eq!(again["promote"]["trusted"], trusted.as_str());
}

#[test]
fn run_stops_at_the_gate_and_trusts_nothing() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let app = push_index(
        &c,
        "upstream/bad",
        "2.0",
        Format::Oci,
        &["linux/amd64"],
        &[4096],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, _) = generate_key(dir.path(), "pipeline", PASSWORD);
    let critical = findings(dir.path(), &app.child("linux/amd64").digest, "CRITICAL");
    let r = run(
        &reg,
        &format!("{}/upstream/bad:2.0", reg.host()),
        &private,
        &critical,
    );
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("[Gate.Denied]"), "{}", r.describe());
    assert_eq!(r.json()["outcome"], "REJECTED");
    assert!(
        c.list_tags("t/app").is_empty(),
        "nothing trusted: {:?}",
        c.list_tags("t/app")
    );
}

/// Issue 12's hole through the whole in-process pipeline: the disguised amd64 entry is gated,
/// its CRITICAL finding denies the run, and nothing reaches the trusted repository.
#[test]
fn run_gates_an_entry_in_attestation_disguise_and_trusts_nothing() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let app = push_disguised_index(&c, "upstream/disguised", "6.6.6");
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, _) = generate_key(dir.path(), "pipeline", PASSWORD);
    let critical = findings(dir.path(), &app.child("linux/amd64").digest, "CRITICAL");
    let r = run(
        &reg,
        &format!("{}/upstream/disguised:6.6.6", reg.host()),
        &private,
        &critical,
    );
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("[Gate.Denied]"), "{}", r.describe());
    assert!(r.stderr.contains("CVE-2026-3000"), "{}", r.describe());
    assert_eq!(r.json()["outcome"], "REJECTED");
    assert!(
        !c.catalog().iter().any(|repo| repo == "t/app"),
        "nothing trusted: {:?}",
        c.catalog()
    );
}

/// The artifact types listed in the fallback index of `digest` in `repo`.
fn referrer_types(c: &RegistryClient, repo: &str, digest: &str) -> Vec<String> {
    let tag = format!("sha256-{}", crate::support::digest_hex(digest));
    let Some((bytes, _)) = c.get_manifest(repo, &tag) else {
        return Vec::new();
    };
    let index: Value = serde_json::from_slice(&bytes).expect("fallback index");
    let mut t: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap_or_default().to_owned())
        .collect();
    t.sort();
    t
}

#[test]
fn run_preserving_the_digest_keeps_upstream_referrers_and_adds_our_signatures_and_attestation() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let app = push_index(
        &c,
        "upstream/app",
        "2.0",
        Format::Oci,
        &["linux/amd64", "linux/arm64"],
        &[4096],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = generate_key(dir.path(), "pipeline", PASSWORD);
    let (upstream_key, _) = generate_key(dir.path(), "upstream", PASSWORD);
    let src = format!("{}/upstream/app:2.0", reg.host());

    // Upstream's SBOM, and a "referrer" that is really a runnable image (a tar layer): the one
    // must come along, the other must not reach trusted.
    let sbom = push_referrer(
        &c,
        "upstream/app",
        &app,
        "application/spdx+json",
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3"}"#,
    );
    let sneaky = push_referrer(
        &c,
        "upstream/app",
        &app,
        "application/vnd.example.tool",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &random_bytes(2048),
    );
    write_referrers_fallback(&c, "upstream/app", &app, &[&sbom, &sneaky]);
    // Upstream's own cosign v3 signature, by another key.
    Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("--json")
        .arg("sign")
        .arg(&src)
        .arg("--key")
        .arg(upstream_key.display().to_string())
        .arg("--mode")
        .arg("bundle")
        .arg("--top-only")
        .env("COSIGN_PASSWORD", PASSWORD)
        .run()
        .assert_ok();

    let medium = findings(dir.path(), &app.child("linux/amd64").digest, "MEDIUM");
    let preserve = |key: &Path| run_with(&reg, &src, key, &medium, &["--preserve-digest"]);
    let v = preserve(&private).assert_ok();
    assert_eq!(str_field(&v, "outcome"), "PROMOTED", "{v:#}");
    // The same digest in trusted, byte for byte, tagged for dev.
    assert_eq!(v["promote"]["digest"], app.digest.as_str(), "{v:#}");
    assert_eq!(v["promote"]["preserved"], true);
    assert_eq!(c.manifest("t/app", &app.digest).0, app.bytes);
    assert_eq!(c.manifest("t/app", "dev-2.0").0, app.bytes);

    // Trusted holds upstream's SBOM and bundle, our bundle and attestation; not the image.
    let types = referrer_types(&c, "t/app", &app.digest);
    assert_eq!(
        types,
        ["application/spdx+json", BUNDLE, BUNDLE, BUNDLE],
        "upstream bundle, our signature, our attestation, the SBOM: {types:?}"
    );
    assert!(
        !c.blob_exists("t/app", &sneaky.blobs[1].digest),
        "the runnable referrer's layer reached trusted"
    );
    assert!(c.get_manifest("t/app", &sneaky.digest).is_none());
    // Our signatures verify by both routes; the claims carry what the image could not record.
    let verified = Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("--json")
        .arg("verify")
        .arg(format!("{}/t/app:dev-2.0", reg.host()))
        .arg("--key")
        .arg(public.display().to_string())
        .arg("--require")
        .arg("both")
        .arg("--attestation")
        .run()
        .assert_ok();
    assert_eq!(
        verified["claims"]["org.example.team"], "payments",
        "{verified:#}"
    );
    assert_eq!(
        verified["claims"]["io.ecr-promotion.source.digest"],
        app.digest.as_str()
    );
    let predicate = &verified["attestation"]["predicate"];
    assert_eq!(predicate["verificationResult"], "PASSED");
    assert_eq!(predicate["promotion"]["sourceDigest"], app.digest.as_str());
    assert!(
        predicate["promotion"]["source"]
            .as_str()
            .unwrap_or_default()
            .ends_with("upstream/app:2.0"),
        "{predicate:#}"
    );
    let out = verify_with_skopeo(
        &format!("{}/t/app:dev-2.0", reg.host()),
        &format!("{}/t/app", reg.host()),
        &public,
    );
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&public).expect("public key");
    sigstore_js_accepts(&bundles_of(&c, "t/app", &app.digest), &pem, &app.digest)
        .expect("sigstore-js verifies our bundle beside upstream's");

    // A re-run adds nothing.
    let again = preserve(&private).assert_ok();
    assert_eq!(again["sign"]["signaturesCreated"], 0, "{again:#}");
    assert_eq!(again["sign"]["attestationCreated"], false, "{again:#}");
    assert_eq!(referrer_types(&c, "t/app", &app.digest).len(), 4);

    // An upstream document that wears the pipeline's reserved keys cannot be preserved.
    let forged = push_index_with(
        &c,
        "upstream/app",
        "3.0",
        Format::Oci,
        &["linux/amd64"],
        &[1024],
        &json!({"io.ecr-promotion.gate": "PASSED CRITICAL=0 HIGH=0 MEDIUM=0 LOW=0 UNTRIAGED=0 suppressed=0"}),
    );
    let run = Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("run")
        .arg(format!("{}/upstream/app:3.0", reg.host()))
        .arg("--quarantine")
        .arg(format!("{}/q/app", reg.host()))
        .arg("--trusted")
        .arg(format!("{}/t/app", reg.host()))
        .arg("--key")
        .arg(private.display().to_string())
        .arg("--findings")
        .arg(findings(
            dir.path(),
            &forged.child("linux/amd64").digest,
            "LOW",
        ))
        .arg("--preserve-digest")
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    assert_eq!(run.code, 2, "{}", run.describe());
    let line = run.error_line();
    assert!(
        line.contains("reserved") && line.ends_with("[Input.Invalid]"),
        "{}",
        run.describe()
    );
    assert!(
        c.get_manifest("t/app", &forged.digest).is_none(),
        "nothing in trusted"
    );
}

#[test]
fn run_without_a_key_is_a_usage_error_before_anything_is_fetched() {
    // No registry is running at that address: the key is checked first.
    let run = Promote::default()
        .arg("run")
        .arg("127.0.0.1:9/upstream/app:1.0")
        .arg("--quarantine")
        .arg("127.0.0.1:9/q/app")
        .arg("--trusted")
        .arg("127.0.0.1:9/t/app")
        .run();
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.only_stderr_line().contains("--key")
            && run.only_stderr_line().ends_with("[Input.Invalid]"),
        "{}",
        run.describe()
    );
}
