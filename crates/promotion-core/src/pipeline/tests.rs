//! The steps against the in-memory registry and a findings file.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::copy::CopyOptions;
use crate::digest::Digest;
use crate::environment::Environments;
use crate::error::{Classify, ErrorType};
use crate::gate::{Decision, FindingsSource, GateError, Policy};
use crate::mutate::Entries;
use crate::reference::ImageRef;
use crate::sign::CLAIM_GATE;

use crate::clock::SystemClock;
use crate::gate::{FileSource, ScanState, ScannedImage};
use crate::registry::auth::async_trait;
use crate::registry::memory::MemoryRegistry;

fn repos() -> Repositories {
    Repositories::per_application(
        "reg.test",
        "incoming/",
        "quarantine/",
        "trusted/",
        Some("ingress.test".into()),
    )
    .and_then(|r| r.with_approvals_prefix("approvals/"))
    .unwrap()
}

/// Application `app`'s quarantine repository.
fn q() -> ImageRef {
    repos()
        .quarantine_of(&Application::parse("a", "app").unwrap())
        .unwrap()
}

/// Application `app`'s trusted repository.
fn t() -> ImageRef {
    repos()
        .trusted_of(&Application::parse("a", "app").unwrap())
        .unwrap()
}

/// A two-platform index in quarantine; returns it pinned and its amd64 digest.
fn quarantined(reg: &MemoryRegistry) -> (String, Digest) {
    let raw = crate::annotate::tests::index(reg, &q().with_tag("x"));
    let (doc, _, _) = crate::manifest::ManifestDoc::parse(&raw.bytes, None).unwrap();
    (
        q().pinned(raw.digest).to_string(),
        doc.manifests[0].digest.clone(),
    )
}

fn critical_on(digest: &Digest) -> FileSource {
    FileSource::from_json(&format!(
        r#"{{"findings":[{{"findingArn":"arn:aws:inspector2:us-east-1:1:finding/x","severity":"CRITICAL",
        "status":"ACTIVE","type":"PACKAGE_VULNERABILITY","fixAvailable":"YES",
        "packageVulnerabilityDetails":{{"vulnerabilityId":"CVE-2026-9999","source":"NVD",
          "vulnerablePackages":[{{"name":"openssl","version":"1"}}]}},
        "resources":[{{"id":"x","type":"AWS_ECR_CONTAINER_IMAGE","details":{{"awsEcrContainerImage":
          {{"imageHash":"{digest}","repositoryName":"promotion/quarantine"}}}}}}]}}]}}"#
    ))
    .unwrap()
}

