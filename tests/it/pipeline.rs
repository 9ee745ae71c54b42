//! End to end: the real `statemachine/promotion.asl.json` run by aws-local-stepfunctions, every
//! Task routed to the real Lambda binary (cargo lambda watch), against docker-registry and
//! moto_server (issue "The five Lambdas and the state machine", cases a–h). Wait states and
//! retry pauses are shortened through the interpreter's overrides, never in the definition.

use crate::support::ecr_front::{FrontConfig, Throttle};
use crate::support::images::{
    Format, Pushed, RegistryClient, push_disguised_index, push_index, push_referrer,
    push_referrer_with, write_referrers_fallback,
};
use crate::support::pipeline::{
    APPROVAL_TYPE, Execution, FUNCTIONS, FlakyProxy, MANDATORY_ANNOTATION, SECRET_PREFIX, Stack,
    StackConfig, WEBHOOK_SECRET_ID,
};
use crate::support::registry::TestRegistry;
use serde_json::{Value, json};

const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];
const LAYERS: &[usize] = &[256 * 1024, 64 * 1024];
/// Application `app`'s trusted repository (`incoming/app` is promoted to `trusted/app`).
const TRUSTED: &str = "trusted/app";
/// Application `app`'s quarantine repository.
const QUARANTINE: &str = "quarantine/app";

/// One Inspector finding on `digest` in application `app`'s quarantine repository (the
/// ListFindings shape).
fn finding(app: &str, digest: &str, id: &str, severity: &str) -> Value {
    json!({
        "awsAccountId": "123456789012",
        "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}-{}", &digest[7..19]),
        "severity": severity, "status": "ACTIVE", "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": "YES", "exploitAvailable": "NO",
        // The API's wire format: epoch seconds.
        "firstObservedAt": 1_795_000_000.0, "lastObservedAt": 1_795_000_000.0,
        "packageVulnerabilityDetails": {"vulnerabilityId": id, "source": "NVD",
            "vulnerablePackages": [{"name": "openssl", "version": "3.0.13"}]},
        "resources": [{"id": "x", "type": "AWS_ECR_CONTAINER_IMAGE", "details": {
            "awsEcrContainerImage": {"imageHash": digest, "repositoryName": format!("quarantine/{app}"),
                "registry": "123456789012"}}}]
    })
}

/// The one event the template's rules matched since the last look: `rule`'s, about
/// `repository`. The ECR-faithful front put it on moto's bus when the test pushed; the tests
/// start event-driven executions with nothing else.
fn matched(stack: &Stack, rule: &str, repository: &str) -> Value {
    let (r, event) = stack.triggered_once();
    assert_eq!(r, rule, "{event:#}");
    assert_eq!(event["source"], "aws.ecr", "{event:#}");
    assert_eq!(event["detail"]["repository-name"], repository, "{event:#}");
    event
}

/// No rule matched since the last look, although the front put events for `repositories`
/// (so that "nothing started" is not "nothing was sent").
fn nothing_matched(stack: &Stack, repositories: &[&str]) {
    let matched = stack.triggered();
    assert!(matched.is_empty(), "no execution may start: {matched:#?}");
    let emitted = stack.front.emitted();
    for repo in repositories {
        assert!(
            emitted.iter().any(|e| e.detail["repository-name"] == *repo),
            "the front sent no event for {repo}: {emitted:#?}"
        );
    }
}

fn assert_succeeded(x: &Execution) {
    assert_eq!(x.status(), "SUCCEEDED", "{}", x.describe());
}

fn index_annotations(c: &RegistryClient, repo: &str, reference: &str) -> Value {
    let (bytes, _) = c.manifest(repo, reference);
    serde_json::from_slice::<Value>(&bytes).expect("index JSON")["annotations"].clone()
}

fn push_app(c: &RegistryClient, repo: &str, tag: &str) -> Pushed {
    push_index(c, repo, tag, Format::Oci, PLATFORMS, LAYERS)
}

