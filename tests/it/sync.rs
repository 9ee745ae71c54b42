//! `promote sync`: the tags an upstream repository has and the trusted repository lacks are
//! promoted, each as `promote run` would, against a real registry (docker-registry) with a local
//! cosign key and a findings file standing in for KMS and Inspector.

use crate::support::cli::{Promote, Run};
use crate::support::images::{Format, RegistryClient, push_index};
use crate::support::registry::TestRegistry;
use crate::support::sigstore::generate_key;
use serde_json::{Value, json};
use std::path::Path;

const PASSWORD: &str = "sync-test-password";

/// A findings file: `critical` platform digests each get one CRITICAL finding.
fn findings(dir: &Path, critical: &[&str]) -> String {
    let list: Vec<Value> = critical
        .iter()
        .map(|digest| {
            json!({
                "awsAccountId": "123456789012",
                "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{digest}"),
                "severity": "CRITICAL", "status": "ACTIVE", "type": "PACKAGE_VULNERABILITY",
                "fixAvailable": "YES",
                "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-4000", "source": "NVD",
                    "vulnerablePackages": [{"name": "openssl", "version": "3.0.1"}]},
                "resources": [{"id": "x", "type": "AWS_ECR_CONTAINER_IMAGE", "details": {
                    "awsEcrContainerImage": {"imageHash": digest, "repositoryName": "q/app"}}}]
            })
        })
        .collect();
    let p = dir.join(format!("findings-{}.json", critical.len()));
    std::fs::write(&p, json!({"findings": list}).to_string()).expect("findings");
    p.display().to_string()
}

struct Upstream {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    key: String,
}

impl Upstream {
    /// A registry whose `upstream/app` has `tags`, each a different one-platform image.
    fn with_tags(tags: &[&str]) -> (Upstream, Vec<String>) {
        let reg = TestRegistry::start();
        let c = RegistryClient::new(&reg);
        let platforms: Vec<String> = tags
            .iter()
            .map(|t| {
                push_index(&c, "upstream/app", t, Format::Oci, &["linux/amd64"], &[512])
                    .child("linux/amd64")
                    .digest
                    .clone()
            })
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, _) = generate_key(dir.path(), "pipeline", PASSWORD);
        let key = private.display().to_string();
        (Upstream { reg, dir, key }, platforms)
    }

    /// `promote [--json] sync <registry>/upstream/app` into `q/app` and `t/app`, with `extra`.
    fn sync(&self, json: bool, findings: &str, extra: &[&str]) -> Run {
        self.sync_with_key(Some(&self.key), json, findings, extra)
    }

    /// As [`Self::sync`], signing with `key` (none: no `--key`).
    fn sync_with_key(&self, key: Option<&str>, json: bool, findings: &str, extra: &[&str]) -> Run {
        let host = self.reg.host();
        let mut p = Promote::default().arg("--insecure-registry").arg(&host);
        if json {
            p = p.arg("--json");
        }
        p = p
            .arg("sync")
            .arg(format!("{host}/upstream/app"))
            .arg("--quarantine")
            .arg(format!("{host}/q/app"))
            .arg("--trusted")
            .arg(format!("{host}/t/app"))
            .arg("--findings")
            .arg(findings)
            .env("COSIGN_PASSWORD", PASSWORD);
        if let Some(k) = key {
            p = p.arg("--key").arg(k);
        }
        for e in extra {
            p = p.arg(*e);
        }
        p.run()
    }

    fn trusted_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = RegistryClient::new(&self.reg)
            .list_tags("t/app")
            .into_iter()
            .filter(|t| t.starts_with("dev-"))
            .collect();
        tags.sort();
        tags
    }
}

fn items_with(report: &Value, key: &str, value: &str) -> Vec<String> {
    let mut tags: Vec<String> = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i[key] == value)
        .filter_map(|i| i["tag"].as_str().map(str::to_owned))
        .collect();
    tags.sort();
    tags
}

