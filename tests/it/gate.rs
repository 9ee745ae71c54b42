//! `promote gate`: findings files (fixtures in tests/fixtures/findings), platform resolution
//! through a real registry, and Inspector's ListFindings served by moto_server.

use crate::support::cli::{Promote, Run};
use crate::support::images::{
    Format, RegistryClient, push_disguised_index, push_image, push_index,
};
use crate::support::moto::{Moto, REGION};
use crate::support::registry::TestRegistry;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Platform digests of the fixture files (tests/fixtures/findings/README.md).
const AMD64: &str = "sha256:b5d8d4f7e9a07280cb7e77dbcbd4ba6c9792acc4ae7b763ca994377ccfd7d955";
const ARM64: &str = "sha256:28807359b90f68557a94f0d3716de820e3106cb2b4082eaf38deefbf86950080";
const OTHER: &str = "sha256:23770fe960687f3c1e33b884d5b97f81e1f776abfe33c1df0cf34d84345f9455";
/// An image reference that is never contacted (platforms are given with --platform-digest).
const IMAGE: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/quarantine/app:1.4.2";

fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    assert!(p.is_file(), "missing fixture {}", p.display());
    p.display().to_string()
}

/// `promote --json gate IMAGE --findings multi-platform.json` over both fixture platforms.
fn gate_file(policy: Option<&str>) -> Promote {
    let mut p = Promote::new(["--json", "gate", IMAGE])
        .arg("--findings")
        .arg(fixture("findings/multi-platform.json"))
        .arg("--platform-digest")
        .arg(AMD64)
        .arg("--platform-digest")
        .arg(ARM64);
    if let Some(policy) = policy {
        p = p.arg("--policy").arg(fixture(policy));
    }
    p
}

/// Asserts exit 3, the `[Gate.Denied]` error line, and returns the printed verdict.
fn assert_denied(run: &Run) -> Value {
    assert_eq!(run.code, 3, "expected a denied gate\n{}", run.describe());
    assert!(
        run.error_line().trim_end().ends_with("[Gate.Denied]"),
        "{}",
        run.describe()
    );
    let v = run.json();
    assert_eq!(v["decision"], "FAILED", "{}", run.describe());
    v
}

/// Asserts exit 1 with `error_type` and a line that mentions `needle`.
fn assert_error(run: &Run, error_type: &str, needle: &str) {
    run.assert_failed(error_type);
    assert!(
        run.error_line().contains(needle),
        "the error line does not mention {needle:?}\n{}",
        run.describe()
    );
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in {v:#}"))
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| x["id"].as_str().expect("id").to_owned())
        })
        .collect()
}

