//! `promote retag`, `approve` and `lifecycle` against a real loopback registry: environment tags
//! on the exact digest, idempotent re-runs, conflicts, the environment order, approvals pushed,
//! discovered and acted on, signatures required, and the gate re-run with the target
//! environment's policy (docs/DESIGN.md invariants 6 and 7; issue "retag-for-environment").

use crate::support::cli::{Promote, Run, str_field};
use crate::support::images::{Format, Pushed, RegistryClient, push_index, push_index_with};
use crate::support::registry::TestRegistry;
use crate::support::sigstore::generate_key;
use crate::support::sigstore_js::verify_bundle_with_sigstore_js;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const PASSWORD: &str = "correct horse battery staple";
const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

fn promote(reg: &TestRegistry) -> Promote {
    Promote::default()
        .arg("--insecure-registry")
        .arg(reg.host())
        .arg("--json")
}

/// Signs `image` and attests its promotion (what the sign step does).
fn sign(reg: &TestRegistry, image: &str, key: &Path) {
    promote(reg)
        .arg("sign")
        .arg(image)
        .arg("--attest")
        .arg("--key")
        .arg(key.display().to_string())
        .env("COSIGN_PASSWORD", PASSWORD)
        .run()
        .assert_ok();
}

fn env_tags(c: &RegistryClient) -> Vec<String> {
    let mut t: Vec<String> = c
        .list_tags("trusted/app")
        .into_iter()
        .filter(|t| !t.starts_with("sha256-"))
        .collect();
    t.sort();
    t
}

/// Asserts exit `code` and the error line ending in `[error_type]`; returns the line.
fn assert_exit(run: &Run, code: i32, error_type: &str) -> String {
    assert_eq!(run.code, code, "{}", run.describe());
    let line = run.error_line().to_owned();
    assert!(
        line.ends_with(&format!("[{error_type}]")),
        "{}",
        run.describe()
    );
    line
}

/// One HIGH finding on `digest` (ListFindings output shape).
fn high_finding(dir: &Path, digest: &str) -> PathBuf {
    let v = json!({"findings": [{
        "awsAccountId": "123456789012",
        "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/env-test",
        "severity": "HIGH", "status": "ACTIVE", "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": "YES", "exploitAvailable": "NO",
        "firstObservedAt": "2026-11-01T10:00:00Z", "lastObservedAt": "2026-11-01T10:00:00Z",
        "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-1111", "source": "NVD",
            "vulnerablePackages": [{"name": "openssl", "version": "3.0.13"}]},
        "resources": [{"id": "x", "type": "AWS_ECR_CONTAINER_IMAGE", "details": {
            "awsEcrContainerImage": {"imageHash": digest, "repositoryName": "trusted/app",
                "registry": "123456789012"}}}]
    }]});
    let p = dir.join("findings.json");
    std::fs::write(&p, v.to_string()).expect("write findings");
    p
}

struct Fixture {
    reg: TestRegistry,
    c: RegistryClient,
    image: Pushed,
    tagged: String,
    keys: tempfile::TempDir,
    private: PathBuf,
    public: PathBuf,
}

fn fixture() -> Fixture {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    // An image as promote-and-annotate leaves it: it records its source, a passing gate and
    // the policy's digest (what the promotion attestation is made of).
    let record = json!({
        "io.ecr-promotion.source.name": "upstream.example/app:1.4.2",
        "io.ecr-promotion.source.digest": crate::support::sha256_digest(b"upstream"),
        "io.ecr-promotion.gate": "PASSED CRITICAL=0 HIGH=0 MEDIUM=0 LOW=0 UNTRIAGED=0 suppressed=0",
        "io.ecr-promotion.policy.digest": crate::support::sha256_digest(b"policy"),
    });
    let image = push_index_with(
        &c,
        "trusted/app",
        "1.4.2",
        Format::Oci,
        PLATFORMS,
        &[64 * 1024],
        &record,
    );
    let tagged = format!("{}/trusted/app:1.4.2", reg.host());
    let keys = tempfile::tempdir().expect("tempdir");
    let (private, public) = generate_key(keys.path(), "pipeline", PASSWORD);
    Fixture {
        reg,
        c,
        image,
        tagged,
        keys,
        private,
        public,
    }
}

