//! The promotion attestation: a signed record that *this digest passed this policy, from this
//! source, at this time* — an in-toto statement with the SLSA Verification Summary predicate
//! (`https://slsa.dev/verification_summary/v1`), signed with the pipeline's key into a Sigstore
//! bundle and stored as a referrer of the promoted digest, beside the signatures
//! ([`super::bundle`]).
//!
//! The statement's subjects are the promoted digest and each platform manifest, all named by the
//! trusted repository. The predicate is a VSA v1 (verifier, `timeVerified`, `resourceUri`, the
//! gate policy's URI and digest, `verificationResult: PASSED`, no `verifiedLevels`: the gate
//! checks vulnerability findings, not SLSA build levels) plus one field of the project's,
//! `promotion`: source reference and digest, quarantine image, the gate's summary (counts,
//! suppressed, allowlisted and blocking ids) and the environment. in-toto consumers ignore
//! fields they do not know.
//!
//! What the attestation says comes from the promoted image itself (the source and gate summary
//! promote-and-annotate recorded in its annotations) and from the promote step's result; when
//! the two disagree nothing is signed. An image that records no passing gate gets no attestation.
//! Environment promotion requires a valid attestation by the pipeline's key ([`verify`]).

use super::bundle::{self, Bundle};
use super::dsse::{self, Statement, Subject};
use super::store::RouteOutcome;
use super::{CLAIM_GATE, CLAIM_POLICY_DIGEST, CLAIM_SOURCE_DIGEST, CLAIM_SOURCE_NAME, PublicKey};
use super::{SignError, Signer};
use crate::digest::Digest;
use crate::gate::Verdict;
use crate::manifest::RawManifest;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};
use crate::selection::{Limits, select};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The predicate type of a SLSA Verification Summary Attestation v1.
pub const VSA_PREDICATE: &str = "https://slsa.dev/verification_summary/v1";
/// `verifier.id` of our attestations.
pub const VERIFIER_ID: &str = "urn:ecr-promotion:pipeline";
/// `policy.uri` of our attestations: the gate policy document, identified by its digest.
pub const POLICY_URI: &str = "urn:ecr-promotion:gate-policy";

/// The gate's summary as the attestation records it (from the promote step's verdict).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateRecord {
    /// `Verdict::compact`, as the image's `io.ecr-promotion.gate` annotation records it.
    pub summary: String,
    /// ACTIVE findings by severity (UNTRIAGED included).
    #[serde(default)]
    pub counts: BTreeMap<String, u32>,
    /// SUPPRESSED findings.
    #[serde(default)]
    pub suppressed: u32,
    /// Allowlist entries that accepted findings (`id` of each).
    #[serde(default)]
    pub allowlisted: Vec<String>,
    /// Blocking ids (empty for a promoted image).
    #[serde(default)]
    pub blocking: Vec<String>,
}

impl From<&Verdict> for GateRecord {
    fn from(v: &Verdict) -> Self {
        GateRecord {
            summary: v.compact(),
            counts: v
                .counts
                .iter()
                .map(|(s, n)| (s.as_str().to_owned(), *n))
                .collect(),
            suppressed: v.suppressed,
            allowlisted: v.allowlisted.iter().map(|a| a.id.clone()).collect(),
            blocking: v.blocking_ids.clone(),
        }
    }
}

/// What the attestation records besides the digests (the predicate's `promotion` field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The original source as given (`reg/incoming/app:1.4.2`).
    pub source: String,
    /// The digest promoted from (the quarantined digest, equal to the source's).
    pub source_digest: String,
    /// The quarantined image, pinned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    /// The gate.
    pub gate: GateRecord,
    /// The environment the promotion was for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// What [`attest_image`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AttestReport {
    /// The attested digest.
    pub digest: Digest,
    /// Written, or already present.
    pub outcome: RouteOutcome,
    /// The bundle referrer holding it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Digest>,
    /// Anything an operator should know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The statement for `top` (and `platforms`) in repository `name`.
pub fn statement(
    name: &str,
    top: &Digest,
    platforms: &[Digest],
    policy_digest: &Digest,
    promotion: &Promotion,
    time: &str,
) -> Statement {
    let none = BTreeMap::new();
    let subject = std::iter::once(top)
        .chain(platforms)
        .map(|d| Subject::new(name, d, &none))
        .collect();
    let predicate = serde_json::json!({
        "verifier": {
            "id": VERIFIER_ID,
            "version": {"ecr-promotion": env!("CARGO_PKG_VERSION")},
        },
        "timeVerified": time,
        "resourceUri": format!("{name}@{top}"),
        "policy": {
            "uri": POLICY_URI,
            "digest": {"sha256": policy_digest.hex()},
        },
        "verificationResult": "PASSED",
        "verifiedLevels": [],
        "slsaVersion": "1.0",
        "promotion": promotion,
    });
    Statement::new(subject, VSA_PREDICATE, predicate)
}

