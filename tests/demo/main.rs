//! The README's main job: the whole pipeline on local stand-ins, no AWS account, no internet.
//!
//! Starts docker-registry (ingress, quarantine and trusted repositories) behind the ECR-faithful
//! front (referrers API, mount rule, PutImage throttling, moto's ~2,000-character ECR token, and
//! ECR's events put on moto's EventBridge), moto_server (ECR, KMS, Inspector2 findings,
//! EventBridge with the template's rules, SQS), Inspector's coverage stand-in and `cargo lambda
//! watch` (the real Lambda binaries); pushes a realistic three-platform image and seeds its
//! Inspector findings, then starts the real state machine (statemachine/promotion.asl.json on
//! aws-local-stepfunctions) from the event the template's ingress rule matched, twice, and prints
//! a timeline and the final state of the trusted repository.
//! Run through `scripts/demo.sh`, which installs what it needs first.
#![allow(dead_code, missing_docs)]

#[path = "../it/support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::images::{Format, push_index};
use support::pipeline::{Execution, Stack, StackConfig};

/// Application `shop-api`'s trusted repository (`incoming/shop-api` is promoted there).
const TRUSTED: &str = "trusted/shop-api";

fn short(d: &str) -> String {
    d.split('@')
        .next_back()
        .map(|x| x.chars().take(19).collect())
        .unwrap_or_default()
}