#[test]
fn findings_file_denies_high_findings_on_every_platform() {
    let run = gate_file(None).run();
    let v = assert_denied(&run);
    // The SUPPRESSED CRITICAL blocks too: by default suppressions do not lift a block.
    assert_eq!(ids(&v, "blockingIds"), ["CVE-2024-2961", "CVE-2023-4911"]);
    assert_eq!(
        v["blockingFindings"], 3,
        "HIGH on each platform, the suppressed CRITICAL"
    );
    // CLOSED and other images' findings do not count; SUPPRESSED apart from the counts.
    assert_eq!(v["counts"]["CRITICAL"], 0, "{v:#}");
    assert_eq!(v["counts"]["HIGH"], 2);
    assert_eq!(v["counts"]["MEDIUM"], 2);
    assert_eq!(v["counts"]["LOW"], 1);
    assert_eq!(v["suppressed"], 1);
    let platforms = v["platforms"].as_array().expect("platforms");
    let digests: Vec<&str> = platforms
        .iter()
        .map(|p| p["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [AMD64, ARM64]);
    assert!(platforms.iter().all(|p| p["scan"] == "SCANNED"));
    let blocking: Vec<&Value> = platforms.iter().map(|p| &p["blocking"]).collect();
    assert_eq!(blocking, [&json!(1), &json!(2)], "{v:#}");
    assert!(!run.stdout.contains("CVE-2021-44228"), "{}", run.describe());
    assert!(run.stdout.len() < 8 * 1024);
}

#[test]
fn findings_file_table_says_what_blocks_and_why() {
    let run = Promote::new(["gate", IMAGE])
        .arg("--findings")
        .arg(fixture("findings/multi-platform.json"))
        .arg("--platform-digest")
        .arg(ARM64)
        .run();
    assert_eq!(run.code, 3, "{}", run.describe());
    let row = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("CVE-2023-4911"))
        .unwrap_or_else(|| panic!("no row for the blocking CVE\n{}", run.describe()));
    for cell in [
        "HIGH",
        "libc6 2.36-9+deb12u1",
        &ARM64[..19],
        "severity HIGH",
    ] {
        assert!(row.contains(cell), "row {row:?} lacks {cell:?}");
    }
    let header = run.stdout.lines().find(|l| l.contains("SEVERITY")).unwrap();
    for h in ["ID", "SEVERITY", "PACKAGE", "PLATFORM", "REASON"] {
        assert!(header.contains(h), "{header}");
    }
    assert!(
        !run.stdout.contains("CVE-2024-6119"),
        "MEDIUM does not block by default"
    );
}

/// Issue 12's policy decision, with a policy written for it: a suppression rule (anyone with
/// `inspector2:CreateFilter` can add one account-wide) does not lift a block unless the policy
/// honours suppressions; an UNTRIAGED finding blocks unless `block_untriaged: false`. Both
/// counts are reported either way.
#[test]
fn suppressed_and_untriaged_findings_fail_closed_unless_the_policy_says_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("policy");
        p.display().to_string()
    };
    // Only the suppressed CRITICAL can block: HIGH and MEDIUM do not under this policy.
    let critical_only = policy("critical.yaml", "block_severities: [CRITICAL]\n");
    let honour = policy(
        "honour.yaml",
        "block_severities: [CRITICAL]\nhonour_suppressions: true\n",
    );
    let with = |p: &str| {
        Promote::new(["--json", "gate", IMAGE])
            .arg("--findings")
            .arg(fixture("findings/multi-platform.json"))
            .arg("--platform-digest")
            .arg(ARM64)
            .arg("--policy")
            .arg(p)
            .run()
    };
    let v = assert_denied(&with(&critical_only));
    assert_eq!(ids(&v, "blockingIds"), ["CVE-2024-2961"]);
    assert_eq!(
        (v["suppressed"].clone(), v["counts"]["CRITICAL"].clone()),
        (json!(1), json!(0))
    );
    let v = with(&honour).assert_ok();
    assert_eq!(v["decision"], "PASSED");
    assert_eq!(v["suppressed"], 1, "still reported");

    // The same finding, UNTRIAGED and ACTIVE: blocks by default, passes when allowed.
    let text = std::fs::read_to_string(fixture("findings/multi-platform.json"))
        .expect("fixture")
        .replace("\"SUPPRESSED\"", "\"ACTIVE\"")
        .replace("\"severity\": \"CRITICAL\"", "\"severity\": \"UNTRIAGED\"");
    let untriaged = dir.path().join("untriaged.json");
    std::fs::write(&untriaged, text).expect("findings");
    let gate = |p: &str| {
        Promote::new(["--json", "gate", IMAGE])
            .arg("--findings")
            .arg(untriaged.display().to_string())
            .arg("--platform-digest")
            .arg(ARM64)
            .arg("--policy")
            .arg(p)
            .run()
    };
    let v = assert_denied(&gate(&critical_only));
    assert_eq!(ids(&v, "blockingIds"), ["CVE-2024-2961"]);
    assert_eq!(v["counts"]["UNTRIAGED"], 1, "{v:#}");
    let lax = policy(
        "lax.yaml",
        "block_severities: [CRITICAL]\nblock_untriaged: false\n",
    );
    assert_eq!(gate(&lax).assert_ok()["counts"]["UNTRIAGED"], 1);
}

#[test]
fn an_allowlist_entry_lets_the_image_pass() {
    let run = gate_file(Some("policies/allow-glibc.yaml")).run();
    let v = run.assert_ok();
    assert_eq!(v["decision"], "PASSED");
    assert_eq!(ids(&v, "allowlisted"), ["CVE-2023-4911"]);
    assert_eq!(v["allowlisted"][0]["findings"], 2);
    assert_eq!(v["allowlisted"][0]["expires"], "2099-12-31");
    assert_eq!(v["blockingFindings"], 0);
}

#[test]
fn an_expired_allowlist_entry_stops_applying_and_is_reported() {
    let v = assert_denied(&gate_file(Some("policies/expired.yaml")).run());
    assert_eq!(ids(&v, "blockingIds"), ["CVE-2023-4911"]);
    assert_eq!(ids(&v, "expiredAllowlist"), ["CVE-2023-4911"]);
    assert_eq!(v["expiredAllowlist"][0]["expires"], "2020-01-01");
    assert_eq!(v["allowlisted"].as_array().map(Vec::len), Some(0));
}