#[test]
fn retag_puts_the_exact_manifest_under_the_environment_tag_and_a_rerun_changes_nothing() {
    let f = fixture();
    let v = promote(&f.reg)
        .arg("retag")
        .arg(&f.tagged)
        .arg("--environment")
        .arg("dev")
        .arg("--build")
        .arg("1234")
        .arg("--tag")
        .arg("1.4.2-dev")
        .run()
        .assert_ok();
    assert_eq!(str_field(&v, "digest"), f.image.digest);
    assert_eq!(v["changed"], true);
    assert_eq!(v["tags"][0]["tag"], "dev-1234");
    assert_eq!(v["tags"][0]["outcome"], "created");
    // Byte-exact: the tag serves the very bytes of the digest.
    assert_eq!(f.c.manifest("trusted/app", "dev-1234").0, f.image.bytes);
    assert_eq!(f.c.manifest("trusted/app", "1.4.2-dev").0, f.image.bytes);

    let again = promote(&f.reg)
        .arg("retag")
        .arg(format!("{}/trusted/app@{}", f.reg.host(), f.image.digest))
        .arg("--environment")
        .arg("dev")
        .arg("--build")
        .arg("1234")
        .arg("--tag")
        .arg("1.4.2-dev")
        .run()
        .assert_ok();
    assert_eq!(again["changed"], false, "{again:#}");
    assert!(
        again["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .all(|t| t["outcome"] == "unchanged")
    );
    assert_eq!(env_tags(&f.c), ["1.4.2", "1.4.2-dev", "dev-1234"]);

    // Another digest may not take dev-1234.
    let other = push_index(
        &f.c,
        "trusted/app",
        "2.0.0",
        Format::Oci,
        PLATFORMS,
        &[1024],
    );
    let run = promote(&f.reg)
        .arg("retag")
        .arg(format!("{}/trusted/app:2.0.0", f.reg.host()))
        .arg("--environment")
        .arg("dev")
        .arg("--build")
        .arg("1234")
        .run();
    let line = assert_exit(&run, 1, "Tag.Conflict");
    assert!(line.contains(&f.image.digest), "{line}");
    assert_eq!(f.c.manifest("trusted/app", "dev-1234").0, f.image.bytes);
    assert_ne!(other.digest, f.image.digest);
}

#[test]
fn environment_promotion_needs_the_signature_the_order_and_the_target_environments_gate() {
    let f = fixture();
    let dir = f.keys.path();
    let public = f.public.display().to_string();
    // staging and prod need an approval signed by the approver's key (the document's PEM).
    let (approver, approver_pub) = generate_key(dir, "approver", PASSWORD);
    let pem = std::fs::read_to_string(&approver_pub).expect("approver public key");
    let approvers = json!([{"name": "release-bot", "key": pem}]);
    let envs = dir.join("environments.json");
    std::fs::write(
        &envs,
        json!({"environments": [{"name": "dev"}, {"name": "staging", "approvers": approvers},
            {"name": "prod", "approvers": approvers}]})
        .to_string(),
    )
    .expect("environments");
    let approvals = format!("{}/approvals/app", f.reg.host());
    let retag = |env: &str| {
        promote(&f.reg)
            .arg("retag")
            .arg(&f.tagged)
            .arg("--environment")
            .arg(env)
            .arg("--key")
            .arg(&public)
            .arg("--approvals")
            .arg(&approvals)
            .arg("--environments-file")
            .arg(envs.display().to_string())
    };

    // Unsigned: refused, nothing tagged.
    assert_exit(
        &retag("dev").arg("--build").arg("77").run(),
        1,
        "Signature.Missing",
    );
    // Signed by someone else: refused.
    let (stranger, _) = generate_key(dir, "stranger", PASSWORD);
    sign(&f.reg, &f.tagged, &stranger);
    assert_exit(
        &retag("dev").arg("--build").arg("77").run(),
        1,
        "Signature.Invalid",
    );
    assert_eq!(env_tags(&f.c), ["1.4.2"]);

    // Signed by the pipeline's key but not attested: refused, nothing tagged.
    promote(&f.reg)
        .arg("sign")
        .arg(&f.tagged)
        .arg("--key")
        .arg(f.private.display().to_string())
        .env("COSIGN_PASSWORD", PASSWORD)
        .run()
        .assert_ok();
    let line = assert_exit(
        &retag("dev").arg("--build").arg("77").run(),
        1,
        "Signature.Missing",
    );
    assert!(line.contains("promotion attestation"), "{line}");
    assert_eq!(env_tags(&f.c), ["1.4.2"]);

    sign(&f.reg, &f.tagged, &f.private);
    let v = retag("dev").arg("--build").arg("77").run().assert_ok();
    // The attestation verifies and is printed by `verify --attestation`.
    let att = promote(&f.reg)
        .arg("verify")
        .arg(&f.tagged)
        .arg("--key")
        .arg(&public)
        .arg("--attestation")
        .run()
        .assert_ok();
    assert_eq!(
        att["attestation"]["predicate"]["verificationResult"], "PASSED",
        "{att:#}"
    );
    assert_eq!(
        att["attestation"]["predicate"]["promotion"]["source"], "upstream.example/app:1.4.2",
        "{att:#}"
    );
    assert_eq!(v["operation"], "promote-environment");
    assert_eq!(v["retag"]["tags"][0]["tag"], "dev-77");

    // Approvals: signed with a key, pushed to the approvals repository.
    let approve = |env: &str, key: &PathBuf| {
        promote(&f.reg)
            .arg("approve")
            .arg(&f.tagged)
            .arg("--environment")
            .arg(env)
            .arg("--key")
            .arg(key.display().to_string())
            .arg("--to")
            .arg(&approvals)
            .arg("--by")
            .arg("release-bot")
            .env("COSIGN_PASSWORD", PASSWORD)
            .run()
            .assert_ok()
    };

    // prod before staging, with a valid prod approval: refused by the order.
    let a = approve("prod", &approver);
    assert_eq!(a["subject"], f.image.digest.as_str());
    // Sigstore's own verifier (sigstore-js) reads the approval as a DSSE bundle over an in-toto
    // statement about this digest, signed by the approver's key and by no other.
    let (m, _) =
        f.c.manifest("approvals/app", a["approval"].as_str().expect("approval"));
    let m: Value = serde_json::from_slice(&m).expect("approval manifest");
    assert_eq!(m["subject"]["digest"], f.image.digest.as_str(), "{m:#}");
    let bundle = f.c.get_blob(
        "approvals/app",
        m["layers"][0]["digest"].as_str().expect("layer"),
    );
    let approval_type = Some("urn:ecr-promotion:approval:v1");
    let by_approver = verify_bundle_with_sigstore_js(&bundle, &pem, &f.image.digest, approval_type);
    assert!(
        by_approver.status.success(),
        "{}",
        String::from_utf8_lossy(&by_approver.stderr)
    );
    let pipeline_pem = std::fs::read_to_string(&f.public).expect("pipeline public key");
    let by_pipeline =
        verify_bundle_with_sigstore_js(&bundle, &pipeline_pem, &f.image.digest, approval_type);
    assert!(!by_pipeline.status.success(), "verified with another key");
    let line = assert_exit(&retag("prod").run(), 1, "Environment.OutOfOrder");
    assert!(line.contains("before staging"), "{line}");

    // staging with only the prod approval, then also one signed by a key that approves
    // nothing: refused, naming why.
    let line = assert_exit(&retag("staging").run(), 1, "Approval.Invalid");
    assert!(
        line.contains("it approves environment \"prod\", not \"staging\""),
        "{line}"
    );
    approve("staging", &stranger);
    let line = assert_exit(&retag("staging").run(), 1, "Approval.Invalid");
    assert!(
        line.contains("any approver of staging (release-bot)"),
        "{line}"
    );
    assert_eq!(env_tags(&f.c), ["1.4.2", "dev-77"]);

    // The approver's approval: acted on with the gate re-run. HIGH on amd64 blocks in prod only.
    approve("staging", &approver);
    let amd64 = &f.image.child("linux/amd64").digest;
    let findings = high_finding(dir, amd64);
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "block_severities: [CRITICAL]\nenvironments:\n  prod: {block_severities: [CRITICAL, HIGH]}\n",
    )
    .expect("policy");
    let run = promote(&f.reg)
        .arg("retag")
        .arg(&f.tagged)
        .arg("--from-approvals")
        .arg("--key")
        .arg(&public)
        .arg("--approvals")
        .arg(&approvals)
        .arg("--environments-file")
        .arg(envs.display().to_string())
        .arg("--policy")
        .arg(policy.display().to_string())
        .arg("--findings")
        .arg(findings.display().to_string())
        .run();
    assert_eq!(run.code, 3, "the prod gate denies HIGH\n{}", run.describe());
    assert!(run.stderr.contains("CVE-2026-1111"), "{}", run.describe());
    assert_eq!(
        env_tags(&f.c),
        ["1.4.2", "dev-77", "staging-77"],
        "staging entered, build id following dev; prod denied"
    );
    assert_eq!(f.c.manifest("trusted/app", "staging-77").0, f.image.bytes);
    // The verified approval is recorded in trusted, beside the signatures.
    let tree = promote(&f.reg)
        .arg("discover")
        .arg(&f.tagged)
        .run()
        .assert_ok()
        .to_string();
    assert!(
        tree.contains("application/vnd.ecr-promotion.approval.v1+json"),
        "{tree}"
    );
    // `discover --approvals` lists what waits in the approvals repository, each verified.
    let listed = promote(&f.reg)
        .arg("discover")
        .arg(&f.tagged)
        .arg("--approvals")
        .arg(&approvals)
        .arg("--environments-file")
        .arg(envs.display().to_string())
        .run()
        .assert_ok();
    let statuses: Vec<String> = listed["referrers"]
        .as_array()
        .expect("referrers")
        .iter()
        .filter(|n| {
            n["via"]
                .as_str()
                .is_some_and(|v| v.starts_with("approvals "))
        })
        .map(|n| n["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses.len(), 3, "{listed:#}");
    for want in [
        "verified: release-bot approves prod",
        "verified: release-bot approves staging",
        "not verified: its signature does not verify with the key of any approver of staging",
    ] {
        assert!(
            statuses.iter().any(|s| s.starts_with(want)),
            "{want}: {statuses:?}"
        );
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_no_tag_is_written() {
    let f = fixture();
    let cases: &[(&[&str], &str)] = &[
        (&["--environment", "qa"], "unknown environment \"qa\""),
        (&["--environment", "dev", "--tag", "bad tag"], "\"bad tag\""),
        (&["--environment", "dev", "--build", "a:b"], "tag grammar"),
        (
            &["--environment", "dev", "--build", &"7".repeat(130)],
            "characters",
        ),
    ];
    for (args, needle) in cases {
        let mut p = promote(&f.reg).arg("retag").arg(&f.tagged);
        for a in *args {
            p = p.arg(*a);
        }
        let run = p.run();
        let line = assert_exit(&run, 2, "Input.Invalid");
        assert!(line.contains(needle), "{needle}: {line}");
    }
    let elsewhere = format!("{}/trusted/app@sha256:{}", f.reg.host(), "ab".repeat(32));
    let run = promote(&f.reg)
        .arg("retag")
        .arg(&elsewhere)
        .arg("--environment")
        .arg("dev")
        .run();
    let line = assert_exit(&run, 1, "Registry.NotFound");
    assert!(line.contains("nothing was tagged"), "{line}");
    let run = promote(&f.reg)
        .arg("approve")
        .arg(&f.tagged)
        .arg("--environment")
        .arg("qa")
        .arg("--key")
        .arg(f.private.display().to_string())
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    assert_exit(&run, 2, "Input.Invalid");
    assert_eq!(env_tags(&f.c), ["1.4.2"], "nothing written");
    assert!(
        f.c.list_tags("trusted/app")
            .iter()
            .all(|t| !t.starts_with("sha256-")),
        "no approval written"
    );
}

#[test]
fn lifecycle_prints_the_policy_the_template_ships() {
    let run = Promote::new(["lifecycle", "--environments", "dev,staging,prod"]).run();
    assert_eq!(run.code, 0, "{}", run.describe());
    let printed: Value = run.json();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lifecycle/dev-staging-prod.json"),
        )
        .expect("fixture"),
    )
    .expect("fixture JSON");
    assert_eq!(printed, fixture);
    let run = Promote::new(["lifecycle", "--environments", "prod,prod-eu"]).run();
    let line = assert_exit(&run, 2, "Input.Invalid");
    assert!(line.contains("would also match"), "{line}");
}