/// What [`attest_image`] records besides what the image itself says.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttestInput<'a> {
    /// The promote step's gate record; its summary must be the one the image records.
    pub gate: Option<&'a GateRecord>,
    /// The quarantined image, pinned.
    pub quarantine: Option<&'a str>,
    /// The environment.
    pub environment: Option<&'a str>,
    /// For a preserved digest: the record the image would have carried (source, source digest,
    /// gate summary, policy digest), used instead of its (upstream) annotations. Its source
    /// digest must be the attested digest.
    pub preserved: Option<&'a BTreeMap<String, String>>,
}

/// Attest the promoted `image` (pinned or tagged; its digest is attested) with `signer`.
/// Without a gate record the attestation holds the summary alone. Idempotent: a valid
/// attestation by this key for this digest is left alone.
pub async fn attest_image<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    signer: &dyn Signer,
    input: &AttestInput<'_>,
    created: &str,
) -> Result<AttestReport, SignError> {
    let (gate, quarantine, environment) = (input.gate, input.quarantine, input.environment);
    let selection = select(reg, image, &Limits::UNBOUNDED).await?;
    let top = selection.top();
    let recorded = input.preserved.unwrap_or(&top.doc.annotations);
    if input.preserved.is_some()
        && recorded.get(CLAIM_SOURCE_DIGEST).map(String::as_str) != Some(top.raw.digest.as_str())
    {
        return Err(SignError::Input(format!(
            "the preserved record names the source digest {:?}, not {}",
            recorded.get(CLAIM_SOURCE_DIGEST),
            top.raw.digest
        )));
    }
    let name = image.repo_path();
    let refuse = |why: String| {
        SignError::Input(format!(
            "{name}@{} gets no promotion attestation: {why}",
            top.raw.digest
        ))
    };
    let summary = recorded
        .get(CLAIM_GATE)
        .filter(|s| s.starts_with("PASSED"))
        .ok_or_else(|| refuse(format!("it records no passing gate ({CLAIM_GATE})")))?;
    let policy: Digest = recorded
        .get(CLAIM_POLICY_DIGEST)
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| {
            refuse(format!(
                "it records no policy digest ({CLAIM_POLICY_DIGEST})"
            ))
        })?;
    let gate = match gate {
        Some(g) if &g.summary != summary => {
            return Err(refuse(format!(
                "the gate record given ({:?}) is not the summary the image records ({summary:?})",
                g.summary
            )));
        }
        Some(g) => g.clone(),
        None => GateRecord {
            summary: summary.clone(),
            ..GateRecord::default()
        },
    };
    let promotion = Promotion {
        source: recorded.get(CLAIM_SOURCE_NAME).cloned().unwrap_or_default(),
        source_digest: recorded
            .get(CLAIM_SOURCE_DIGEST)
            .cloned()
            .unwrap_or_default(),
        quarantine: quarantine.map(str::to_owned),
        gate,
        environment: environment.map(str::to_owned),
    };

    let key = signer.public_key();
    let digest = top.raw.digest.clone();
    match verify(reg, image, key, &digest).await {
        Ok(found) => {
            return Ok(AttestReport {
                digest,
                outcome: RouteOutcome::Present,
                referrer: Some(found.manifest),
                warnings: Vec::new(),
            });
        }
        // None valid by this key: write one. A registry failure is not "none": no duplicate.
        Err(SignError::Missing(_) | SignError::Invalid(_)) => {}
        Err(e) => return Err(e),
    }
    let platforms: Vec<Digest> = selection
        .images()
        .filter(|m| m.raw.digest != digest)
        .map(|m| m.raw.digest.clone())
        .collect();
    let st = statement(&name, &digest, &platforms, &policy, &promotion, created);
    let envelope = dsse::seal(&st, signer).await?;
    let b = Bundle::new(envelope, key)?;
    let subject: &RawManifest = &top.raw;
    match bundle::push(reg, image, subject, &b, VSA_PREDICATE, created).await {
        Ok(d) => Ok(AttestReport {
            digest,
            outcome: RouteOutcome::Written,
            referrer: Some(d),
            warnings: Vec::new(),
        }),
        Err(SignError::Registry(RegistryError::Protocol { detail, .. }))
            if detail.starts_with("HTTP 405") =>
        {
            let w = format!(
                "the registry refused the promotion attestation as a referrer of {digest} (HTTP 405, \
                 as ECR does for some index subjects); environment promotion will refuse the image"
            );
            tracing::warn!(digest = %digest, "{w}");
            Ok(AttestReport {
                digest,
                outcome: RouteOutcome::Refused,
                referrer: None,
                warnings: vec![w],
            })
        }
        Err(e) => Err(e),
    }
}