fn detail(state: &Value) -> String {
    let o = &state["output"];
    match state["name"].as_str().unwrap_or_default() {
        "Copy" => format!(
            "{} → quarantine @{} ({} manifests pushed, {} bytes streamed)",
            o["copy"]["source"].as_str().unwrap_or_default(),
            short(o["copy"]["quarantine"].as_str().unwrap_or_default()),
            o["copy"]["manifestsPushed"],
            o["copy"]["bytesStreamed"]
        ),
        "Gate" => format!(
            "{} (poll {})",
            o["gate"]["summary"].as_str().unwrap_or_default(),
            o["gate"]["polls"]
        ),
        "PromoteAndAnnotate" => format!(
            "trusted @{} ({} manifests pushed, {} layer bytes streamed: blobs mounted)",
            short(o["promote"]["trusted"].as_str().unwrap_or_default()),
            o["promote"]["manifestsPushed"],
            o["promote"]["bytesStreamed"]
        ),
        "Sign" => format!(
            "{} digests signed, {} new signatures (bundle + legacy), attestation {}",
            o["sign"]["digestsSigned"],
            o["sign"]["signaturesCreated"],
            if o["sign"]["attestationCreated"] == true {
                "written"
            } else {
                "already there"
            }
        ),
        "Retag" => format!(
            "{} (changed: {})",
            o["retag"]["tags"]
                .as_array()
                .map(|t| t
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            o["retag"]["changed"]
        ),
        "EmitPromoted" | "EmitRejected" => "event emitted".into(),
        _ => String::new(),
    }
}

fn timeline(title: &str, x: &Execution) {
    println!("\n== {title}: {} in {} ms", x.status(), x.0["durationMs"]);
    for s in x.0["states"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        if s["type"] == "Choice" || (s["type"] == "Pass" && name != "Promoted") {
            continue;
        }
        println!("  {:<20} {:>6} ms  {}", name, s["ms"], detail(s));
    }
    if x.status() != "SUCCEEDED" {
        println!(
            "  error: {} — {}",
            x.error(),
            x.0["cause"].as_str().unwrap_or_default()
        );
    }
}

fn main() {
    let started = std::time::Instant::now();
    println!(
        "starting the stand-ins: docker-registry behind the ECR-faithful front, moto_server, \
         Inspector coverage, cargo lambda watch (the functions)…"
    );
    let stack = Stack::start(&StackConfig::default(), &[]);
    let c = stack.client();
    println!(
        "  registry {} (ECR front)  moto {}  KMS key {}",
        stack.host(),
        stack.moto.url(),
        stack.key_id
    );

    let app = push_index(
        &c,
        "incoming/shop-api",
        "1.4.2",
        Format::Oci,
        &["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
        &[4 * 1024 * 1024, 1024 * 1024, 128 * 1024],
    );
    println!(
        "pushed incoming/shop-api:1.4.2 @{} (3 platforms, 3 layers each)",
        short(&app.digest)
    );
    let amd64 = app.child("linux/amd64").digest.clone();
    let finding = |id: &str, sev: &str, pkg: &str| {
        json!({
            "awsAccountId": "123456789012",
            "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}"),
            "severity": sev, "status": "ACTIVE", "type": "PACKAGE_VULNERABILITY", "fixAvailable": "YES",
            "firstObservedAt": 1_795_000_000.0, "lastObservedAt": 1_795_000_000.0,
            "packageVulnerabilityDetails": {"vulnerabilityId": id, "source": "DEBIAN_CVE",
                "vulnerablePackages": [{"name": pkg, "version": "1.0"}]},
            "resources": [{"id": "x", "type": "AWS_ECR_CONTAINER_IMAGE", "details": {
                "awsEcrContainerImage": {"imageHash": amd64, "repositoryName": "quarantine/shop-api"}}}]
        })
    };
    stack.seed_findings(&[
        finding("CVE-2025-0001", "MEDIUM", "libexpat1"),
        finding("CVE-2025-0002", "LOW", "tar"),
    ]);
    println!(
        "seeded Inspector findings: 1 MEDIUM, 1 LOW on linux/amd64 (the policy blocks CRITICAL and HIGH)"
    );

    // The push sent one ECR Image Action per manifest (three platforms, then the tagged index);
    // the template's ingress rule matched the tagged one.
    let emitted = stack.front.emitted().len();
    let (rule, event) = stack.triggered_once();
    println!(
        "ECR sent {emitted} events for the push; {rule} matched one: {} {}:{}",
        event["detail-type"].as_str().unwrap_or_default(),
        event["detail"]["repository-name"]
            .as_str()
            .unwrap_or_default(),
        event["detail"]["image-tag"].as_str().unwrap_or_default()
    );
    let first = stack.execute(&event, &[], &[]);
    timeline("execution 1: ECR push event", &first);
    let own = stack.triggered();
    println!(
        "\nthe pipeline's own pushes (quarantine, trusted, signatures) sent {} events; rules matched {}",
        stack.front.emitted().len() - emitted,
        own.len()
    );
    let second = stack.execute(&event, &[], &[]);
    timeline("execution 2: the same event again (idempotent)", &second);

    println!("\n== trusted repository {}/{TRUSTED}", stack.host());
    let mut ok = first.status() == "SUCCEEDED" && second.status() == "SUCCEEDED" && own.is_empty();
    let tags = c.list_tags(TRUSTED);
    for tag in tags.iter().filter(|t| !t.starts_with("sha256-")) {
        let (bytes, _) = c.manifest(TRUSTED, tag);
        println!(
            "  tag {tag:<16} → @{}",
            short(&support::sha256_digest(&bytes))
        );
    }
    let legacy = tags.iter().filter(|t| t.ends_with(".sig")).count();
    let fallback = tags
        .iter()
        .filter(|t| t.starts_with("sha256-") && !t.ends_with(".sig"))
        .count();
    println!(
        "  + {legacy} legacy signature tags (sha256-<hex>.sig, for the index and each platform) and \
         {fallback} referrers fallback tags: the registry has the referrers API, so the bundles \
         and the attestation are listed there"
    );
    if let Some(trusted) = first.0["output"]["trusted"].as_str() {
        let digest = trusted.split('@').nth(1).unwrap_or_default();
        let (bytes, _) = c.manifest(TRUSTED, digest);
        let index: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        println!("  annotations of @{}:", short(digest));
        for (k, v) in index["annotations"].as_object().into_iter().flatten() {
            println!("    {k} = {}", v.as_str().unwrap_or_default());
        }
        let verify = stack
            .promote()
            .arg("verify")
            .arg(trusted)
            .arg("--key")
            .arg(format!("awskms:///{}", stack.key_id))
            .arg("--require")
            .arg("both")
            .arg("--attestation")
            .run();
        let verified = verify.code == 0;
        ok &= verified;
        println!(
            "  signature: {}",
            if verified {
                let v = verify.json();
                let gate = &v["attestation"]["predicate"]["promotion"]["gate"]["summary"];
                format!(
                    "verified with the KMS key: {} valid (Sigstore bundle and legacy .sig); \
                     promotion attestation (SLSA VSA) {}: {}",
                    v["valid"].as_array().map_or(0, Vec::len),
                    v["attestation"]["predicate"]["verificationResult"]
                        .as_str()
                        .unwrap_or_default(),
                    gate.as_str().unwrap_or_default()
                )
            } else {
                format!("NOT verified: {}", verify.stderr.trim())
            }
        );
    } else {
        ok = false;
    }
    println!(
        "\ndone in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        std::process::exit(1);
    }
}