#[test]
fn requests_name_unknown_and_missing_fields() {
    let e = parse_request::<PromoteRequest>(
        "promote-and-annotate",
        serde_json::json!({"quarantine": "x", "verdict": "PASSED"}),
    )
    .unwrap_err();
    assert_eq!(e.error_type(), ErrorType::InputInvalid);
    assert!(e.to_string().contains("verdict"), "{e}");
    let e = parse_request::<SignRequest>("sign", serde_json::json!({})).unwrap_err();
    assert!(e.to_string().contains("image"), "{e}");
    for (req, needle) in [
        (CopyRequest::default(), "exactly one"),
        (
            CopyRequest {
                repository: Some("incoming/app".into()),
                ..CopyRequest::default()
            },
            "digest or tag",
        ),
        (
            CopyRequest {
                reference: Some("a/b:1".into()),
                tag: Some("1".into()),
                ..CopyRequest::default()
            },
            "either reference",
        ),
    ] {
        let e = req.source(Some("ingress.test")).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
    let pushed = CopyRequest {
        repository: Some("incoming/app".into()),
        digest: Some(Digest::of(b"x").to_string()),
        tag: Some("1.4.2".into()),
        ..CopyRequest::default()
    };
    let src = pushed.source(Some("ingress.test")).unwrap();
    assert_eq!(
        src.digest(),
        Some(&Digest::of(b"x")),
        "the digest wins over the tag"
    );
    for bad in [
        "reg.test/app:1",
        "app",
        "reg.test/App",
        "reg.test/a//b",
        "reg.test/a@sha256:00",
        "noport/app",
    ] {
        assert!(parse_repository("X", bad).is_err(), "{bad}");
    }
    let r = parse_repository("X", "127.0.0.1:5000/promotion/trusted").unwrap();
    assert_eq!(
        (r.registry(), r.repository()),
        ("127.0.0.1:5000", "promotion/trusted")
    );
    // The same answer as the reference parser for a valid repository.
    let full: ImageRef = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trusted/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap();
    let r = parse_repository(
        "X",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trusted/app",
    )
    .unwrap();
    assert_eq!(
        (r.registry(), r.repository()),
        (full.registry(), full.repository())
    );
}

#[tokio::test]
async fn promote_rechecks_the_gate_and_writes_nothing_on_a_denial() {
    let reg = MemoryRegistry::new();
    let (q, amd64) = quarantined(&reg);
    let policy = Policy::default();
    let settings = PromoteSettings {
        policy: &policy,
        environments: &Environments::default(),
        annotations: &Entries::default(),
        labels: &Entries::default(),
        clock: &SystemClock,
        copy: CopyOptions::default(),
        preserve_digest: false,
    };
    let req = PromoteRequest {
        quarantine: q.clone(),
        ..PromoteRequest::default()
    };
    let err = promote_and_annotate(&reg, &repos(), &critical_on(&amd64), &settings, &req)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::GateDenied, "{err}");
    assert!(reg.tags(&t()).is_empty());
    assert_eq!(reg.calls().manifest_puts, 0, "nothing written");

    // Clean findings: promoted, with the gate summary recorded on the image.
    let clean = FileSource::from_json(r#"{"findings":[]}"#).unwrap();
    let done = promote_and_annotate(&reg, &repos(), &clean, &settings, &req)
        .await
        .unwrap();
    let raw = reg.manifest(&t(), &done.digest).unwrap();
    let (doc, _, _) = crate::manifest::ManifestDoc::parse(&raw.bytes, None).unwrap();
    assert!(doc.annotations[CLAIM_GATE].starts_with("PASSED"));
    // Outside quarantine: refused.
    let outside = PromoteRequest {
        quarantine: t().pinned(done.digest.clone()).to_string(),
        ..PromoteRequest::default()
    };
    let err = promote_and_annotate(&reg, &repos(), &clean, &settings, &outside)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not in the quarantine repository"),
        "{err}"
    );
}

struct NeverScanned;
#[async_trait]
impl FindingsSource for NeverScanned {
    async fn scan_state(&self, _: &ScannedImage) -> Result<ScanState, GateError> {
        Ok(ScanState::Pending("PENDING_INITIAL_SCAN".into()))
    }
    async fn findings(&self, _: &ScannedImage) -> Result<Vec<crate::gate::Finding>, GateError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn the_gate_asks_to_wait_and_turns_into_a_timeout_at_the_bound() {
    let reg = MemoryRegistry::new();
    let (q, _) = quarantined(&reg);
    let policy = Policy::default();
    let envs = Environments::default();
    let settings = GateSettings {
        policy: &policy,
        environments: &envs,
        approvers: &crate::environment::ApproverKeys::default(),
        poll_seconds: 30,
        max_wait_seconds: 90,
        clock: &SystemClock,
    };
    let mut req = GateRequest {
        image: Some(q),
        ..GateRequest::default()
    };
    for expected in 1..=3 {
        let r = scan_gate(&reg, &repos(), &NeverScanned, &settings, &req)
            .await
            .unwrap();
        assert_eq!(r.decision, Decision::Pending);
        assert_eq!((r.polls, r.wait_seconds), (expected, 30));
        req.polls = r.polls;
    }
    let err = scan_gate(&reg, &repos(), &NeverScanned, &settings, &req)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::GateTimeout, "{err}");
}

fn promote_settings<'a>(
    policy: &'a Policy,
    envs: &'a Environments,
    annotations: &'a Entries,
) -> PromoteSettings<'a> {
    PromoteSettings {
        policy,
        environments: envs,
        annotations,
        labels: &EMPTY,
        clock: &SystemClock,
        copy: CopyOptions::default(),
        preserve_digest: false,
    }
}

static EMPTY: std::sync::LazyLock<Entries> = std::sync::LazyLock::new(Entries::default);

