//! sign: sign the trusted digest (and each platform manifest) with the pipeline's key, in the
//! configured formats, then attest the promotion (a signed SLSA Verification Summary).

use super::{PipelineError, Repositories, pinned};
use crate::clock::Clock;
use crate::gate::time::rfc3339;
use crate::mutate::Entries;
use crate::registry::Registry;
use crate::selection::Limits;
use crate::sign::CLAIM_SOURCE_DIGEST;
use crate::sign::Signer;
use crate::sign::attest::{AttestInput, GateRecord, attest_image};
use crate::sign::store::{RouteOutcome, SignMode, SignOptions, sign_image};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Input of sign.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRequest {
    /// The trusted image, pinned.
    pub image: String,
    /// The quarantined image it was promoted from (recorded in the attestation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    /// promote-and-annotate's gate record (recorded in the attestation; its summary must be
    /// the one the image records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
    /// promote-and-annotate's `claims`: for a digest-preserving promotion, what the image would
    /// have recorded, signed as claims instead (its source digest must be the image's digest);
    /// empty otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// Result of sign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignResult {
    /// The signed image, pinned.
    pub image: String,
    /// Digests signed (the index and each platform).
    pub digests_signed: usize,
    /// Signatures written now (0 on a repeat).
    pub signatures_created: usize,
    /// Whether the promotion attestation was written now (false on a repeat).
    pub attestation_created: bool,
    /// Fallbacks an operator should know about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Sign the trusted digest (and each platform), then attest the promotion. The claims carry
/// the annotations the image already has (source, gate summary, policy digest), not anything
/// from the request; the request's gate record and quarantine image only add detail to the
/// attestation, and a gate record that disagrees with the image is refused.
pub async fn sign(
    reg: &dyn Registry,
    repos: &Repositories,
    signer: &dyn Signer,
    mode: SignMode,
    clock: &dyn Clock,
    req: &SignRequest,
) -> Result<SignResult, PipelineError> {
    let image = pinned("image", &req.image)?;
    let app = repos.in_trusted(&image, "image")?;
    let quarantine = match &req.quarantine {
        Some(q) => {
            let q = pinned("quarantine", q)?;
            if repos.in_quarantine(&q, "quarantine")? != app {
                return Err(PipelineError::Input(format!(
                    "quarantine: {q} is not the quarantine repository of {image}'s application"
                )));
            }
            Some(q.to_string())
        }
        None => None,
    };
    let created = rfc3339(clock.now());
    // Claims from the request only for a preserved digest, whose documents cannot record them:
    // the record must name this very digest as its source.
    let preserved = !req.claims.is_empty();
    if preserved
        && req.claims.get(CLAIM_SOURCE_DIGEST).map(String::as_str)
            != image.digest().map(|d| d.as_str())
    {
        return Err(PipelineError::Input(format!(
            "claims: they are taken only for a digest-preserving promotion, whose \
             {CLAIM_SOURCE_DIGEST} is the image's digest ({image})"
        )));
    }
    let annotations = req
        .claims
        .iter()
        .fold(Entries::default(), |e, (k, v)| e.with_reserved(k, v));
    // The trusted digest passed promote-and-annotate's selection under the policy's limits;
    // sign reads manifests only and is not the place to refuse it afresh.
    let opts = SignOptions {
        mode,
        limits: Limits::UNBOUNDED,
        created: created.clone(),
        annotations,
        preserved,
        ..SignOptions::default()
    };
    // The attestation first: it checks the record against the image before writing anything,
    // so a request that disagrees with what promote recorded leaves no signature behind.
    let input = AttestInput {
        gate: req.gate.as_ref(),
        quarantine: quarantine.as_deref(),
        environment: None,
        preserved: preserved.then_some(&req.claims),
    };
    let attested = attest_image(reg, &image, signer, &input, &created).await?;
    let report = sign_image(reg, &image, signer, &opts).await?;
    let mut warnings = report.warnings;
    warnings.extend(attested.warnings);
    Ok(SignResult {
        image: image.to_string(),
        digests_signed: report.signed.len(),
        signatures_created: report.signatures_created as usize,
        attestation_created: attested.outcome == RouteOutcome::Written,
        warnings,
    })
}
