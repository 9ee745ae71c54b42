//! Environments: tagging a trusted digest per environment, the order digests move through them,
//! approvals that ask for the next one, and the ECR lifecycle policy that expires each
//! environment's images on its own terms.
//!
//! - [`config`]: the environments document (parsed once at the edge);
//! - [`retag`]: `<env>-<build>` on a digest, never moving a tag unless allowed;
//! - [`approval`]: approval referrers, pushed and resolved;
//! - [`lifecycle`]: the lifecycle policy JSON;
//! - [`promote_to_environment`]: verify the pipeline's signature, re-run the gate with the
//!   target environment's rules against current findings, then retag.

pub mod approval;
pub mod config;
pub mod lifecycle;
pub mod retag;

pub use approval::{
    ApprovalInput, ApprovalReport, ApproverKeys, KeySource, VerifiedApproval, approver_keys,
    push_approval, record_approval, verified_approvals, verify_approval,
};
pub use config::{Approver, ApproverKey, Environment, Environments, TagTemplate};
pub use retag::{RetagOptions, RetagReport, TagOutcome, retag};

use crate::clock::Clock;
use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::gate::{self, FindingsSource, GateError, Rules, Verdict};
use crate::manifest::RawManifest;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};
use crate::selection::{Limits, select};
use crate::sign::verify::{VerifyOptions, VerifyReport, verify_image};
use crate::sign::{PublicKey, SignError};
use serde::Serialize;

/// Why an environment operation failed. Nothing is written when any of these is returned
/// before the first tag (every check runs before the first write).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// Bad input: unknown environment, bad tag or build id, a bad environments document.
    #[error("{0}")]
    Input(String),
    /// An environment tag names another digest.
    #[error("{0}")]
    Conflict(String),
    /// A prerequisite environment was skipped.
    #[error("{0}")]
    OutOfOrder(String),
    /// The image is not in the repository.
    #[error("{what} is not in {repository}; nothing was tagged")]
    NotInRepository {
        /// The image.
        what: String,
        /// The repository.
        repository: String,
    },
    /// A registry call failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The signature check failed.
    #[error("signature check: {0}")]
    Signature(#[from] SignError),
    /// The gate re-run failed or denied.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// No approval where one is required.
    #[error("approval: {0}")]
    ApprovalMissing(String),
    /// Approvals exist and none verifies.
    #[error("approval: {0}")]
    ApprovalInvalid(String),
}

impl Classify for EnvError {
    fn error_type(&self) -> ErrorType {
        match self {
            EnvError::Input(_) => ErrorType::InputInvalid,
            EnvError::Conflict(_) => ErrorType::TagConflict,
            EnvError::OutOfOrder(_) => ErrorType::EnvironmentOutOfOrder,
            EnvError::NotInRepository { .. } => ErrorType::RegistryNotFound,
            EnvError::Registry(e) => e.error_type(),
            EnvError::Signature(e) => e.error_type(),
            EnvError::Gate(e) => e.error_type(),
            EnvError::ApprovalMissing(_) => ErrorType::ApprovalMissing,
            EnvError::ApprovalInvalid(_) => ErrorType::ApprovalInvalid,
        }
    }
}

