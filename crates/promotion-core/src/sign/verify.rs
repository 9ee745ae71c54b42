//! Verification: find an image's signatures by every route and check each against a key.
//!
//! A signature counts when (1) it verifies over its payload with the given public key, (2) the
//! payload's `critical.type` is cosign's image-signature type and (3) its
//! `docker-manifest-digest` is the image's digest. `docker-reference` is reported, not enforced
//! (cosign ignores it too; a promoted image keeps signatures made for its repository).

use super::store::{Route, find_signatures};
use super::{Payload, PublicKey, SignError, check_payload};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::referrers::CosignTag;
use crate::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;

/// One valid signature.
#[derive(Debug, Clone, Serialize)]
pub struct ValidSignature {
    /// Where it was found.
    pub route: Route,
    /// The manifest that holds it.
    pub manifest: Digest,
}

/// The result of a successful verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Always `verify`.
    pub operation: &'static str,
    /// The image as given.
    pub image: String,
    /// The verified digest.
    pub digest: Digest,
    /// `docker-reference` of the first valid payload.
    pub docker_reference: String,
    /// The claims (`optional`) of the first valid payload.
    pub claims: BTreeMap<String, serde_json::Value>,
    /// Every valid signature.
    pub valid: Vec<ValidSignature>,
    /// Signatures found that did not verify.
    pub invalid: usize,
}

/// Verify `image` against `key`. `Signature.Missing` when there is no signature at all,
/// `Signature.Invalid` when none of those found is valid (the message says why).
#[tracing::instrument(level = "debug", skip(reg, key), fields(image = %image))]
pub async fn verify_image<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    key: &PublicKey,
) -> Result<VerifyReport, SignError> {
    let digest = match image.digest() {
        Some(d) => {
            // Pinned: still make sure the image exists.
            reg.get_manifest(image, d.as_str()).await?;
            d.clone()
        }
        None => reg.get_manifest(image, &image.reference()).await?.digest,
    };
    let found = find_signatures(reg, image, &digest).await?;
    if found.is_empty() {
        return Err(SignError::Missing(format!(
            "no signature found for {}@{digest} (referrers, {} and {})",
            image.repo_path(),
            digest.fallback_tag(),
            CosignTag::Sig.tag(&digest)
        )));
    }
    let mut valid = Vec::new();
    let mut first: Option<Payload> = None;
    let mut reasons = Vec::new();
    for f in &found {
        if !key.verify(&f.payload, &f.signature) {
            reasons.push("a signature does not verify with the key".to_owned());
            continue;
        }
        match check_payload(&f.payload, &digest) {
            Ok(p) => {
                first.get_or_insert(p);
                valid.push(ValidSignature {
                    route: f.route,
                    manifest: f.manifest.clone(),
                });
            }
            Err(why) => reasons.push(why),
        }
    }
    let Some(p) = first else {
        reasons.dedup();
        return Err(SignError::Invalid(format!(
            "no valid signature for {}@{digest}: {} found, none valid ({})",
            image.repo_path(),
            found.len(),
            reasons.join("; ")
        )));
    };
    Ok(VerifyReport {
        operation: "verify",
        image: image.to_string(),
        digest,
        docker_reference: p.docker_reference,
        claims: p.claims,
        invalid: found.len() - valid.len(),
        valid,
    })
}