/// A quarantined index whose documents speak for the pipeline: a forged gate summary on the
/// index, a forged source on the platform manifest, a reserved label in its config.
fn forged_quarantine(reg: &MemoryRegistry) -> crate::manifest::RawManifest {
    use crate::selection::fixtures::{LAYER, Tree, entry};
    use serde_json::json;
    let t = Tree { reg, repo: q() };
    let amd = t.manifest_with(
        &[(LAYER, b"amd")],
        json!({"annotations": {"io.ecr-promotion.source.name": "reg.test/elsewhere:1"}}),
        json!({"io.ecr-promotion.gate": "PASSED forged"}),
    );
    t.index_with(
        vec![entry(&amd, Some("linux/amd64"), serde_json::Value::Null)],
        json!({"io.ecr-promotion.gate": "PASSED forged", "org.example.keep": "yes"}),
        None,
    )
}

#[tokio::test]
async fn promote_records_the_source_scrubs_reserved_keys_and_mandatory_annotations_win() {
    let reg = MemoryRegistry::new();
    let top = forged_quarantine(&reg);
    let q = q().pinned(top.digest.clone()).to_string();
    let (policy, envs) = (Policy::default(), Environments::default());
    let mandatory = Entries::from_input("annotation", [("org.example.team", "core")]).unwrap();
    let settings = promote_settings(&policy, &envs, &mandatory);
    let clean = FileSource::from_json(r#"{"findings":[]}"#).unwrap();
    let origin = format!("ingress.test/incoming/app:1.0@{}", top.digest);
    let req = PromoteRequest {
        quarantine: q.clone(),
        source: Some(origin.clone()),
        annotations: [("org.example.team".to_owned(), "evil".to_owned())].into(),
        ..PromoteRequest::default()
    };

    // A source that does not name the quarantined digest is refused, nothing written.
    let wrong = PromoteRequest {
        source: Some(format!(
            "ingress.test/incoming/app:1.0@{}",
            Digest::of(b"x")
        )),
        ..req.clone()
    };
    let e = promote_and_annotate(&reg, &repos(), &clean, &settings, &wrong)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), ErrorType::InputInvalid, "{e}");
    assert_eq!(reg.calls().manifest_puts, 0);

    let done = promote_and_annotate(&reg, &repos(), &clean, &settings, &req)
        .await
        .unwrap();
    assert_eq!(done.source_name, "ingress.test/incoming/app:1.0");
    assert_eq!(
        done.reserved_removed.len(),
        3,
        "{:?}",
        done.reserved_removed
    );
    assert!(
        done.reserved_removed
            .iter()
            .any(|r| r.ends_with("label io.ecr-promotion.gate")),
        "{:?}",
        done.reserved_removed
    );
    let trusted = &t();
    let doc = |d: &Digest| {
        let raw = reg.manifest(trusted, d).unwrap();
        crate::manifest::ManifestDoc::parse(&raw.bytes, None)
            .unwrap()
            .0
    };
    let index = doc(&done.digest);
    let a = &index.annotations;
    assert_eq!(
        a["org.example.team"], "core",
        "the deployment's annotation wins"
    );
    assert_eq!(a["org.example.keep"], "yes");
    assert!(a[CLAIM_GATE].starts_with("PASSED") && !a[CLAIM_GATE].contains("forged"));
    assert_eq!(
        a[crate::mutate::SOURCE_NAME],
        "ingress.test/incoming/app:1.0"
    );
    assert_eq!(a[crate::mutate::SOURCE_DIGEST], top.digest.as_str());
    assert_eq!(
        a[crate::sign::CLAIM_POLICY_DIGEST],
        Policy::default().digest().as_str()
    );
    let child = doc(&index.manifests[0].digest);
    assert_eq!(
        child.annotations[crate::mutate::SOURCE_NAME],
        "ingress.test/incoming/app:1.0"
    );
    let config = reg
        .blob(trusted, &child.config.as_ref().unwrap().digest)
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&config).contains("io.ecr-promotion"),
        "the reserved label is gone"
    );
}