#[test]
fn sync_promotes_exactly_the_missing_tags_and_a_rerun_promotes_none() {
    // 12 versions, plus `latest` and `nightly`, which the filter leaves out.
    let versions: Vec<String> = (0..12).map(|i| format!("1.{i}.0")).collect();
    let mut all: Vec<&str> = versions.iter().map(String::as_str).collect();
    all.extend(["latest", "nightly"]);
    let (up, _) = Upstream::with_tags(&all);
    let clean = findings(up.dir.path(), &[]);

    // 4 of them promoted first: the newest 4.
    let first = up.sync(true, &clean, &["--semver", ">=1", "--newest", "4"]);
    let report = first.assert_ok();
    assert_eq!(report["promoted"], 4, "{}", first.describe());
    assert_eq!(
        up.trusted_tags(),
        ["dev-1.10.0", "dev-1.11.0", "dev-1.8.0", "dev-1.9.0"]
    );

    // The plan: 8 to promote, 4 present; nothing written, and no key needed.
    let plan = up
        .sync_with_key(None, true, &clean, &["--semver", ">=1", "--dry-run"])
        .assert_ok();
    assert_eq!(items_with(&plan, "plan", "promote").len(), 8, "{plan:#}");
    assert_eq!(items_with(&plan, "plan", "present").len(), 4, "{plan:#}");
    assert_eq!(up.trusted_tags().len(), 4);

    // Then exactly the other 8, not latest or nightly.
    let second = up.sync(false, &clean, &["--semver", ">=1"]);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(
        second
            .stdout
            .contains("8 promoted, 4 already there, 0 denied, 0 failed"),
        "{}",
        second.describe()
    );
    let mut expected: Vec<String> = versions.iter().map(|v| format!("dev-{v}")).collect();
    expected.sort();
    assert_eq!(up.trusted_tags(), expected);

    // A re-run promotes nothing.
    let third = up.sync(true, &clean, &["--semver", ">=1"]);
    let report = third.assert_ok();
    assert_eq!(
        (&report["promoted"], &report["present"]),
        (&json!(0), &json!(12)),
        "{}",
        third.describe()
    );
}

#[test]
fn a_denied_tag_does_not_stop_the_others_and_a_moved_tag_is_a_conflict() {
    let (up, platforms) = Upstream::with_tags(&["2.0.0", "2.1.0", "2.2.0"]);
    let denied = findings(up.dir.path(), &[&platforms[1]]);
    let run = up.sync(true, &denied, &["--max-put-rate", "5"]);
    assert_eq!(run.code, 3, "{}", run.describe());
    // Paced: 2 promotions push 16 manifests, at most 5 a second.
    assert!(
        run.duration >= std::time::Duration::from_secs(3),
        "16 manifest PUTs at 5/s took {:?}",
        run.duration
    );
    assert!(
        run.error_line().ends_with("[Gate.Denied]"),
        "{}",
        run.describe()
    );
    // One JSON object (the report), no second error object.
    let report = run.json();
    assert_eq!(
        items_with(&report, "outcome", "PROMOTED"),
        ["2.0.0", "2.2.0"]
    );
    assert_eq!(items_with(&report, "outcome", "REJECTED"), ["2.1.0"]);
    assert_eq!(up.trusted_tags(), ["dev-2.0.0", "dev-2.2.0"]);

    // The upstream tag 2.0.0 moves to another image: its environment tag holds a promotion of
    // the old digest and never moves, so the sync reports a conflict (exit 1) and writes nothing.
    let c = RegistryClient::new(&up.reg);
    push_index(
        &c,
        "upstream/app",
        "2.0.0",
        Format::Oci,
        &["linux/amd64"],
        &[640],
    );
    let before = c.manifest("t/app", "dev-2.0.0");
    let moved = up.sync(true, &denied, &[]);
    assert_eq!(moved.code, 1, "{}", moved.describe());
    assert!(
        moved.error_line().ends_with("[Tag.Conflict]"),
        "{}",
        moved.describe()
    );
    let report = moved.json();
    assert_eq!(
        items_with(&report, "plan", "moved"),
        ["2.0.0"],
        "{report:#}"
    );
    assert_eq!(
        items_with(&report, "plan", "present"),
        ["2.2.0"],
        "{report:#}"
    );
    assert_eq!(c.manifest("t/app", "dev-2.0.0"), before);

    // Promoting needs a key (only the plan does not).
    let keyless = up.sync_with_key(None, false, &denied, &[]);
    assert_eq!(keyless.code, 2, "{}", keyless.describe());
    assert!(
        keyless.error_line().contains("--key"),
        "{}",
        keyless.describe()
    );

    // Bad filters and --build are usage errors before anything is listed.
    for extra in [
        &["--tags", "("][..],
        &["--semver", "soon"],
        &["--build", "7"],
    ] {
        let bad = up.sync(false, &denied, extra);
        assert_eq!(bad.code, 2, "{extra:?}\n{}", bad.describe());
    }
}