#[test]
fn environment_overrides_make_prod_stricter() {
    let dev = gate_file(Some("policies/prod-strict.json")).run();
    assert_eq!(dev.assert_ok()["decision"], "PASSED");
    let prod = gate_file(Some("policies/prod-strict.json"))
        .arg("--environment")
        .arg("prod")
        .run();
    let v = assert_denied(&prod);
    assert_eq!(ids(&v, "blockingIds"), ["CVE-2024-6119"]);
    assert_eq!(v["environment"], "prod");
}

#[test]
fn findings_of_other_images_never_count() {
    let clean = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let run = Promote::new(["--json", "gate", IMAGE])
        .arg("--findings")
        .arg(fixture("findings/multi-platform.json"))
        .arg("--platform-digest")
        .arg(clean)
        .run();
    let v = run.assert_ok();
    assert_eq!(v["counts"]["CRITICAL"], 0);
    assert_eq!(v["platforms"][0]["findings"], 0);
    // The same file does deny the image the CRITICAL finding belongs to.
    let run = Promote::new(["--json", "gate", IMAGE])
        .arg("--findings")
        .arg(fixture("findings/multi-platform.json"))
        .arg("--platform-digest")
        .arg(OTHER)
        .run();
    assert_eq!(ids(&assert_denied(&run), "blockingIds"), ["CVE-2021-44228"]);
}

#[test]
fn policy_errors_name_the_key() {
    assert_error(
        &gate_file(Some("policies/unknown-key.yaml")).run(),
        "Policy.Invalid",
        "block_severity",
    );
    assert_error(
        &gate_file(Some("policies/missing-reason.yaml")).run(),
        "Policy.Invalid",
        "allowlist[0].reason",
    );
}

#[test]
fn findings_files_of_another_shape_are_rejected() {
    let run = Promote::new(["--json", "gate", IMAGE])
        .arg("--findings")
        .arg(fixture("findings/not-inspector.json"))
        .arg("--platform-digest")
        .arg(AMD64)
        .run();
    assert_error(&run, "Findings.Invalid", "findings");
    let run = Promote::new(["--json", "gate", IMAGE])
        .arg("--findings")
        .arg(fixture("findings/unknown-severity.json"))
        .arg("--platform-digest")
        .arg(AMD64)
        .run();
    assert_error(&run, "Findings.Invalid", "SEVERE");
}

/// The multi-platform fixture with its platform digests replaced by `amd64` and `arm64`.
fn findings_for(amd64: &str, arm64: &str) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(fixture("findings/multi-platform.json"))
        .expect("read fixture")
        .replace(AMD64, amd64)
        .replace(ARM64, arm64);
    let file = tempfile::NamedTempFile::new().expect("temp findings file");
    std::fs::write(file.path(), text).expect("write findings");
    file
}

#[test]
fn gate_resolves_every_platform_of_an_index_through_the_registry() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let index = push_index(
        &c,
        "quarantine/app",
        "1.4.2",
        Format::Oci,
        &["linux/amd64", "linux/arm64"],
        &[512],
    );
    let amd64 = &index.child("linux/amd64").digest;
    let arm64 = &index.child("linux/arm64").digest;
    let file = findings_for(amd64, arm64);
    let run = Promote::new(["--json", "--insecure-registry", &reg.host(), "gate"])
        .arg(format!("{}/quarantine/app:1.4.2", reg.host()))
        .arg("--findings")
        .arg(file.path().display().to_string())
        .run();
    let v = assert_denied(&run);
    let platforms: Vec<(&str, &str)> = v["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap(),
                p["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux/amd64", amd64.as_str()),
            ("linux/arm64", arm64.as_str())
        ]
    );
    // A single-platform image is its own only platform.
    let single = push_image(
        &c,
        "quarantine/app",
        Some("single"),
        Format::Oci,
        "linux/amd64",
        &[256],
    );
    let file = findings_for(&single.digest, arm64);
    let run = Promote::new(["--json", "--insecure-registry", &reg.host(), "gate"])
        .arg(format!("{}/quarantine/app:single", reg.host()))
        .arg("--findings")
        .arg(file.path().display().to_string())
        .run();
    let v = assert_denied(&run);
    assert_eq!(v["platforms"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["platforms"][0]["digest"], single.digest.as_str());
}