#[tokio::test]
async fn a_taken_environment_tag_stops_promote_before_it_writes() {
    let reg = MemoryRegistry::new();
    let (q, _) = quarantined(&reg);
    let (policy, envs) = (Policy::default(), Environments::default());
    let settings = promote_settings(&policy, &envs, &EMPTY);
    let clean = FileSource::from_json(r#"{"findings":[]}"#).unwrap();
    // Another team's image already holds dev-2.0.0.
    let other = crate::manifest::RawManifest::new(
        bytes::Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#),
        crate::manifest::OCI_INDEX.into(),
    );
    reg.put_manifest_bytes(&t(), Some("dev-2.0.0"), other.clone());
    let req = PromoteRequest {
        quarantine: q,
        source_tag: Some("2.0.0".into()),
        ..PromoteRequest::default()
    };
    let e = promote_and_annotate(&reg, &repos(), &clean, &settings, &req)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), ErrorType::TagConflict, "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(reg.calls().manifest_puts, 0, "nothing written to trusted");
    assert_eq!(reg.tag(&t(), "dev-2.0.0"), Some(other.digest));
}

#[tokio::test]
async fn copy_validates_the_whole_request_and_refuses_a_moved_tag_before_writing() {
    let reg = MemoryRegistry::new();
    let src: ImageRef = "ingress.test/incoming/app:1".parse().unwrap();
    let raw = crate::annotate::tests::index(&reg, &src);
    let envs = Environments::default();
    // No source registry listed: the deployment's own (reg.test, ingress.test) only.
    let sources = SourceRegistries::only(Vec::<String>::new()).unwrap();
    let settings = CopySettings {
        copy: CopyOptions::default(),
        limits: crate::selection::Limits::default(),
        environments: &envs,
        sources: &sources,
    };
    let base = CopyRequest {
        reference: Some(src.to_string()),
        ..CopyRequest::default()
    };
    // It exists: only the allow-list stands in the way.
    let elsewhere: ImageRef = "127.0.0.1:9001/x:1".parse().unwrap();
    crate::annotate::tests::index(&reg, &elsewhere);
    for (req, needle) in [
        (
            CopyRequest {
                reference: Some(elsewhere.to_string()),
                ..base.clone()
            },
            "the registry 127.0.0.1:9001 is not an allowed source; add it to SOURCE_REGISTRIES",
        ),
        (
            CopyRequest {
                build: Some("a b".into()),
                ..base.clone()
            },
            "build",
        ),
        (
            CopyRequest {
                annotations: [("io.ecr-promotion.x".to_owned(), "y".to_owned())].into(),
                ..base.clone()
            },
            "reserved",
        ),
        (
            CopyRequest {
                reference: Some(format!("{src}@{}", Digest::of(b"other"))),
                ..base.clone()
            },
            "pushed again since",
        ),
    ] {
        let e = copy_to_quarantine(&reg, &repos(), &req, &settings)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::InputInvalid, "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
        assert_eq!(reg.calls().manifest_puts, 0);
    }
    let done = copy_to_quarantine(&reg, &repos(), &base, &settings)
        .await
        .unwrap();
    assert_eq!(done.origin, format!("{src}@{}", raw.digest));
    assert_eq!(done.source_tag.as_deref(), Some("1"));
}

/// A source whose every image was scanned `age` seconds ago.
struct ScannedAgo(u64);
#[async_trait]
impl FindingsSource for ScannedAgo {
    async fn scan_state(&self, _: &ScannedImage) -> Result<ScanState, GateError> {
        Ok(ScanState::Scanned)
    }
    async fn coverage(&self, _: &ScannedImage) -> Result<crate::gate::Coverage, GateError> {
        Ok(crate::gate::Coverage {
            state: ScanState::Scanned,
            completed_at: Some(
                std::time::SystemTime::now() - std::time::Duration::from_secs(self.0),
            ),
        })
    }
    async fn findings(&self, _: &ScannedImage) -> Result<Vec<crate::gate::Finding>, GateError> {
        Ok(Vec::new())
    }
}

/// Whoever invokes promote-and-annotate, a scan younger than the policy's settle interval does
/// not pass: its findings may still be arriving.
#[tokio::test]
async fn promote_refuses_a_scan_younger_than_the_settle_interval() {
    let reg = MemoryRegistry::new();
    let (q, _) = quarantined(&reg);
    let policy = Policy::parse("settle_seconds: 30").unwrap();
    let envs = Environments::default();
    let settings = promote_settings(&policy, &envs, &EMPTY);
    let req = PromoteRequest {
        quarantine: q,
        ..PromoteRequest::default()
    };
    let e = promote_and_annotate(&reg, &repos(), &ScannedAgo(5), &settings, &req)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), ErrorType::GateTimeout, "{e}");
    assert!(e.to_string().contains("settle_seconds"), "{e}");
    assert_eq!(reg.calls().manifest_puts, 0, "nothing written");
    promote_and_annotate(&reg, &repos(), &ScannedAgo(60), &settings, &req)
        .await
        .unwrap();
}

