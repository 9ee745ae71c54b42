//! `promote run`: the whole pipeline in-process against a real registry, with a local cosign key
//! and a findings file standing in for KMS and Inspector; skopeo 1.18 verifies the signature.

use crate::support::cli::{Promote, str_field};
use crate::support::images::{Format, RegistryClient, push_disguised_index, push_index};
use crate::support::registry::TestRegistry;
use crate::support::sigstore::{generate_key, verify_with_skopeo};
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
    Promote::default()
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
        .env("COSIGN_PASSWORD", PASSWORD)
        .run()
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