/// Issue 12's hole: an index entry with a real platform that wears BuildKit's attestation
/// annotation is an image, gated like the others; its CRITICAL finding denies the image (exit
/// 3), naming the entry's platform and digest and the CVE.
#[test]
fn an_index_entry_in_attestation_disguise_is_gated_and_denied() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let index = push_disguised_index(&c, "quarantine/app", "6.6.6");
    let amd64 = &index.child("linux/amd64").digest;
    let arm64 = &index.child("linux/arm64").digest;
    // CVE-2023-4911 (HIGH) on both platforms in the fixture; the disguised amd64 entry must be
    // among the blocking platforms.
    let file = findings_for(amd64, arm64);
    let image = format!("{}/quarantine/app:6.6.6", reg.host());
    let run = Promote::new(["--json", "--insecure-registry", &reg.host(), "gate"])
        .arg(&image)
        .arg("--findings")
        .arg(file.path().display().to_string())
        .run();
    let v = assert_denied(&run);
    assert!(
        ids(&v, "blockingIds").contains(&"CVE-2023-4911".to_owned()),
        "{v:#}"
    );
    let amd = v["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .find(|p| p["digest"] == amd64.as_str())
        .unwrap_or_else(|| panic!("the disguised entry was not gated: {v:#}"));
    assert_eq!(amd["platform"], "linux/amd64");
    assert_eq!(amd["blocking"], 1, "{v:#}");
    // The table names the entry and the CVE.
    let run = Promote::new(["--insecure-registry", &reg.host(), "gate"])
        .arg(&image)
        .arg("--findings")
        .arg(file.path().display().to_string())
        .run();
    assert_eq!(run.code, 3, "{}", run.describe());
    for needle in ["linux/amd64", amd64.as_str(), "CVE-2023-4911"] {
        assert!(run.stdout.contains(needle), "{needle}\n{}", run.describe());
    }
}

/// An entry that claims to be an attestation (`unknown/unknown`) but is not provably one is
/// refused, naming the entry, before any finding is read.
#[test]
fn an_unprovable_attestation_is_refused_naming_the_entry() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let img = push_image(
        &c,
        "quarantine/app",
        None,
        Format::Oci,
        "linux/amd64",
        &[512],
    );
    let fake = push_image(
        &c,
        "quarantine/app",
        None,
        Format::Oci,
        "linux/arm64",
        &[512],
    );
    let mut entry = img.descriptor();
    entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let mut att = fake.descriptor();
    att["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    att["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": img.digest});
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry, att]});
    c.push_manifest(
        "quarantine/app",
        "odd",
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).expect("index"),
    );
    let file = findings_for(&img.digest, &fake.digest);
    let run = Promote::new(["--insecure-registry", &reg.host(), "gate"])
        .arg(format!("{}/quarantine/app:odd", reg.host()))
        .arg("--findings")
        .arg(file.path().display().to_string())
        .run();
    assert_error(
        &run,
        "Image.Invalid",
        &format!("index entry 1 ({}", fake.digest),
    );
    assert!(
        run.error_line().contains("has a layer of type"),
        "{}",
        run.describe()
    );
}

/// A fixture finding rewritten for the API wire format (epoch-second timestamps), about
/// `digest`.
fn wire_finding(index: usize, digest: &str) -> Value {
    let text = std::fs::read_to_string(fixture("findings/multi-platform.json")).expect("fixture");
    let mut f: Value =
        serde_json::from_str::<Value>(&text).expect("fixture JSON")["findings"][index].clone();
    let arn = format!(
        "{}-{}",
        f["findingArn"].as_str().expect("findingArn"),
        &digest[7..19]
    );
    f["findingArn"] = arn.into();
    for k in ["firstObservedAt", "lastObservedAt", "updatedAt"] {
        f[k] = 1_725_468_938.411.into();
    }
    f["packageVulnerabilityDetails"]["vendorCreatedAt"] = 1_725_468_938.0.into();
    let image = &mut f["resources"][0]["details"]["awsEcrContainerImage"];
    image["imageHash"] = digest.into();
    image["pushedAt"] = 1_725_468_928.0.into();
    f
}