#[test]
fn ecr_push_promotes_signs_and_tags_a_repeat_changes_nothing_and_an_approval_promotes_further() {
    let stack = Stack::start(&StackConfig::default(), &[]);
    let c = stack.client();
    let app = push_app(&c, "incoming/app", "1.4.2");
    // A MEDIUM finding does not block (the policy blocks CRITICAL and HIGH).
    stack.seed_findings(&[finding(
        "app",
        &app.child("linux/amd64").digest,
        "CVE-2026-2000",
        "MEDIUM",
    )]);

    // (a) the happy path from an ECR push event: the multi-arch push sent one event per
    // manifest (two platforms, then the tagged index) and the ingress rule matched one.
    let pushed: Vec<_> = stack
        .front
        .emitted()
        .into_iter()
        .filter(|e| e.detail["repository-name"] == "incoming/app")
        .collect();
    assert_eq!(pushed.len(), 3, "{pushed:#?}");
    let push = matched(&stack, "IngressPushRule", "incoming/app");
    assert_eq!(push["detail-type"], "ECR Image Action", "{push:#}");
    assert_eq!(push["detail"]["image-digest"], app.digest.as_str());
    assert_eq!(push["detail"]["image-tag"], "1.4.2");
    let x = stack.execute(&push, &[], &[]);
    assert_succeeded(&x);
    // What the pipeline pushed into quarantine and trusted started nothing.
    nothing_matched(&stack, &[QUARANTINE, TRUSTED]);
    // BLOB_MOUNTING on: promote-and-annotate mounted every layer from quarantine, streamed none.
    assert_eq!(
        x.state_output("PromoteAndAnnotate")["promote"]["bytesStreamed"],
        0,
        "{}",
        x.describe()
    );
    let mounts = stack.front.mounts();
    assert!(
        mounts
            .iter()
            .any(|m| m.repository == TRUSTED && m.forwarded),
        "{mounts:#?}"
    );
    let path = x.path();
    for s in [
        "Copy",
        "Gate",
        "PromoteAndAnnotate",
        "Sign",
        "Retag",
        "EmitPromoted",
        "Promoted",
    ] {
        assert!(path.iter().any(|p| p == s), "{s} not run: {path:?}");
    }
    let out = &x.0["output"];
    let trusted = out["trusted"].as_str().expect("trusted").to_owned();
    let digest = trusted.split('@').nth(1).expect("pinned").to_owned();
    assert_eq!(out["tags"], json!(["dev-1.4.2"]), "{}", x.describe());
    assert_eq!(
        c.manifest(TRUSTED, "dev-1.4.2").0,
        c.manifest(TRUSTED, &digest).0
    );
    let ann = index_annotations(&c, TRUSTED, &digest);
    assert_eq!(
        ann[MANDATORY_ANNOTATION.0], MANDATORY_ANNOTATION.1,
        "{ann:#}"
    );
    assert_eq!(ann["io.ecr-promotion.source.digest"], app.digest.as_str());
    assert!(
        ann["io.ecr-promotion.gate"]
            .as_str()
            .unwrap_or_default()
            .starts_with("PASSED"),
        "{ann:#}"
    );
    // The quarantine copy is byte-exact.
    assert_eq!(c.manifest(QUARANTINE, &app.digest).0, app.bytes);
    let verified = stack.verify(&trusted);
    assert_eq!(verified["digest"], digest.as_str());
    // Signed (KMS, DIGEST mode) in both formats, and attested: the attestation records the
    // quarantined digest and the gate the promote step ran.
    assert_eq!(
        verified["verified"],
        json!(["bundle", "legacy"]),
        "{verified:#}"
    );
    let promotion = &verified["attestation"]["predicate"]["promotion"];
    assert_eq!(
        promotion["sourceDigest"],
        app.digest.as_str(),
        "{verified:#}"
    );
    assert!(
        promotion["quarantine"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("{QUARANTINE}@{}", app.digest)),
        "{verified:#}"
    );
    assert!(
        promotion["gate"]["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("PASSED"),
        "{verified:#}"
    );
    // Bundles and the attestation are listed by the referrers API: no fallback tag is written.
    let referrers_before = c.referrers(TRUSTED, &digest);
    assert!(
        referrers_before["manifests"]
            .as_array()
            .is_some_and(|m| m.len() >= 2),
        "{referrers_before:#}"
    );
    let fallback = format!("sha256-{}", crate::support::digest_hex(&digest));
    assert!(
        !c.list_tags(TRUSTED).contains(&fallback),
        "{:?}",
        c.list_tags(TRUSTED)
    );
    let promoted = x.events("Image Promoted");
    assert_eq!(promoted.len(), 1, "{}", x.describe());
    assert_eq!(promoted[0]["Detail"]["trusted"], trusted.as_str());
    assert_eq!(promoted[0]["EventBusName"], "promotion-events");

    // (f) the same event again (EventBridge delivers at least once): no duplicate work.
    let tags_before = c.list_tags(TRUSTED);
    let again = stack.execute(&push, &[], &[]);
    assert_succeeded(&again);
    assert_eq!(
        again.state_output("Copy")["copy"]["manifestsPushed"],
        0,
        "{}",
        again.describe()
    );
    assert_eq!(
        again.state_output("PromoteAndAnnotate")["promote"]["manifestsPushed"],
        0
    );
    assert_eq!(
        again.state_output("PromoteAndAnnotate")["promote"]["trusted"],
        trusted.as_str()
    );
    assert_eq!(again.state_output("Sign")["sign"]["signaturesCreated"], 0);
    assert_eq!(
        again.state_output("Sign")["sign"]["attestationCreated"],
        false
    );
    assert_eq!(
        c.referrers(TRUSTED, &digest),
        referrers_before,
        "no referrer added by the repeat"
    );
    assert_eq!(again.state_output("Retag")["retag"]["changed"], false);
    assert_eq!(
        c.list_tags(TRUSTED),
        tags_before,
        "no new tag, signature or index"
    );

    // (e) environment promotion from a signed approval pushed to the approvals repository,
    // started by the ECR Referrer Action event of that push.
    let approval = stack.approve(&trusted, "staging", &stack.approver_key);
    let approval_digest = approval["approval"].as_str().expect("digest");
    let approval_push = matched(&stack, "ApprovalReferrerRule", APPROVALS);
    assert_eq!(approval_push["detail-type"], "ECR Referrer Action");
    assert_eq!(approval_push["detail"]["image-digest"], approval_digest);
    let env = stack.execute(&approval_push, &[], &[]);
    assert_succeeded(&env);
    // The environment tag and the approval recorded in trusted started nothing.
    nothing_matched(&stack, &[TRUSTED]);
    let path = env.path();
    assert!(path.iter().any(|p| p == "ApprovalGate"), "{path:?}");
    assert!(!path.iter().any(|p| p == "Copy" || p == "Sign"), "{path:?}");
    assert_eq!(
        env.0["output"]["tags"],
        json!(["staging-1.4.2"]),
        "{}",
        env.describe()
    );
    assert_eq!(
        c.manifest(TRUSTED, "staging-1.4.2").0,
        c.manifest(TRUSTED, &digest).0
    );
    // The verified approval now travels with the image: a referrer of the digest in trusted,
    // which `discover` verifies with the deployment's approvers.
    let recorded = stack
        .promote()
        .arg("discover")
        .arg(&trusted)
        .arg("--environments-file")
        .arg(stack.environments_file.path().display().to_string())
        .run()
        .assert_ok()
        .to_string();
    assert!(recorded.contains(APPROVAL_TYPE), "{recorded}");
    assert!(
        recorded.contains("verified: release-manager approves staging"),
        "{recorded}"
    );

    // (e') approvals that must not count: each refused with its reason, prod never tagged.
    refused_approvals_leave_the_tags_unchanged(&stack, &c, &trusted, &digest);

    // (h) the ocistow payload promotes, with its annotations (from outside the ingress
    // repositories: the push starts nothing).
    let tool = push_app(&c, "tool", "2.0");
    nothing_matched(&stack, &["tool"]);
    let x = stack.execute(
        &json!({"SrcImageRef": format!("{}/tool:2.0", stack.host()),
            "DstImageRef": format!("{}/{TRUSTED}:2.0", stack.host()),
            "Annotations": {"org.example.team": "payments"}}),
        &[],
        &[],
    );
    assert_succeeded(&x);
    let tool_trusted = x.0["output"]["trusted"].as_str().expect("trusted");
    let ann = index_annotations(
        &c,
        "trusted/tool",
        tool_trusted.split('@').nth(1).expect("digest"),
    );
    assert_eq!(ann["org.example.team"], "payments", "{ann:#}");
    assert_eq!(ann["io.ecr-promotion.source.digest"], tool.digest.as_str());
    assert_eq!(x.0["output"]["tags"], json!(["dev-2.0"]));

    // A manual environment request for a digest nobody approved: refused, nothing tagged.
    let x = stack.execute(
        &json!({"image": tool_trusted, "environment": "prod"}),
        &[],
        &[],
    );
    assert_eq!(x.error(), "Approval.Missing", "{}", x.describe());
    let err = stack
        .invoke(
            "retag-for-environment",
            &json!({"image": tool_trusted, "environment": "prod", "regate": true}),
        )
        .expect_err("no approval");
    assert_eq!(err.0, "Approval.Missing", "{err:?}");
    assert_eq!(
        c.list_tags("trusted/tool")
            .iter()
            .filter(|t| t.starts_with("prod-"))
            .count(),
        0
    );
}

#[test]
fn denied_forged_and_malformed_requests_leave_the_trusted_repository_untouched() {
    let stack = Stack::start(&StackConfig::default(), &[]);
    let c = stack.client();
    let bad = push_app(&c, "incoming/bad", "6.6.6");
    stack.seed_findings(&[finding(
        "bad",
        &bad.child("linux/amd64").digest,
        "CVE-2026-6666",
        "CRITICAL",
    )]);

    // (b) the gate denies: rejected with the reason, nothing trusted.
    let x = stack.execute(
        &matched(&stack, "IngressPushRule", "incoming/bad"),
        &[],
        &[],
    );
    assert_eq!(x.status(), "FAILED", "{}", x.describe());
    assert_eq!(x.error(), "Gate.Denied", "{}", x.describe());
    let rejected = x.events("Image Rejected");
    assert_eq!(rejected.len(), 1, "{}", x.describe());
    assert!(
        rejected[0]["Detail"]["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("CVE-2026-6666"),
        "{}",
        x.describe()
    );
    assert!(!x.path().iter().any(|p| p == "PromoteAndAnnotate"));
    assert!(
        c.list_tags("trusted/bad").is_empty(),
        "{:?}",
        c.list_tags("trusted/bad")
    );

    // (g) forged manual input claiming a passed gate: the fields are dropped and the gate runs.
    let forged = json!({"source": format!("{}/incoming/bad:6.6.6", stack.host()),
        "gate": {"decision": "PASSED"}, "decision": "PASSED",
        "quarantine": format!("{}/quarantine/bad@{}", stack.host(), bad.digest)});
    let x = stack.execute(&forged, &[], &[]);
    assert_eq!(x.error(), "Gate.Denied", "{}", x.describe());
    // Even handed straight to promote-and-annotate, the quarantined digest does not get in.
    let quarantined = format!("{}/quarantine/bad@{}", stack.host(), bad.digest);
    let err = stack
        .invoke("promote-and-annotate", &json!({"quarantine": quarantined}))
        .expect_err("denied");
    assert_eq!(err.0, "Gate.Denied", "{err:?}");
    let err = stack
        .invoke(
            "promote-and-annotate",
            &json!({"quarantine": quarantined, "verdict": "PASSED"}),
        )
        .expect_err("unknown field");
    assert_eq!(err.0, "Input.Invalid");
    assert!(err.1.contains("verdict"), "{err:?}");
    // Sign and retag act only on the trusted repository.
    for f in ["sign", "retag-for-environment"] {
        let err = stack
            .invoke(f, &json!({"image": quarantined}))
            .expect_err("refused");
        assert_eq!(err.0, "Input.Invalid", "{f}: {err:?}");
        assert!(
            err.1.contains("not in the trusted repository"),
            "{f}: {err:?}"
        );
    }
    assert!(
        c.list_tags("trusted/bad").is_empty(),
        "{:?}",
        c.list_tags("trusted/bad")
    );

    // Bad input: a clear, recorded failure.
    for (input, needle) in [
        (json!({"hello": 1}), "invalid input"),
        (json!({"source": "Not A Reference"}), "source.reference"),
        (
            json!({"detail-type": "Inspector2 Scan", "source": "aws.inspector2", "detail": {}}),
            "unsupported event",
        ),
    ] {
        let x = stack.execute(&input, &[], &[]);
        assert_eq!(x.status(), "FAILED", "{}", x.describe());
        assert_eq!(x.error(), "Input.Invalid", "{}", x.describe());
        assert!(
            x.0["cause"].as_str().unwrap_or_default().contains(needle),
            "{}",
            x.describe()
        );
    }
    assert!(FUNCTIONS.len() == 5);
}

/// What the registry holds: every repository with its tags, and whether each of `digests` is
/// in quarantine or trusted (the pipeline writes those by digest).
fn snapshot(c: &RegistryClient, digests: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for repo in c.catalog() {
        out.push(format!("{repo}: {:?}", c.list_tags(&repo)));
    }
    for d in digests {
        for repo in [QUARANTINE, TRUSTED] {
            out.push(format!("{repo}@{d}: {}", c.get_manifest(repo, d).is_some()));
        }
    }
    out
}

/// Issue 12, end to end: the image in attestation disguise is gated and denied with nothing
/// trusted; a bad build id, annotation or environment fails `Input.Invalid` before anything is
/// written anywhere; a tag that names the source's tag at another digest is refused; and the
/// trusted image and its signature name the original source, not the quarantine.
#[test]
fn what_is_gated_is_what_is_promoted_and_bad_requests_change_nothing() {
    let stack = Stack::start(&StackConfig::default(), &[]);
    let c = stack.client();

    // The disguised amd64 entry carries the CRITICAL finding.
    let disguised = push_disguised_index(&c, "incoming/disguised", "6.6.6");
    stack.seed_findings(&[finding(
        "disguised",
        &disguised.child("linux/amd64").digest,
        "CVE-2026-6601",
        "CRITICAL",
    )]);
    let x = stack.execute(
        &matched(&stack, "IngressPushRule", "incoming/disguised"),
        &[],
        &[],
    );
    assert_eq!(x.error(), "Gate.Denied", "{}", x.describe());
    assert!(
        x.0["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("CVE-2026-6601"),
        "{}",
        x.describe()
    );
    assert!(
        !x.path().iter().any(|p| p == "PromoteAndAnnotate"),
        "{:?}",
        x.path()
    );
    assert!(
        !c.catalog().iter().any(|r| r == "trusted/disguised"),
        "{:?}",
        c.catalog()
    );

    // Bad requests: refused in Copy before it writes, nothing changes anywhere.
    let app = push_app(&c, "incoming/app", "2.0.0");
    let source = format!("{}/incoming/app:2.0.0", stack.host());
    let before = snapshot(&c, &[&app.digest]);
    for (input, needle) in [
        (json!({"source": source, "build": "no spaces"}), "build"),
        (
            json!({"source": source, "annotations": {"io.ecr-promotion.gate": "PASSED"}}),
            "reserved",
        ),
        (
            json!({"source": format!("{source}@{}", disguised.digest)}),
            "pushed again since",
        ),
        (
            json!({"image": format!("{}/{TRUSTED}@{}", stack.host(), app.digest), "environment": "qa"}),
            "unknown environment",
        ),
    ] {
        let x = stack.execute(&input, &[], &[]);
        assert_eq!(x.error(), "Input.Invalid", "{input}: {}", x.describe());
        assert!(
            x.0["cause"].as_str().unwrap_or_default().contains(needle),
            "{needle}: {}",
            x.describe()
        );
        assert!(
            !x.path()
                .iter()
                .any(|p| p == "Gate" || p == "PromoteAndAnnotate")
        );
        assert_eq!(snapshot(&c, &[&app.digest]), before, "{input}");
    }

    // Provenance: the image and its signature name the original source.
    stack.seed_findings(&[]);
    let x = stack.execute(&json!({"source": source}), &[], &[]);
    assert_succeeded(&x);
    let trusted = x.0["output"]["trusted"]
        .as_str()
        .expect("trusted")
        .to_owned();
    let digest = trusted.split('@').nth(1).expect("pinned");
    let ann = index_annotations(&c, TRUSTED, digest);
    assert_eq!(
        ann["io.ecr-promotion.source.name"],
        source.as_str(),
        "{ann:#}"
    );
    assert_eq!(ann["io.ecr-promotion.source.digest"], app.digest.as_str());
    assert!(
        ann["io.ecr-promotion.policy.digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{ann:#}"
    );
    let verified = stack
        .promote()
        .arg("verify")
        .arg(&trusted)
        .arg("--key")
        .arg(format!("awskms:///{}", stack.key_id))
        .run()
        .assert_ok();
    assert_eq!(
        verified["claims"]["io.ecr-promotion.source.name"],
        source.as_str(),
        "{verified:#}"
    );
    assert!(
        !verified.to_string().contains("quarantine/"),
        "{verified:#}"
    );
}

/// One trusted repository per application: two applications that both release 2.0.0 (one
/// pushed to its ingress repository, one named in a manual request) each get `dev-2.0.0` in
/// their own trusted repository, on their own digest, without a conflict.
#[test]
fn two_applications_with_the_same_version_each_get_their_own_environment_tag() {
    let stack = Stack::start(&StackConfig::default(), &[]);
    let c = stack.client();
    stack.seed_findings(&[]);
    let a = push_app(&c, "incoming/a", "2.0.0");
    let b = push_app(&c, "upstream/b", "2.0.0");
    assert_ne!(a.digest, b.digest);
    let xa = stack.execute(&matched(&stack, "IngressPushRule", "incoming/a"), &[], &[]);
    assert_succeeded(&xa);
    let xb = stack.execute(
        &json!({"source": format!("{}/upstream/b:2.0.0", stack.host()), "application": "b"}),
        &[],
        &[],
    );
    assert_succeeded(&xb);
    for (x, app, pushed) in [(&xa, "a", &a), (&xb, "b", &b)] {
        assert_eq!(
            x.0["output"]["tags"],
            json!(["dev-2.0.0"]),
            "{}",
            x.describe()
        );
        let trusted = x.0["output"]["trusted"].as_str().expect("trusted");
        assert!(
            trusted.starts_with(&format!("{}/trusted/{app}@", stack.host())),
            "{trusted}"
        );
        let digest = trusted.split('@').nth(1).expect("pinned");
        let repo = format!("trusted/{app}");
        assert_eq!(
            c.manifest(&repo, "dev-2.0.0").0,
            c.manifest(&repo, digest).0
        );
        assert_eq!(
            c.manifest(&format!("quarantine/{app}"), &pushed.digest).0,
            pushed.bytes,
            "quarantined per application, byte-exact"
        );
    }
    assert_ne!(
        c.manifest("trusted/a", "dev-2.0.0").0,
        c.manifest("trusted/b", "dev-2.0.0").0
    );
    // A malformed application name is refused before anything is written.
    let x = stack.execute(
        &json!({"source": format!("{}/upstream/b:2.0.0", stack.host()), "application": "../a"}),
        &[],
        &[],
    );
    assert_eq!(x.error(), "Input.Invalid", "{}", x.describe());
    assert!(
        x.0["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("application")
    );
}

#[test]
fn a_pending_scan_waits_in_the_loop_and_then_passes_and_an_unsupported_image_is_refused() {
    // (c) Inspector's coverage says PENDING_INITIAL_SCAN for 2 s after the quarantine push, then
    // SUCCESSFUL; findings count only once 2 s have passed since that scan (settle_seconds).
    // The function asks the state machine to wait 5 s between polls, which the test shortens
    // to 0.4 s: the Wait loop runs until both have passed.
    let config = StackConfig {
        policy: "block_severities: [CRITICAL]\nsettle_seconds: 2\n".into(),
        poll_seconds: 5,
        max_wait_seconds: 600,
        scan_pending: std::time::Duration::from_secs(2),
        ..StackConfig::default()
    };
    let stack = Stack::start(&config, &[]);
    let c = stack.client();
    let app = push_app(&c, "incoming/slow", "3.1");
    stack.seed_findings(&[]);
    let x = stack.execute(
        &matched(&stack, "IngressPushRule", "incoming/slow"),
        &[("GateWait", 400)],
        &[],
    );
    assert_succeeded(&x);
    let waits = x.path().iter().filter(|p| *p == "GateWait").count();
    assert!(waits >= 2, "the Wait loop ran: {:?}", x.path());
    let polls = x.state_output("Gate")["gate"]["polls"]
        .as_u64()
        .expect("polls");
    assert_eq!(polls as usize, waits + 1, "{}", x.describe());
    assert_eq!(x.0["output"]["tags"], json!(["dev-3.1"]));
    assert_eq!(
        c.manifest("quarantine/slow", &app.digest).0,
        app.bytes,
        "byte-exact quarantine"
    );
    // Every platform was seen pending, then scanned, through ListCoverage.
    let answers = stack.inspector.answers();
    for child in app.children.iter().map(|(_, c)| &c.digest) {
        let reasons: Vec<&str> = answers
            .iter()
            .filter(|(id, _)| id.ends_with(&format!("repository/quarantine/slow/{child}")))
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(
            reasons.first(),
            Some(&"PENDING_INITIAL_SCAN"),
            "{answers:#?}"
        );
        assert!(reasons.contains(&"SUCCESSFUL"), "{answers:#?}");
    }

    // An image Inspector will not scan (an unsupported operating system) fails closed.
    stack
        .inspector
        .configure(|c| c.unsupported_prefixes = vec!["quarantine/legacy".into()]);
    push_app(&c, "incoming/legacy", "1.0");
    let x = stack.execute(
        &matched(&stack, "IngressPushRule", "incoming/legacy"),
        &[("GateWait", 400)],
        &[],
    );
    assert_eq!(x.status(), "FAILED", "{}", x.describe());
    assert_eq!(x.error(), "Gate.Denied", "{}", x.describe());
    assert!(
        x.0["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("UNSUPPORTED_OS"),
        "{}",
        x.describe()
    );
    assert!(c.list_tags("trusted/legacy").is_empty());
}

/// ECR without `BLOB_MOUNTING` (the account setting off) and PutImage throttled harder than
/// ECR's 10 per second: a four-platform image pushed to ingress is still promoted and signed,
/// promote-and-annotate streaming its layers (every mount refused with an upload session) and
/// the functions absorbing the 429s.
#[test]
fn without_blob_mounting_and_under_throttling_a_four_platform_image_is_promoted() {
    let config = StackConfig {
        front: FrontConfig {
            blob_mounting: false,
            put_image_throttle: Some(Throttle {
                per_second: 2.0,
                burst: 2,
                retry_after: None,
            }),
            ..FrontConfig::ecr()
        },
        ..StackConfig::default()
    };
    let stack = Stack::start(&config, &[]);
    let c = stack.client();
    stack.seed_findings(&[]);
    let four = ["linux/amd64", "linux/arm64", "linux/s390x", "linux/ppc64le"];
    push_index(&c, "incoming/four", "4.0", Format::Oci, &four, LAYERS);
    let before = stack.front.throttled();
    let x = stack.execute(
        &matched(&stack, "IngressPushRule", "incoming/four"),
        &[],
        &[],
    );
    assert_succeeded(&x);
    let absorbed = stack.front.throttled() - before;
    println!("the promotion of a 4-platform image absorbed {absorbed} PutImage 429s");
    assert!(absorbed > 0, "throttling at 2/s must have answered 429");
    let streamed = x.state_output("PromoteAndAnnotate")["promote"]["bytesStreamed"]
        .as_u64()
        .expect("bytesStreamed");
    let layers = (four.len() * LAYERS.iter().sum::<usize>()) as u64;
    assert!(
        streamed >= layers,
        "streamed {streamed} of {layers} layer bytes"
    );
    let mounts = stack.front.mounts();
    assert!(
        !mounts.is_empty() && mounts.iter().all(|m| !m.forwarded),
        "{mounts:#?}"
    );
    let trusted = x.0["output"]["trusted"].as_str().expect("trusted");
    let verified = stack.verify(trusted);
    assert_eq!(
        verified["verified"],
        json!(["bundle", "legacy"]),
        "{verified:#}"
    );
    nothing_matched(&stack, &["quarantine/four", "trusted/four"]);
}

#[test]
fn a_transient_registry_failure_is_retried_by_the_state_machine() {
    // (d) The source registry answers 503 to the first connections: the function's own retries
    // give up (Registry.Transient), the state machine's Retry runs Copy again, and it succeeds.
    // The proxy is a hand-written fault injector: no local registry fails on demand.
    let upstream = TestRegistry::start();
    let uc = RegistryClient::new(&upstream);
    let app = push_app(&uc, "library/app", "5.0");
    // The functions try each request 6 times (5 retries with full jitter, within a 25 s
    // budget); 12 failures outlast the first Copy attempt whatever request they hit.
    let proxy = FlakyProxy::start(upstream.host(), 12);
    let stack = Stack::start(&StackConfig::default(), std::slice::from_ref(&proxy.host));
    stack.seed_findings(&[]);
    // A source the deployment does not list (SOURCE_REGISTRIES names the proxy only) is refused
    // before anything is fetched, fast and not retried.
    let started = std::time::Instant::now();
    let err = stack
        .invoke(
            "copy-to-quarantine",
            &json!({"reference": "127.0.0.1:9001/x:1"}),
        )
        .expect_err("not an allowed source");
    assert_eq!(err.0, "Input.Invalid", "{err:?}\n{}", stack.watch_log());
    assert!(
        err.1.contains("127.0.0.1:9001") && err.1.contains("SOURCE_REGISTRIES"),
        "{err:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(proxy.failed.load(std::sync::atomic::Ordering::SeqCst), 0);
    let x = stack.execute(
        &json!({"source": format!("{}/library/app:5.0", proxy.host)}),
        &[],
        &[("Copy", 0)],
    );
    assert_succeeded(&x);
    assert!(x.retries("Copy") >= 1, "Copy was retried: {}", x.describe());
    assert_eq!(proxy.failed.load(std::sync::atomic::Ordering::SeqCst), 12);
    let c = stack.client();
    assert_eq!(
        c.manifest("quarantine/library/app", &app.digest).0,
        app.bytes
    );
    assert_eq!(x.0["output"]["tags"], json!(["dev-5.0"]));
}

/// A private source (basic auth, as GHCR, Quay or Docker Hub accounts are) whose credentials
/// exist only in Secrets Manager, in the pull-through cache shape: without the secret the copy
/// is refused naming the host and where credentials come from; with it the image is promoted;
/// the token is in no log, no state and no event.
#[test]
fn a_private_source_is_read_with_its_credentials_from_secrets_manager() {
    const TOKEN: &str = "ghp-only-in-secrets-manager-5f1c0e";
    let upstream = TestRegistry::start_with_basic_auth("robot", TOKEN);
    let app = push_app(&RegistryClient::new(&upstream), "private/app", "1.0");
    let stack = Stack::start(
        &StackConfig::default(),
        std::slice::from_ref(&upstream.host()),
    );
    stack.seed_findings(&[]);
    let request = json!({"source": format!("{}/private/app:1.0", upstream.host())});

    let refused = stack.execute(&request, &[], &[]);
    assert_eq!(refused.status(), "FAILED", "{}", refused.describe());
    assert_eq!(
        refused.error(),
        "Registry.Unauthorized",
        "{}",
        refused.describe()
    );
    let cause = refused.0["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(&upstream.host()) && cause.contains("SOURCE_CREDENTIALS_SECRET_PREFIX"),
        "{cause}"
    );

    let secret = format!("{SECRET_PREFIX}{}", upstream.host().replace(':', "_"));
    stack.moto.secretsmanager(
        "CreateSecret",
        json!({"Name": secret,
            "SecretString": json!({"username": "robot", "accessToken": TOKEN}).to_string()}),
    );
    let x = stack.execute(&request, &[], &[]);
    assert_succeeded(&x);
    let c = stack.client();
    assert_eq!(
        c.manifest("quarantine/private/app", &app.digest).0,
        app.bytes
    );
    assert_eq!(
        x.0["output"]["tags"],
        json!(["dev-1.0"]),
        "{}",
        x.describe()
    );

    for (what, text) in [
        ("the functions' logs", stack.watch_log()),
        ("the refused execution", refused.describe()),
        ("the execution", x.describe()),
    ] {
        assert!(!text.contains(TOKEN), "the token is in {what}");
    }
}

/// HMAC-SHA256 (RFC 2104) as GitHub signs deliveries (`sha256=<hex>`), written out here so that
/// the webhook's own code is not its oracle.
fn github_signature(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    format!("sha256={}", hex::encode(outer))
}

/// A function URL invocation as Lambda hands it over: GitHub's headers and body.
fn webhook_delivery(event: &str, body: &str, signature: Option<&str>) -> Value {
    let mut headers = json!({"content-type": "application/json", "x-github-event": event,
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "user-agent": "GitHub-Hookshot/044aadd"});
    if let Some(s) = signature {
        headers["x-hub-signature-256"] = json!(s);
    }
    json!({
        "version": "2.0", "rawPath": "/", "rawQueryString": "", "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "webhook",
            "domainName": "webhook.lambda-url.us-east-1.on.aws", "domainPrefix": "webhook",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                "sourceIp": "192.30.252.1", "userAgent": "GitHub-Hookshot/044aadd"},
            "requestId": "7c4d7a6e", "routeKey": "$default", "stage": "$default",
            "time": "05/Dec/2026:13:30:00 +0000", "timeEpoch": 1_796_477_400_000_i64},
        "body": body, "isBase64Encoded": false
    })
}

/// GitHub package webhooks end to end: the real github-webhook binary (cargo lambda watch)
/// with its secret in moto's Secrets Manager puts its requests on the pipeline's bus in moto's
/// EventBridge, where the template's PromotionRequestedRule pattern routes them to a queue; the
/// one event it delivers is run through the real state machine. A delivery with a bad
/// signature, a replayed body with another signature and a ping put nothing there.
#[test]
fn a_signed_package_publication_starts_exactly_one_promotion() {
    const SECRET: &str = "gh-webhook-secret-3d1f";
    let upstream = TestRegistry::start();
    let app = push_app(&RegistryClient::new(&upstream), "acme/app", "1.0");
    let config = StackConfig {
        webhook_registry: upstream.host(),
        ..StackConfig::default()
    };
    let stack = Stack::start(&config, std::slice::from_ref(&upstream.host()));
    stack.seed_findings(&[]);
    let moto = &stack.moto;
    moto.secretsmanager(
        "CreateSecret",
        json!({"Name": WEBHOOK_SECRET_ID, "SecretString": SECRET}),
    );
    let published = |tag: &str| {
        json!({"action": "published", "registry_package": {
            "name": "app", "namespace": "acme", "package_type": "CONTAINER",
            "owner": {"login": "acme"},
            "package_version": {"version": app.digest,
                "container_metadata": {"tag": {"name": tag, "digest": app.digest}}}}})
        .to_string()
    };
    let body = published("1.0");
    let other = published("9.9");
    let ping = r#"{"zen": "Half measures are as bad as nothing at all."}"#;
    let status = |delivery: Value| {
        stack
            .invoke("github-webhook", &delivery)
            .unwrap_or_else(|e| {
                panic!(
                    "github-webhook failed: {e:?}
{}",
                    stack.watch_log()
                )
            })["statusCode"]
            .as_i64()
    };
    let sign = |b: &str| github_signature(SECRET.as_bytes(), b.as_bytes());
    let cases = [
        (
            "signed",
            webhook_delivery("registry_package", &body, Some(&sign(&body))),
            202,
        ),
        (
            "another secret",
            webhook_delivery(
                "registry_package",
                &body,
                Some(&github_signature(b"guessed", body.as_bytes())),
            ),
            401,
        ),
        (
            "a replayed body with another delivery's signature",
            webhook_delivery("registry_package", &body, Some(&sign(&other))),
            401,
        ),
        (
            "unsigned",
            webhook_delivery("registry_package", &body, None),
            401,
        ),
        (
            "a ping",
            webhook_delivery("ping", ping, Some(&sign(ping))),
            204,
        ),
    ];
    for (what, delivery, expected) in cases {
        assert_eq!(
            status(delivery),
            Some(expected),
            "{what}
{}",
            stack.watch_log()
        );
    }

    // The stack routes the template's PromotionRequestedRule (on the pipeline's own bus).
    let (rule, event) = stack.triggered_once();
    assert_eq!(rule, "PromotionRequestedRule", "{event:#}");
    assert_eq!(event["source"], "ecr-promotion", "{event:#}");
    let source = format!("{}/acme/app:1.0@{}", upstream.host(), app.digest);
    assert_eq!(event["detail"], json!({"source": source}), "{event:#}");
    assert!(
        !stack.watch_log().contains(SECRET),
        "the secret is in the functions' logs"
    );

    // That event, as the rule hands it to the state machine, promotes the published image.
    let x = stack.execute(&event, &[], &[]);
    assert_succeeded(&x);
    assert_eq!(
        x.0["output"]["tags"],
        json!(["dev-1.0"]),
        "{}",
        x.describe()
    );
    let c = stack.client();
    assert_eq!(c.manifest("quarantine/acme/app", &app.digest).0, app.bytes);
}

/// A manual request with `preserveDigest`: the trusted digest is the upstream one, the upstream
/// SBOM comes along (quarantine, then trusted), and the pipeline's signatures (KMS, DIGEST) and
/// attestation carry the mandatory annotation as a claim instead of the image.
#[test]
fn a_manual_request_preserving_the_digest_keeps_it_and_its_referrers_and_is_signed_and_attested() {
    let stack = Stack::start(&StackConfig::default(), &[]);
    let c = stack.client();
    stack.seed_findings(&[]);
    let app = push_app(&c, "upstream/keep", "3.1.0");
    let sbom = push_referrer(
        &c,
        "upstream/keep",
        &app,
        "application/spdx+json",
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3"}"#,
    );
    write_referrers_fallback(&c, "upstream/keep", &app, &[&sbom]);
    let x = stack.execute(
        &json!({"source": format!("{}/upstream/keep:3.1.0", stack.host()),
            "application": "keep", "preserveDigest": true}),
        &[],
        &[],
    );
    assert_succeeded(&x);
    let trusted = format!("{}/trusted/keep@{}", stack.host(), app.digest);
    assert_eq!(
        x.0["output"]["trusted"],
        trusted.as_str(),
        "{}",
        x.describe()
    );
    assert_eq!(c.manifest("trusted/keep", &app.digest).0, app.bytes);
    assert_eq!(c.manifest("trusted/keep", "dev-3.1.0").0, app.bytes);
    assert_eq!(c.manifest("quarantine/keep", &sbom.digest).0, sbom.bytes);
    assert_eq!(c.manifest("trusted/keep", &sbom.digest).0, sbom.bytes);

    let verified = stack.verify(&trusted);
    assert_eq!(
        verified["claims"][MANDATORY_ANNOTATION.0], MANDATORY_ANNOTATION.1,
        "{verified:#}"
    );
    assert_eq!(
        verified["attestation"]["predicate"]["promotion"]["sourceDigest"],
        app.digest.as_str()
    );
}

/// Application `app`'s approvals repository.
const APPROVALS: &str = "approvals/app";

/// `trusted` (pinned `digest`, in staging) is offered for prod by approvals that must not count:
/// unsigned, signed by a key that is no approver's, and the approver's statement about another
/// digest re-wrapped as a referrer of this one; then a manual prod request and a direct retag
/// with no approval. Each is refused with its own reason and no prod tag appears.
fn refused_approvals_leave_the_tags_unchanged(
    stack: &Stack,
    c: &RegistryClient,
    trusted: &str,
    digest: &str,
) {
    let tags_before = c.list_tags(TRUSTED);
    let (bytes, media_type) = c.manifest(TRUSTED, digest);
    let subject = Pushed {
        digest: digest.to_owned(),
        media_type,
        bytes,
        blobs: Vec::new(),
        children: Vec::new(),
        artifact_type: None,
    };
    let index: Value = serde_json::from_slice(&subject.bytes).expect("index");
    let child = index["manifests"][0]["digest"]
        .as_str()
        .expect("child")
        .to_owned();
    let stranger = format!(
        "awskms:///{}",
        stack.moto.create_signing_key("ECC_NIST_P256")
    );
    let bundle_of = |approval: &Value| {
        let a = approval["approval"].as_str().expect("approval digest");
        let (m, _) = c.manifest(APPROVALS, a);
        let m: Value = serde_json::from_slice(&m).expect("approval manifest");
        c.get_blob(APPROVALS, m["layers"][0]["digest"].as_str().expect("layer"))
    };

    // Each hostile approval is pushed to the approvals repository, its event matches the
    // approval rule, and the execution it starts is refused with that approval's reason (the
    // referrers API lists every approval of the digest pushed so far: none counts for prod).
    let refused = |name: &str, why: &str| {
        let x = stack.execute(&matched(stack, "ApprovalReferrerRule", APPROVALS), &[], &[]);
        assert_eq!(x.status(), "FAILED", "{name}: {}", x.describe());
        assert_eq!(x.error(), "Approval.Invalid", "{name}: {}", x.describe());
        let rejected = x.events("Image Rejected");
        assert_eq!(rejected.len(), 1, "{name}: {}", x.describe());
        let cause = rejected[0]["Detail"]["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(why), "{name}: {cause}");
        assert!(!x.path().iter().any(|p| p == "EnvironmentRetag"), "{name}");
        assert_eq!(c.list_tags(TRUSTED), tags_before, "{name}: tags changed");
    };
    // Unsigned: the approval type and an environment annotation claiming prod, no bundle (an
    // approval without any environment hint would only re-run the valid staging approval).
    let claims_prod = json!({"io.ecr-promotion.environment": "prod"});
    push_referrer_with(
        c,
        APPROVALS,
        &subject,
        APPROVAL_TYPE,
        "application/vnd.oci.empty.v1+json",
        b"{}",
        &claims_prod,
    );
    refused("unsigned", "unsigned");
    // Signed, but by a key that approves nothing.
    stack.approve(trusted, "prod", &stranger);
    refused(
        "foreign key",
        "does not verify with the key of any approver of prod",
    );
    // The approver's real signature, over a statement about another digest (a platform
    // manifest), re-wrapped as a referrer of this digest. Pushing the genuine approval of the
    // platform manifest is an event as well: that execution is the approver's own doing.
    let other = stack.approve(
        &format!("{}/{TRUSTED}@{child}", stack.host()),
        "prod",
        &stack.approver_key,
    );
    let genuine = stack.execute(&matched(stack, "ApprovalReferrerRule", APPROVALS), &[], &[]);
    // A platform manifest on its own was never promoted (nor signed) as an image: refused.
    assert_eq!(genuine.status(), "FAILED", "{}", genuine.describe());
    assert_eq!(
        genuine.error(),
        "Signature.Missing",
        "{}",
        genuine.describe()
    );
    assert_eq!(
        c.list_tags(TRUSTED),
        tags_before,
        "platform approval: tags changed"
    );
    push_referrer_with(
        c,
        APPROVALS,
        &subject,
        APPROVAL_TYPE,
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &bundle_of(&other),
        &claims_prod,
    );
    refused("another digest", &format!("it approves {child}"));

    // A manual environment request: refused by retag-for-environment, in the state machine and
    // when invoked directly, with or without `regate`.
    let x = stack.execute(&json!({"image": trusted, "environment": "prod"}), &[], &[]);
    assert_eq!(x.status(), "FAILED", "{}", x.describe());
    assert_eq!(x.error(), "Approval.Invalid", "{}", x.describe());
    for regate in [false, true] {
        let err = stack
            .invoke(
                "retag-for-environment",
                &json!({"image": trusted, "environment": "prod", "regate": regate}),
            )
            .expect_err("no valid approval");
        assert_eq!(err.0, "Approval.Invalid", "{err:?}");
    }
    assert_eq!(c.list_tags(TRUSTED), tags_before, "manual: tags changed");
}

// ------------------------------------------------------------------------------------------------
// The sync state machine: Plan (sync-plan) → Distributed Map of promotion executions
// ------------------------------------------------------------------------------------------------

/// `upstream`'s `mirror/app` with `tags`, each a different one-platform image: (tag, pushed).
fn push_mirror(upstream: &TestRegistry, tags: &[&str]) -> Vec<(String, Pushed)> {
    let c = RegistryClient::new(upstream);
    tags.iter()
        .map(|t| {
            let pushed = push_index(&c, "mirror/app", t, Format::Oci, &["linux/amd64"], &[4096]);
            (t.to_string(), pushed)
        })
        .collect()
}

/// The `dev-` tags of the trusted repository of application `mirror/app`, sorted.
fn mirrored(stack: &Stack) -> Vec<String> {
    let mut tags: Vec<String> = stack
        .client()
        .list_tags("trusted/mirror/app")
        .into_iter()
        .filter(|t| t.starts_with("dev-"))
        .collect();
    tags.sort();
    tags
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x[key].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

#[test]
fn a_sync_execution_starts_one_promotion_per_missing_tag_and_a_second_starts_none() {
    let upstream = TestRegistry::start();
    // 12 versions, plus `latest` and `nightly`, which the request's range leaves out.
    let versions: Vec<String> = (0..12).map(|i| format!("1.{i}.0")).collect();
    let mut tags: Vec<&str> = versions.iter().map(String::as_str).collect();
    tags.extend(["latest", "nightly"]);
    let pushed = push_mirror(&upstream, &tags);
    let stack = Stack::start(
        &StackConfig::default(),
        std::slice::from_ref(&upstream.host()),
    );
    stack.seed_findings(&[]);
    let repository = format!("{}/mirror/app", upstream.host());

    // 4 promoted first, each by a promotion execution of its own.
    for tag in ["1.8.0", "1.9.0", "1.10.0", "1.11.0"] {
        assert_succeeded(&stack.execute(
            &json!({"source": format!("{repository}:{tag}")}),
            &[],
            &[],
        ));
    }
    assert_eq!(mirrored(&stack).len(), 4);

    let request = json!({"repository": repository, "semver": ">=1"});
    let x = stack.execute_sync(&request, "nightly-1");
    assert_succeeded(&x);
    let plan = &x.0["output"];
    assert_eq!(
        (&plan["tagsListed"], &plan["considered"], &plan["present"]),
        (&json!(14), &json!(12), &json!(4)),
        "{}",
        x.describe()
    );
    assert_eq!(plan["deferred"], 0);
    assert_eq!(plan["skipped"], json!([]));
    let planned = strings(&plan["promotions"], "tag");
    let missing: Vec<String> = {
        let mut m: Vec<String> = (0..8).map(|i| format!("1.{i}.0")).collect();
        m.sort();
        m
    };
    assert_eq!(planned, missing, "{}", x.describe());

    // Exactly one promotion execution per planned tag, under the plan's name, on the source
    // pinned to the digest the plan saw, and each succeeded.
    let started = x.0["executions"].as_array().cloned().unwrap_or_default();
    assert_eq!(started.len(), 8, "{}", x.describe());
    assert_eq!(
        strings(&x.0["executions"], "name"),
        strings(&plan["promotions"], "name")
    );
    for e in &started {
        assert_eq!(e["status"], "SUCCEEDED", "{e:#}");
        let source = e["input"]["source"].as_str().unwrap_or_default();
        let (reference, digest) = source.split_once('@').expect("pinned");
        let tag = reference.rsplit(':').next().unwrap_or_default();
        let upstream_digest = &pushed.iter().find(|(t, _)| t == tag).expect("tag").1.digest;
        assert_eq!(digest, upstream_digest, "{e:#}");
        assert_eq!(e["input"]["build"], tag);
        assert_eq!(e["input"]["application"], "mirror/app");
    }
    let runs = x.0["mapRuns"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 1, "{}", x.describe());
    assert_eq!(
        (&runs[0]["items"], &runs[0]["failed"]),
        (&json!(8), &json!(0))
    );
    // The deployment's default (SYNC_MAX_CONCURRENCY 3) bounded the promotions in flight.
    assert_eq!(runs[0]["maxConcurrency"], 3);
    let peak = runs[0]["peakConcurrency"].as_u64().unwrap_or_default();
    assert!((1..=3).contains(&peak), "peak {peak}");
    let mut want: Vec<String> = versions.iter().map(|v| format!("dev-{v}")).collect();
    want.sort();
    assert_eq!(mirrored(&stack), want);

    // A second sync finds nothing to do and starts nothing.
    let again = stack.execute_sync(&request, "nightly-2");
    assert_succeeded(&again);
    assert_eq!(again.0["output"]["present"], 12, "{}", again.describe());
    assert_eq!(again.0["output"]["promotions"], json!([]));
    assert_eq!(again.0["executions"], json!([]));
    assert_eq!(mirrored(&stack), want);
}

#[test]
fn a_sync_tolerates_a_denied_tag_fails_past_its_threshold_and_refuses_other_registries() {
    let upstream = TestRegistry::start();
    let pushed = push_mirror(&upstream, &["2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0"]);
    let stack = Stack::start(
        &StackConfig::default(),
        std::slice::from_ref(&upstream.host()),
    );
    let bad = &pushed[2].1;
    stack.seed_findings(&[finding(
        "mirror/app",
        &bad.child("linux/amd64").digest,
        "CVE-2026-7777",
        "CRITICAL",
    )]);
    let request = json!({"repository": format!("{}/mirror/app", upstream.host())});

    // 1 of 5 denied: 20 %, what the deployment tolerates (SYNC_TOLERATED_FAILURE_PERCENTAGE).
    let x = stack.execute_sync(&request, "sync-1");
    assert_succeeded(&x);
    let denied: Vec<&Value> = x.0["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] == "FAILED")
        .collect();
    assert_eq!(denied.len(), 1, "{}", x.describe());
    assert_eq!(denied[0]["error"], "Gate.Denied");
    assert_eq!(denied[0]["input"]["build"], "2.2.0");
    assert_eq!(
        mirrored(&stack),
        ["dev-2.0.0", "dev-2.1.0", "dev-2.3.0", "dev-2.4.0"]
    );

    // The next sync plans only the denied tag; its one failure is past the threshold.
    let x = stack.execute_sync(&request, "sync-2");
    assert_eq!(x.status(), "FAILED", "{}", x.describe());
    assert_eq!(
        x.error(),
        "States.ExceedToleratedFailureThreshold",
        "{}",
        x.describe()
    );
    assert_eq!(strings(&x.0["executions"], "name").len(), 1);
    assert_eq!(mirrored(&stack).len(), 4);

    // A repository outside SOURCE_REGISTRIES, the pipeline's own trusted repository, and a
    // request with a forged field: the plan refuses them, and nothing is started.
    for (request, says) in [
        (
            json!({"repository": "registry.example.org/mirror/app"}),
            "SOURCE_REGISTRIES",
        ),
        (
            json!({"repository": format!("{}/trusted/mirror/app", stack.host())}),
            "own quarantine or trusted",
        ),
        (
            json!({"repository": format!("{}/mirror/app", upstream.host()), "gate": "PASSED"}),
            "unknown field",
        ),
    ] {
        let x = stack.execute_sync(&request, "sync-refused");
        assert_eq!(x.status(), "FAILED", "{}", x.describe());
        assert_eq!(x.error(), "Input.Invalid", "{}", x.describe());
        assert!(
            x.0["cause"].as_str().unwrap_or_default().contains(says),
            "{}",
            x.describe()
        );
        assert_eq!(x.0["executions"], json!([]), "{}", x.describe());
    }
    assert_eq!(mirrored(&stack).len(), 4);
}