/// scan-gate reads Inspector findings of the pipeline's own repositories only: an image (or an
/// approval) anywhere else is refused before the registry or Inspector is asked.
#[tokio::test]
async fn the_gate_refuses_images_and_approvals_outside_the_pipelines_repositories() {
    let reg = MemoryRegistry::new();
    let (policy, envs) = (Policy::default(), Environments::default());
    let settings = GateSettings {
        policy: &policy,
        environments: &envs,
        approvers: &crate::environment::ApproverKeys::default(),
        poll_seconds: 30,
        max_wait_seconds: 90,
        clock: &SystemClock,
    };
    let d = Digest::of(b"x");
    for image in [
        format!("reg.test/incoming/app@{d}"),
        format!("other.test/trusted/app@{d}"),
        format!("reg.test/trustedx/app@{d}"),
    ] {
        let req = GateRequest {
            image: Some(image.clone()),
            ..GateRequest::default()
        };
        let e = scan_gate(&reg, &repos(), &NeverScanned, &settings, &req)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::InputInvalid, "{image}: {e}");
        assert!(
            e.to_string().contains("not in a quarantine or trusted"),
            "{e}"
        );
    }
    for repository in ["quarantine/app", "incoming/app", "trusted/app", "approvals"] {
        let req = GateRequest {
            approval: Some(ApprovalRef {
                repository: repository.into(),
                digest: d.to_string(),
            }),
            ..GateRequest::default()
        };
        let e = scan_gate(&reg, &repos(), &NeverScanned, &settings, &req)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::InputInvalid, "{repository}: {e}");
        assert!(e.to_string().contains("approval.repository"), "{e}");
    }
    // The registry is empty: had the gate read it, the answer would be Registry.NotFound.
}