fn moto_gate(reg: &TestRegistry, moto: &Moto, reference: &str, policy: &str) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(&policy_path, policy).expect("write policy");
    Promote::new(["--json", "--insecure-registry", &reg.host()])
        .arg("--aws-region")
        .arg(REGION)
        .arg("--aws-endpoint-url")
        .arg(moto.url())
        .arg("gate")
        .arg(format!("{}/{reference}", reg.host()))
        .arg("--policy")
        .arg(policy_path.display().to_string())
        .arg("--assume-scanned")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "AWS_CONFIG_FILE",
            dir.path().join("none").display().to_string(),
        )
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("none").display().to_string(),
        )
        .run()
}

#[test]
fn inspector_findings_from_moto_gate_the_image_after_they_settle() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    let image = push_image(
        &c,
        "quarantine/app",
        Some("1.4.2"),
        Format::Oci,
        "linux/amd64",
        &[256],
    );
    let moto = Moto::start();
    // moto ignores filters: the ACTIVE query also gets another image's CRITICAL finding, which
    // the gate must drop. The second distinct query (SUPPRESSED) gets the second list.
    moto.seed_inspector_findings(&[
        vec![
            wire_finding(0, &image.digest), // HIGH CVE-2023-4911
            wire_finding(1, &image.digest), // MEDIUM CVE-2024-6119
            wire_finding(7, OTHER),         // CRITICAL log4shell, another image
        ],
        vec![wire_finding(6, &image.digest)], // SUPPRESSED CRITICAL
    ]);
    let denied = moto_gate(
        &reg,
        &moto,
        "quarantine/app:1.4.2",
        "settle_seconds: 1\nmax_wait_seconds: 60\n",
    );
    let v = assert_denied(&denied);
    // The suppressed CRITICAL blocks too (suppressions are not honoured by default).
    assert_eq!(
        ids(&v, "blockingIds"),
        ["CVE-2024-2961", "CVE-2023-4911"],
        "{}",
        moto.log()
    );
    assert_eq!(v["counts"]["CRITICAL"], 0);
    assert_eq!(v["counts"]["MEDIUM"], 1);
    assert_eq!(v["suppressed"], 1);

    // moto keeps answering each query the same way, so the findings settle: PASSED needs two
    // reads at least settle_seconds apart.
    let passed = moto_gate(
        &reg,
        &moto,
        "quarantine/app:1.4.2",
        "settle_seconds: 1\nmax_wait_seconds: 60\nhonour_suppressions: true\nallowlist:\n  - {id: CVE-2023-4911, reason: test}\n",
    );
    let v = passed.assert_ok();
    assert_eq!(v["decision"], "PASSED");
    assert_eq!(v["suppressed"], 1, "{v:#}");
    assert_eq!(ids(&v, "allowlisted"), ["CVE-2023-4911"]);
    assert!(
        passed.duration >= Duration::from_secs(1),
        "settling takes at least one interval: {:?}",
        passed.duration
    );

    // Findings that cannot settle within the maximum wait: one error line, exit 1, no verdict.
    let timeout = moto_gate(
        &reg,
        &moto,
        "quarantine/app:1.4.2",
        "settle_seconds: 30\nmax_wait_seconds: 1\nhonour_suppressions: true\nallowlist:\n  - {id: CVE-2023-4911, reason: test}\n",
    );
    timeout.assert_failed("Gate.Timeout");
    assert!(
        timeout.error_line().contains("settle"),
        "{}",
        timeout.describe()
    );
}

#[test]
fn without_list_coverage_the_gate_errors_and_never_passes() {
    let reg = TestRegistry::start();
    let c = RegistryClient::new(&reg);
    push_image(
        &c,
        "quarantine/app",
        Some("1.4.2"),
        Format::Oci,
        "linux/amd64",
        &[256],
    );
    let moto = Moto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    // Real gating asks ListCoverage first; moto has none, so the answer is an error (exit 1).
    let run = Promote::new(["--json", "--insecure-registry", &reg.host()])
        .arg("--aws-region")
        .arg(REGION)
        .arg("--aws-endpoint-url")
        .arg(moto.url())
        .arg("gate")
        .arg(format!("{}/quarantine/app:1.4.2", reg.host()))
        .arg("--max-wait")
        .arg("0")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "AWS_CONFIG_FILE",
            dir.path().join("none").display().to_string(),
        )
        .run();
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.error_line().contains("ListCoverage"),
        "{}",
        run.describe()
    );
    assert!(!run.stdout.contains("PASSED"), "{}", run.describe());
}