/// The manifest `image` names (a tag resolved once), exactly as stored.
pub(crate) async fn manifest_of<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
) -> Result<RawManifest, EnvError> {
    match reg.get_manifest(image, &image.reference()).await {
        Ok(m) => Ok(m),
        Err(RegistryError::NotFound { .. }) => Err(EnvError::NotInRepository {
            what: image
                .digest()
                .map(Digest::to_string)
                .or_else(|| image.tag().map(str::to_owned))
                .unwrap_or_else(|| image.reference()),
            repository: image.repo_path(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The gate re-run of an environment promotion.
pub struct GateCheck<'a> {
    /// Where findings come from.
    pub source: &'a dyn FindingsSource,
    /// The target environment's rules.
    pub rules: Rules,
    /// The clock (allowlist expiry, the attestation's age).
    pub clock: &'a dyn Clock,
    /// The registry's account, for Inspector's filters (ECR only).
    pub account: Option<String>,
    /// The policy's bounds on the image ([`crate::selection`]).
    pub limits: Limits,
    /// When set, the re-run is skipped if the pipeline's verified promotion attestation shows
    /// this very policy passed the digest recently enough (the tag for the first environment,
    /// moments after the gate ran in the same execution).
    pub reuse: Option<GateReuse>,
}

/// When a promotion attestation stands in for a gate re-run.
#[derive(Debug, Clone)]
pub struct GateReuse {
    /// The current policy's digest: the attestation must record exactly this one.
    pub policy_digest: Digest,
    /// How old the attestation's `timeVerified` may be.
    pub max_age: std::time::Duration,
}

/// Where approvals are looked for, and whose keys count.
pub struct ApprovalCheck<'a> {
    /// The application's approvals repository.
    pub approvals: &'a ImageRef,
    /// The approvers' keys per environment.
    pub keys: &'a ApproverKeys,
}

/// What an environment promotion did.
#[derive(Debug, Serialize)]
pub struct EnvironmentPromotion {
    /// Always `promote-environment`.
    pub operation: &'static str,
    /// The verified approval, when the environment requires one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSummary>,
    /// The signature check.
    pub signature: SignatureSummary,
    /// The bundle referrer holding the verified promotion attestation.
    pub attestation: Digest,
    /// The gate re-run's verdict, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Verdict>,
    /// Why the gate did not re-run, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_skipped: Option<String>,
    /// The retag.
    pub retag: RetagReport,
}

/// A verified approval, as reported.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSummary {
    /// The approval artifact in the approvals repository.
    pub manifest: Digest,
    /// Its copy in the trusted repository.
    pub recorded: Digest,
    /// The configured name of the approver whose key verified.
    pub approver: String,
    /// When it was signed.
    pub approved_at: String,
}

/// The part of a verification worth carrying in state.
#[derive(Debug, Serialize)]
pub struct SignatureSummary {
    /// The verified digest.
    pub digest: Digest,
    /// Valid signatures found.
    pub valid: usize,
    /// The source digest the signature claims, when it records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
}

impl From<&VerifyReport> for SignatureSummary {
    fn from(r: &VerifyReport) -> Self {
        SignatureSummary {
            digest: r.digest.clone(),
            valid: r.valid.len(),
            source_digest: r
                .claims
                .get(crate::sign::CLAIM_SOURCE_DIGEST)
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        }
    }
}

/// Whether the verified attestation `predicate` (a VSA) records `reuse.policy_digest` and was
/// made no longer than `reuse.max_age` before `now` (and not in the future beyond a minute of
/// clock skew). `Err(why not)` otherwise.
fn attestation_covers(
    predicate: &serde_json::Value,
    reuse: &GateReuse,
    now: std::time::SystemTime,
) -> Result<(), String> {
    let recorded = predicate["policy"]["digest"]["sha256"]
        .as_str()
        .unwrap_or_default();
    if recorded != reuse.policy_digest.hex() {
        return Err("the attestation records another gate policy".into());
    }
    let at = predicate["timeVerified"]
        .as_str()
        .ok_or("the attestation has no timeVerified")
        .and_then(|t| gate::time::parse_timestamp(t).map_err(|_| "bad timeVerified"))?;
    let skew = std::time::Duration::from_secs(60);
    match now.duration_since(at) {
        Ok(age) if age <= reuse.max_age => Ok(()),
        Ok(age) => Err(format!(
            "the attestation is {}s old, more than {}s",
            age.as_secs(),
            reuse.max_age.as_secs()
        )),
        Err(e) if e.duration() <= skew => Ok(()),
        Err(_) => Err("the attestation's timeVerified is in the future".into()),
    }
}

/// Promote a trusted digest to `target`. In this order, every check before the first write:
/// the environment exists; when it requires one, a signed approval by one of its approvers
/// verifies for exactly this digest, repository and environment (`approval`); the pipeline's
/// signature and promotion attestation verify with `key`; the gate (when given) passes now with
/// the target environment's rules, unless its `reuse` condition holds; the order holds. Then the
/// approval is recorded in the trusted repository and the digest is retagged. A tag in `image`
/// is resolved once.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(level = "debug", skip_all, fields(image = %image, environment = target))]
pub async fn promote_to_environment(
    reg: &dyn Registry,
    image: &ImageRef,
    envs: &Environments,
    target: &str,
    opts: &RetagOptions,
    key: &PublicKey,
    gate_check: Option<GateCheck<'_>>,
    approval: Option<ApprovalCheck<'_>>,
) -> Result<EnvironmentPromotion, EnvError> {
    let env = envs.get(target)?;
    let raw = manifest_of(reg, image).await?;
    let pinned = image.pinned(raw.digest.clone());
    let mut opts = opts.clone();
    let approved = if env.approval_required {
        let Some(a) = approval else {
            return Err(EnvError::ApprovalMissing(format!(
                "{} requires a signed approval and no approvals repository was given",
                env.name
            )));
        };
        let v = verify_approval(reg, a.approvals, &pinned, envs, env, a.keys).await?;
        match (&v.predicate.build, &opts.build) {
            (Some(signed), Some(asked)) if signed != asked => {
                return Err(EnvError::ApprovalInvalid(format!(
                    "the approval by {} is for build {signed:?}, not {asked:?}",
                    v.approver
                )));
            }
            (Some(signed), _) => opts.build = Some(signed.clone()),
            (None, _) => {}
        }
        Some(v)
    } else {
        None
    };
    let either = VerifyOptions {
        require: crate::sign::verify::Require::Either,
        identity: None,
    };
    let verified = verify_image(reg, &pinned, key, &either).await?;
    // The promotion attestation: the signed record that this digest passed the gate.
    let attestation = crate::sign::attest::verify(reg, &pinned, key, &raw.digest).await?;
    let mut gate_skipped = None;
    let verdict = match gate_check {
        Some(g) => {
            let covered = g
                .reuse
                .as_ref()
                .map(|r| attestation_covers(&attestation.predicate, r, g.clock.now()));
            if let Some(Ok(())) = covered {
                gate_skipped = Some(
                    "the pipeline's promotion attestation records this policy passing the \
                     digest moments ago"
                        .to_owned(),
                );
                None
            } else {
                if let Some(Err(why)) = &covered {
                    tracing::info!(why = %why, "gate re-runs");
                }
                let selection = select(reg, &pinned, &g.limits)
                    .await
                    .map_err(gate::GateError::from)?;
                let account = g.account.as_deref();
                Some(
                    gate::require_passed(&selection, &pinned, account, g.source, &g.rules, g.clock)
                        .await?,
                )
            }
        }
        None => None,
    };
    // Checked by retag too, but before the approval is recorded.
    retag::check_retag(reg, &pinned, envs, target, &opts).await?;
    let approval = match approved {
        Some(v) => {
            let recorded = record_approval(reg, image, envs, &v).await?;
            Some(ApprovalSummary {
                manifest: v.manifest,
                recorded,
                approver: v.approver,
                approved_at: v.predicate.approved_at,
            })
        }
        None => None,
    };
    let retagged = retag(reg, &pinned, envs, target, &opts).await?;
    Ok(EnvironmentPromotion {
        operation: "promote-environment",
        approval,
        signature: SignatureSummary::from(&verified),
        attestation: attestation.manifest,
        gate: verdict,
        gate_skipped,
        retag: retagged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::gate::{FileSource, Policy};
    use crate::manifest::ManifestDoc;
    use crate::registry::memory::MemoryRegistry;
    use crate::sign::Signer as _;
    use crate::sign::local::LocalSigner;
    use crate::sign::store::{SignMode, SignOptions, sign_image};

    fn repo() -> ImageRef {
        "registry.test/trusted/app".parse().unwrap()
    }

    /// A signed two-platform index tagged for `dev`; returns it pinned and its amd64 child.
    async fn signed_dev_image(reg: &MemoryRegistry, key: &LocalSigner) -> (ImageRef, Digest) {
        let raw = crate::annotate::tests::promoted_index(reg, &repo().with_tag("1"));
        let img = repo().pinned(raw.digest.clone());
        let opts = SignOptions {
            mode: SignMode::Both,
            ..SignOptions::default()
        };
        sign_image(reg, &img, key, &opts).await.unwrap();
        crate::sign::attest::attest_image(
            reg,
            &img,
            key,
            &Default::default(),
            "2026-12-04T00:00:00Z",
        )
        .await
        .unwrap();
        let envs = Environments::default();
        let o = RetagOptions {
            build: Some("5".into()),
            ..RetagOptions::default()
        };
        retag(reg, &img, &envs, "dev", &o).await.unwrap();
        let (doc, _, _) = ManifestDoc::parse(&raw.bytes, None).unwrap();
        (img, doc.manifests[0].digest.clone())
    }

    fn high_finding_on(digest: &Digest) -> FileSource {
        FileSource::from_json(&format!(
            r#"{{"findings":[{{"findingArn":"arn:aws:inspector2:us-east-1:123456789012:finding/f1",
            "severity":"HIGH","status":"ACTIVE","type":"PACKAGE_VULNERABILITY","fixAvailable":"YES",
            "packageVulnerabilityDetails":{{"vulnerabilityId":"CVE-2026-0001","source":"NVD",
              "vulnerablePackages":[{{"name":"openssl","version":"3.0.13"}}]}},
            "resources":[{{"id":"x","type":"AWS_ECR_CONTAINER_IMAGE","details":{{"awsEcrContainerImage":
              {{"imageHash":"{digest}","repositoryName":"trusted/app","registry":"123456789012"}}}}}}]}}]}}"#
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn verifies_then_gates_with_the_target_environments_rules_then_retags() {
        let reg = MemoryRegistry::new();
        let key = LocalSigner::generate_p256();
        let (img, amd64) = signed_dev_image(&reg, &key).await;
        let envs = Environments::default();
        let source = high_finding_on(&amd64);
        // HIGH blocks only in prod.
        let policy =
            Policy::parse("block_severities: [CRITICAL]\nenvironments:\n  prod: {block_severities: [CRITICAL, HIGH]}\n")
                .unwrap();
        let check = |env: &str| GateCheck {
            source: &source,
            rules: policy.rules(Some(env)),
            clock: &SystemClock,
            account: None,
            limits: Limits::default(),
            reuse: None,
        };
        let approvals: ImageRef = "registry.test/approvals/app".parse().unwrap();
        let approver = LocalSigner::generate_p256();
        let mut keys = ApproverKeys::default();
        keys.insert("staging", "qa-lead", approver.public_key().clone());
        keys.insert("prod", "qa-lead", approver.public_key().clone());
        let with = || {
            Some(ApprovalCheck {
                approvals: &approvals,
                keys: &keys,
            })
        };
        // No approval yet: refused before anything else, nothing written.
        let err = promote_to_environment(
            &reg,
            &img,
            &envs,
            "staging",
            &RetagOptions::default(),
            key.public_key(),
            Some(check("staging")),
            with(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::ApprovalMissing, "{err}");
        let err = promote_to_environment(
            &reg,
            &img,
            &envs,
            "staging",
            &RetagOptions::default(),
            key.public_key(),
            Some(check("staging")),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("requires a signed approval"),
            "{err}"
        );
        for env in ["staging", "prod"] {
            let input = ApprovalInput {
                environment: env,
                build: None,
                approved_by: None,
                time: "2026-12-04T11:00:00Z",
            };
            push_approval(&reg, &img, &approvals, &envs, &input, &approver)
                .await
                .unwrap();
        }
        assert!(reg.tags(&repo()).iter().all(|t| !t.starts_with("staging-")));
        let done = promote_to_environment(
            &reg,
            &img,
            &envs,
            "staging",
            &RetagOptions::default(),
            key.public_key(),
            Some(check("staging")),
            with(),
        )
        .await
        .unwrap();
        let a = done.approval.as_ref().expect("approval verified");
        assert_eq!(a.approver, "qa-lead");
        // The approval travels with the image: a referrer of the digest in trusted.
        let in_trusted = verify_approval(
            &reg,
            &repo(),
            &img,
            &envs,
            envs.get("staging").unwrap(),
            &keys,
        )
        .await
        .unwrap();
        assert_eq!(in_trusted.approver, "qa-lead");
        assert_eq!(done.retag.tags[0].tag, "staging-5");
        assert!(done.signature.valid >= 1);
        assert_eq!(
            done.gate
                .as_ref()
                .unwrap()
                .counts
                .get(&crate::gate::Severity::High),
            Some(&1)
        );

        let err = promote_to_environment(
            &reg,
            &img,
            &envs,
            "prod",
            &RetagOptions::default(),
            key.public_key(),
            Some(check("prod")),
            with(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::GateDenied, "{err}");
        assert!(err.to_string().contains("CVE-2026-0001"), "{err}");
        assert_eq!(
            reg.tag(&repo(), "prod-5"),
            None,
            "nothing tagged on a denial"
        );
    }

    #[tokio::test]
    async fn a_foreign_bundle_does_not_hide_the_pipelines_legacy_signature_from_it() {
        // A preserved upstream digest: upstream's bundle, and the pipeline signing legacy only.
        let reg = MemoryRegistry::new();
        let raw = crate::annotate::tests::promoted_index(&reg, &repo().with_tag("1"));
        let img = repo().pinned(raw.digest.clone());
        let upstream = LocalSigner::generate_p256();
        let bundle_only = SignOptions {
            mode: SignMode::Bundle,
            top_only: true,
            ..SignOptions::default()
        };
        sign_image(&reg, &img, &upstream, &bundle_only)
            .await
            .unwrap();
        let key = LocalSigner::generate_p256();
        let legacy = SignOptions {
            mode: SignMode::Legacy,
            ..SignOptions::default()
        };
        sign_image(&reg, &img, &key, &legacy).await.unwrap();
        crate::sign::attest::attest_image(&reg, &img, &key, &Default::default(), "t")
            .await
            .unwrap();
        let done = promote_to_environment(
            &reg,
            &img,
            &Environments::default(),
            "dev",
            &RetagOptions {
                build: Some("7".into()),
                ..RetagOptions::default()
            },
            key.public_key(),
            None,
            None,
        )
        .await
        .unwrap();
        assert_eq!(done.retag.tags[0].tag, "dev-7");
    }

    #[tokio::test]
    async fn a_missing_or_foreign_signature_is_refused_and_nothing_is_tagged() {
        let reg = MemoryRegistry::new();
        let raw = crate::annotate::tests::index(&reg, &repo().with_tag("1"));
        let img = repo().pinned(raw.digest.clone());
        let envs = Environments::default();
        let key = LocalSigner::generate_p256();
        let err = promote_to_environment(
            &reg,
            &img,
            &envs,
            "dev",
            &RetagOptions::default(),
            key.public_key(),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::SignatureMissing, "{err}");

        let stranger = LocalSigner::generate_p256();
        sign_image(&reg, &img, &stranger, &SignOptions::default())
            .await
            .unwrap();
        let err = promote_to_environment(
            &reg,
            &img,
            &envs,
            "dev",
            &RetagOptions::default(),
            key.public_key(),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::SignatureInvalid, "{err}");

        // Signed by the pipeline's key, but with no promotion attestation: refused too.
        sign_image(&reg, &img, &key, &SignOptions::default())
            .await
            .unwrap();
        let err = promote_to_environment(
            &reg,
            &img,
            &envs,
            "dev",
            &RetagOptions::default(),
            key.public_key(),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::SignatureMissing, "{err}");
        assert!(err.to_string().contains("promotion attestation"), "{err}");
        assert!(
            reg.tags(&repo()).iter().all(|t| !t.starts_with("dev-")),
            "{:?}",
            reg.tags(&repo())
        );
    }

    #[tokio::test]
    async fn a_fresh_attestation_of_the_same_policy_stands_in_for_the_gate_and_nothing_else_does() {
        let reg = MemoryRegistry::new();
        let key = LocalSigner::generate_p256();
        let raw = crate::annotate::tests::promoted_index(&reg, &repo().with_tag("1"));
        let img = repo().pinned(raw.digest.clone());
        sign_image(&reg, &img, &key, &SignOptions::default())
            .await
            .unwrap();
        let now = crate::gate::time::rfc3339(crate::clock::Clock::now(&SystemClock));
        crate::sign::attest::attest_image(&reg, &img, &key, &Default::default(), &now)
            .await
            .unwrap();
        let (doc, _, _) = ManifestDoc::parse(&raw.bytes, None).unwrap();
        // A blocking finding now: only a real re-run sees it.
        let source = high_finding_on(&doc.manifests[0].digest);
        let policy = Policy::parse("block_severities: [HIGH]").unwrap();
        // What `promoted_index` records as the policy's digest.
        let recorded = Digest::of(b"policy");
        let run = |reuse: Option<GateReuse>| {
            let (reg, img, key, source, policy) = (&reg, &img, &key, &source, &policy);
            async move {
                promote_to_environment(
                    reg,
                    img,
                    &Environments::default(),
                    "dev",
                    &RetagOptions {
                        build: Some("3".into()),
                        ..RetagOptions::default()
                    },
                    key.public_key(),
                    Some(GateCheck {
                        source,
                        rules: policy.rules(Some("dev")),
                        clock: &SystemClock,
                        account: None,
                        limits: Limits::default(),
                        reuse,
                    }),
                    None,
                )
                .await
            }
        };
        let hour = std::time::Duration::from_secs(3600);
        // Another policy than the attested one, or no reuse asked: the gate re-runs and denies.
        for reuse in [
            None,
            Some(GateReuse {
                policy_digest: Digest::of(b"another policy"),
                max_age: hour,
            }),
            Some(GateReuse {
                policy_digest: recorded.clone(),
                max_age: std::time::Duration::ZERO,
            }),
        ] {
            let err = run(reuse).await.unwrap_err();
            assert_eq!(err.error_type(), ErrorType::GateDenied, "{err}");
        }
        assert!(reg.tag(&repo(), "dev-3").is_none());
        let done = run(Some(GateReuse {
            policy_digest: recorded,
            max_age: hour,
        }))
        .await
        .unwrap();
        assert!(done.gate.is_none());
        assert!(done.gate_skipped.is_some());
        assert_eq!(done.retag.tags[0].tag, "dev-3");
    }

    #[tokio::test]
    async fn the_signed_build_id_wins_and_a_request_for_another_is_refused() {
        let reg = MemoryRegistry::new();
        let key = LocalSigner::generate_p256();
        let (img, _) = signed_dev_image(&reg, &key).await;
        let envs = Environments::default();
        let approvals: ImageRef = "registry.test/approvals/app".parse().unwrap();
        let approver = LocalSigner::generate_p256();
        let mut keys = ApproverKeys::default();
        keys.insert("staging", "qa-lead", approver.public_key().clone());
        let input = ApprovalInput {
            environment: "staging",
            build: Some("5"),
            approved_by: None,
            time: "2026-12-04T11:00:00Z",
        };
        push_approval(&reg, &img, &approvals, &envs, &input, &approver)
            .await
            .unwrap();
        let run = |build: &str| {
            let opts = RetagOptions {
                build: Some(build.into()),
                ..RetagOptions::default()
            };
            let (reg, img, envs, key, approvals, keys) =
                (&reg, &img, &envs, &key, &approvals, &keys);
            async move {
                promote_to_environment(
                    reg,
                    img,
                    envs,
                    "staging",
                    &opts,
                    key.public_key(),
                    None,
                    Some(ApprovalCheck { approvals, keys }),
                )
                .await
            }
        };
        let err = run("6").await.unwrap_err();
        assert_eq!(err.error_type(), ErrorType::ApprovalInvalid, "{err}");
        assert!(err.to_string().contains("is for build \"5\""), "{err}");
        assert_eq!(reg.tag(&repo(), "staging-6"), None);
        assert_eq!(run("5").await.unwrap().retag.tags[0].tag, "staging-5");
    }
}