/// A verified promotion attestation.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedAttestation {
    /// The attested digest.
    pub digest: Digest,
    /// The bundle referrer holding it.
    pub manifest: Digest,
    /// The statement's predicate (the VSA).
    pub predicate: serde_json::Value,
}

/// The promotion attestation of `digest` in `image`'s repository: a bundle by `key` whose
/// statement is a VSA with result `PASSED` about `digest`, naming the repository.
/// `Signature.Missing` when there is none at all, `Signature.Invalid` when none is valid.
pub async fn verify<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    key: &PublicKey,
    digest: &Digest,
) -> Result<VerifiedAttestation, SignError> {
    verify_naming(reg, image, key, digest, &image.repo_path()).await
}

/// As [`verify`], for an attestation that must name repository `name` (a replica checked
/// against the repository it was promoted into).
pub async fn verify_naming<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    key: &PublicKey,
    digest: &Digest,
    name: &str,
) -> Result<VerifiedAttestation, SignError> {
    let name = name.to_owned();
    let found = bundle::find(reg, image, digest).await?;
    let mut reasons = Vec::new();
    let mut candidates = 0;
    for f in &found.found {
        let Ok(st) = f.open(key, digest) else {
            // Signatures, others' bundles: not a promotion attestation by this key.
            continue;
        };
        if st.predicate_type != VSA_PREDICATE {
            continue;
        }
        candidates += 1;
        let subject = st.subject_for(digest).map(|s| s.name.as_str());
        if subject != Some(name.as_str()) {
            reasons.push(format!(
                "it names {:?}, not {name:?}",
                subject.unwrap_or_default()
            ));
            continue;
        }
        let result = st.predicate["verificationResult"]
            .as_str()
            .unwrap_or_default();
        if result != "PASSED" {
            reasons.push(format!("its verificationResult is {result:?}"));
            continue;
        }
        return Ok(VerifiedAttestation {
            digest: digest.clone(),
            manifest: f.manifest.clone(),
            predicate: st.predicate,
        });
    }
    if candidates == 0 {
        return Err(SignError::Missing(format!(
            "no promotion attestation ({VSA_PREDICATE}) by the key for {name}@{digest} \
             ({} bundle referrer(s) found)",
            found.referrers
        )));
    }
    Err(SignError::Invalid(format!(
        "no valid promotion attestation for {name}@{digest}: {}",
        reasons.join("; ")
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorType};
    use crate::registry::memory::MemoryRegistry;
    use crate::sign::local::LocalSigner;

    const T: &str = "2026-12-04T10:00:00Z";

    fn img() -> ImageRef {
        "reg.example/trusted/app:1".parse().unwrap()
    }

    fn input<'a>(
        gate: Option<&'a GateRecord>,
        quarantine: Option<&'a str>,
        environment: Option<&'a str>,
    ) -> AttestInput<'a> {
        AttestInput {
            gate,
            quarantine,
            environment,
            preserved: None,
        }
    }

    fn record() -> GateRecord {
        GateRecord {
            summary: "PASSED CRITICAL=0 HIGH=0 MEDIUM=1 LOW=0 UNTRIAGED=0 suppressed=0".into(),
            counts: BTreeMap::from([("MEDIUM".into(), 1)]),
            suppressed: 0,
            allowlisted: vec!["CVE-2026-0002".into()],
            blocking: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_promoted_image_is_attested_once_with_what_it_records() {
        let reg = MemoryRegistry::new();
        let raw = crate::annotate::tests::promoted_index(&reg, &img());
        let key = LocalSigner::generate_p256();
        let q = format!("reg.example/quarantine/app@{}", raw.digest);
        let rep = attest_image(
            &reg,
            &img(),
            &key,
            &input(Some(&record()), Some(&q), Some("dev")),
            T,
        )
        .await
        .unwrap();
        assert_eq!(rep.outcome, RouteOutcome::Written);

        let v = verify(&reg, &img(), key.public_key(), &raw.digest)
            .await
            .unwrap();
        let p = &v.predicate;
        assert_eq!(p["verificationResult"], "PASSED");
        assert_eq!(p["verifier"]["id"], VERIFIER_ID);
        assert_eq!(p["timeVerified"], T);
        assert_eq!(p["policy"]["digest"]["sha256"], Digest::of(b"policy").hex());
        assert_eq!(p["verifiedLevels"], serde_json::json!([]));
        assert_eq!(p["promotion"]["source"], "upstream.example/app:1");
        assert_eq!(p["promotion"]["quarantine"], q.as_str());
        assert_eq!(p["promotion"]["gate"]["allowlisted"][0], "CVE-2026-0002");
        assert_eq!(p["promotion"]["environment"], "dev");
        // The statement's subjects: the index and both platforms, named by the repository.
        let found = bundle::find(&reg, &img(), &raw.digest).await.unwrap();
        let st = found.found[0].open(key.public_key(), &raw.digest).unwrap();
        assert_eq!(st.subject.len(), 3);
        assert!(
            st.subject
                .iter()
                .all(|s| s.name == "reg.example/trusted/app")
        );

        // A re-run writes nothing.
        let puts = reg.calls().manifest_puts;
        let again = attest_image(
            &reg,
            &img(),
            &key,
            &input(Some(&record()), Some(&q), None),
            "later",
        )
        .await
        .unwrap();
        assert_eq!(again.outcome, RouteOutcome::Present);
        assert_eq!(reg.calls().manifest_puts, puts);

        // Another key finds no attestation of its own.
        let other = LocalSigner::generate_p256();
        let e = verify(&reg, &img(), other.public_key(), &raw.digest)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureMissing, "{e}");
    }

    #[tokio::test]
    async fn unpromoted_images_and_disagreeing_records_get_no_attestation() {
        let reg = MemoryRegistry::new();
        let key = LocalSigner::generate_p256();
        crate::annotate::tests::index(&reg, &img());
        let e = attest_image(&reg, &img(), &key, &AttestInput::default(), T)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::InputInvalid);
        assert!(e.to_string().contains("no passing gate"), "{e}");

        let reg = MemoryRegistry::new();
        crate::annotate::tests::promoted_index(&reg, &img());
        let lie = GateRecord {
            summary: "PASSED CRITICAL=0 HIGH=0 MEDIUM=0 LOW=0 UNTRIAGED=0 suppressed=0".into(),
            ..record()
        };
        let e = attest_image(&reg, &img(), &key, &input(Some(&lie), None, None), T)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("is not the summary the image records"),
            "{e}"
        );
        assert_eq!(reg.calls().manifest_puts, 0, "nothing written");
    }

    #[tokio::test]
    async fn a_failed_or_misdirected_attestation_by_the_key_is_refused() {
        let reg = MemoryRegistry::new();
        let raw = crate::annotate::tests::promoted_index(&reg, &img());
        let key = LocalSigner::generate_p256();
        let name = img().repo_path();
        let mut st = statement(
            &name,
            &raw.digest,
            &[],
            &Digest::of(b"policy"),
            &Promotion::default(),
            T,
        );
        st.predicate["verificationResult"] = "FAILED".into();
        let b = Bundle::new(dsse::seal(&st, &key).await.unwrap(), key.public_key()).unwrap();
        bundle::push(&reg, &img(), &raw, &b, VSA_PREDICATE, T)
            .await
            .unwrap();
        let e = verify(&reg, &img(), key.public_key(), &raw.digest)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureInvalid, "{e}");
        assert!(e.to_string().contains("FAILED"), "{e}");

        let reg = MemoryRegistry::new();
        let raw = crate::annotate::tests::promoted_index(&reg, &img());
        let st = statement(
            "reg.example/trusted/other",
            &raw.digest,
            &[],
            &Digest::of(b"policy"),
            &Promotion::default(),
            T,
        );
        let b = Bundle::new(dsse::seal(&st, &key).await.unwrap(), key.public_key()).unwrap();
        bundle::push(&reg, &img(), &raw, &b, VSA_PREDICATE, T)
            .await
            .unwrap();
        let e = verify(&reg, &img(), key.public_key(), &raw.digest)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("trusted/other"), "{e}");
    }
}