#[tokio::test]
async fn sign_attests_what_promote_recorded_and_refuses_forged_claims_and_records_before_writing() {
    let reg = MemoryRegistry::new();
    let (quarantine, _) = quarantined(&reg);
    let policy = Policy::default();
    let envs = Environments::default();
    let done = promote_and_annotate(
        &reg,
        &repos(),
        &FileSource::from_json(r#"{"findings":[]}"#).unwrap(),
        &promote_settings(&policy, &envs, &Entries::default()),
        &PromoteRequest {
            quarantine: quarantine.clone(),
            ..PromoteRequest::default()
        },
    )
    .await
    .unwrap();
    let key = crate::sign::local::LocalSigner::generate_p256();
    let sign_with = |req: SignRequest| {
        let (reg, key) = (&reg, &key);
        async move {
            sign(
                reg,
                &repos(),
                key,
                crate::sign::store::SignMode::Both,
                &SystemClock,
                &req,
            )
            .await
        }
    };

    // Claims are taken only for a preserved digest: here the image records its own.
    let forged = SignRequest {
        image: done.trusted.clone(),
        claims: std::collections::BTreeMap::from([
            (
                crate::sign::CLAIM_GATE.to_owned(),
                "PASSED forged".to_owned(),
            ),
            (
                crate::sign::CLAIM_SOURCE_DIGEST.to_owned(),
                done.source_digest.to_string(),
            ),
        ]),
        ..SignRequest::default()
    };
    let e = sign_with(forged).await.unwrap_err();
    assert_eq!(e.error_type(), ErrorType::InputInvalid, "{e}");
    // A gate record that is not what the image records.
    let lie = SignRequest {
        image: done.trusted.clone(),
        gate: Some(crate::sign::attest::GateRecord {
            summary: "PASSED but not this one".into(),
            ..done.gate_record.clone()
        }),
        ..SignRequest::default()
    };
    let puts = reg.calls().manifest_puts;
    let e = sign_with(lie).await.unwrap_err();
    assert_eq!(e.error_type(), ErrorType::InputInvalid, "{e}");
    assert_eq!(reg.calls().manifest_puts, puts, "nothing written");

    // The genuine request: signed and attested, with the record promote returned.
    let ok = SignRequest {
        image: done.trusted.clone(),
        quarantine: Some(quarantine.clone()),
        gate: Some(done.gate_record.clone()),
        ..SignRequest::default()
    };
    let r = sign_with(ok.clone()).await.unwrap();
    assert!(r.attestation_created);
    let image: ImageRef = done.trusted.parse().unwrap();
    let v = crate::sign::attest::verify(
        &reg,
        &image,
        crate::sign::Signer::public_key(&key),
        &done.digest,
    )
    .await
    .unwrap();
    assert_eq!(v.predicate["promotion"]["quarantine"], quarantine.as_str());
    assert_eq!(
        v.predicate["promotion"]["gate"]["summary"],
        done.gate.as_str()
    );
    let again = sign_with(ok).await.unwrap();
    assert_eq!(
        (again.signatures_created, again.attestation_created),
        (0, false)
    );
}

/// At the end of a promotion the trusted digest is a new image to Inspector (coverage is per
/// repository), usually not scanned yet: the first environment's tag goes on on the strength of
/// the pipeline's own fresh attestation of the same policy passing, while an environment with
/// rules of its own, or `regate`, runs the gate and waits for the scan (found by the ECR-faithful
/// front and the Inspector coverage stand-in end to end: the rules compared unequal for their
/// environment's name alone, so the first tag of every promotion waited for the trusted scan).
#[tokio::test]
async fn the_first_environment_tag_reuses_the_fresh_attestation_while_the_trusted_scan_is_pending()
{
    let reg = MemoryRegistry::new();
    let (quarantine, _) = quarantined(&reg);
    let policy = Policy::parse(
        "block_severities: [CRITICAL]\nenvironments:\n  prod:\n    block_severities: [CRITICAL, HIGH]\n",
    )
    .unwrap();
    let envs = Environments::parse(
        r#"{"environments": [{"name": "dev"}, {"name": "prod", "approval_required": false}]}"#,
    )
    .unwrap();
    let done = promote_and_annotate(
        &reg,
        &repos(),
        &FileSource::from_json(r#"{"findings":[]}"#).unwrap(),
        &promote_settings(&policy, &envs, &Entries::default()),
        &PromoteRequest {
            quarantine: quarantine.clone(),
            ..PromoteRequest::default()
        },
    )
    .await
    .unwrap();
    let key = crate::sign::local::LocalSigner::generate_p256();
    sign(
        &reg,
        &repos(),
        &key,
        crate::sign::store::SignMode::Both,
        &SystemClock,
        &SignRequest {
            image: done.trusted.clone(),
            quarantine: Some(quarantine),
            gate: Some(done.gate_record.clone()),
            ..SignRequest::default()
        },
    )
    .await
    .unwrap();
    let public = crate::sign::Signer::public_key(&key).clone();
    let approvers = crate::environment::ApproverKeys::default();
    let settings = RetagSettings {
        environments: &envs,
        policy: &policy,
        key: &public,
        approvers: &approvers,
        clock: &SystemClock,
    };
    let retag = |environment: Option<&str>, regate: bool| {
        let (reg, settings) = (&reg, &settings);
        let req = RetagRequest {
            image: done.trusted.clone(),
            environment: environment.map(str::to_owned),
            build: Some("1.0".into()),
            regate,
            ..RetagRequest::default()
        };
        async move { retag_for_environment(reg, &repos(), &NeverScanned, settings, &req).await }
    };
    // regate: the gate runs, and the trusted digest is not scanned yet.
    let e = retag(None, true).await.unwrap_err();
    assert_eq!(e.error_type(), ErrorType::GateTimeout, "{e}");
    assert!(reg.tags(&t()).iter().all(|t| !t.starts_with("dev-")));
    // The first environment, the base rules: the attestation stands in.
    let r = retag(None, false).await.unwrap();
    assert_eq!(r.tags, vec!["dev-1.0".to_owned()]);
    assert!(r.gate.is_none(), "the gate was not re-run: {:?}", r.gate);
    // prod blocks HIGH as well: its rules are not what was attested, so the gate runs.
    let e = retag(Some("prod"), false).await.unwrap_err();
    assert_eq!(e.error_type(), ErrorType::GateTimeout, "{e}");
}
