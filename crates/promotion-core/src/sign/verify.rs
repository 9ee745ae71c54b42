//! Verification, the way cosign v3 reads signatures: Sigstore bundles first; the legacy
//! simple-signing signatures only when the image has no bundle at all — unless the caller
//! requires a format ([`Require`]).
//!
//! A bundle counts when its DSSE envelope verifies with the key, its statement's predicate type is
//! cosign's signature type, one subject is the image's digest, and that subject names the
//! expected repository (the identity). A legacy signature counts when it verifies over its
//! payload, the payload's `critical.type` is cosign's image-signature type, its
//! `docker-manifest-digest` is the image's digest and its `docker-reference` is the expected
//! repository. The identity check is ours (cosign ignores `docker-reference`): a signature made
//! for one repository does not vouch for the same digest pushed into another.

use super::bundle::{self, COSIGN_SIGN_PREDICATE};
use super::store::{Route, find_signatures_in};
use super::{PublicKey, SignError, check_payload};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::referrers::CosignTag;
use crate::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;

/// Which formats must hold a valid signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    /// cosign v3's rule: bundles when the image has any, else legacy signatures.
    #[default]
    Any,
    /// A valid bundle.
    Bundle,
    /// A valid legacy signature (what Kyverno `type: Cosign`, skopeo and Harbor read).
    Legacy,
    /// Both.
    Both,
    /// A valid signature in either format, whatever else the image carries: the pipeline's
    /// own check before environment promotion (a foreign bundle must not hide our legacy
    /// signature from it, as it does from cosign v3).
    Either,
}

impl std::str::FromStr for Require {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Require::Any),
            "bundle" => Ok(Require::Bundle),
            "legacy" => Ok(Require::Legacy),
            "both" => Ok(Require::Both),
            "either" => Ok(Require::Either),
            _ => Err(format!(
                "invalid requirement {s:?}: expected any, bundle, legacy, both or either"
            )),
        }
    }
}

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Which formats must verify.
    pub require: Require,
    /// The repository (`registry/repository`) the signatures must name; default: the image's.
    pub identity: Option<String>,
}

/// The format of a valid signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Sigstore bundle referrer.
    Bundle,
    /// A simple-signing signature (`.sig` tag, or an earlier version's OCI 1.1 referrer).
    Legacy,
}

/// One valid signature.
#[derive(Debug, Clone, Serialize)]
pub struct ValidSignature {
    /// Its format.
    pub format: Format,
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
    /// The repository the valid signatures name.
    pub identity: String,
    /// The formats that verified.
    pub verified: Vec<Format>,
    /// The claims of the first valid signature (subject annotations, or legacy `optional`).
    pub claims: BTreeMap<String, serde_json::Value>,
    /// Every valid signature.
    pub valid: Vec<ValidSignature>,
    /// Signatures found that did not verify.
    pub invalid: usize,
}

struct Checked {
    valid: Vec<(ValidSignature, BTreeMap<String, serde_json::Value>)>,
    found: usize,
    reasons: Vec<String>,
}

impl Checked {
    fn new() -> Self {
        Checked {
            valid: Vec::new(),
            found: 0,
            reasons: Vec::new(),
        }
    }
}

/// Verify `image` against `key`. `Signature.Missing` when there is no signature at all,
/// `Signature.Invalid` when what is required is not there or not valid (the message says why).
#[tracing::instrument(level = "debug", skip(reg, key, opts), fields(image = %image))]
pub async fn verify_image<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    key: &PublicKey,
    opts: &VerifyOptions,
) -> Result<VerifyReport, SignError> {
    let digest = match image.digest() {
        Some(d) => {
            // Pinned: still make sure the image exists.
            reg.get_manifest(image, d.as_str()).await?;
            d.clone()
        }
        None => reg.get_manifest(image, &image.reference()).await?.digest,
    };
    let identity = opts.identity.clone().unwrap_or_else(|| image.repo_path());
    let what = format!("{}@{digest}", image.repo_path());

    // One listing of the referrers serves both formats.
    let listing = crate::referrers::list(reg, image, &digest).await?;
    let bundles = bundle::find_in(reg, image, &listing).await?;
    let mut b = Checked::new();
    b.found = bundles.referrers;
    for f in &bundles.found {
        let st = match f.open(key, &digest) {
            Ok(st) => st,
            Err(why) => {
                b.reasons
                    .push(format!("bundle {}: {why}", short(&f.manifest)));
                continue;
            }
        };
        if st.predicate_type != COSIGN_SIGN_PREDICATE {
            // An attestation by our key (the promotion attestation) is not a signature.
            b.found -= 1;
            continue;
        }
        let Some(subject) = st.subject_for(&digest) else {
            continue;
        };
        if subject.name != identity {
            b.reasons.push(format!(
                "bundle {}: it names {:?}, not {identity:?}",
                short(&f.manifest),
                subject.name
            ));
            continue;
        }
        b.valid.push((
            ValidSignature {
                format: Format::Bundle,
                route: f.route,
                manifest: f.manifest.clone(),
            },
            subject.annotations.clone(),
        ));
    }
    if bundles.found.len() < bundles.referrers {
        b.reasons.push(format!(
            "{} bundle referrer(s) hold no DSSE bundle we can read",
            bundles.referrers - bundles.found.len()
        ));
    }

    let legacy = find_signatures_in(reg, image, &digest, &listing).await?;
    let mut l = Checked::new();
    l.found = legacy.len();
    for f in &legacy {
        if !key.verify(&f.payload, &f.signature) {
            l.reasons
                .push("a legacy signature does not verify with the key".to_owned());
            continue;
        }
        match check_payload(&f.payload, &digest) {
            Ok(p) if p.docker_reference != identity => l.reasons.push(format!(
                "a legacy signature names {:?}, not {identity:?}",
                p.docker_reference
            )),
            Ok(p) => l.valid.push((
                ValidSignature {
                    format: Format::Legacy,
                    route: f.route,
                    manifest: f.manifest.clone(),
                },
                p.claims,
            )),
            Err(why) => l.reasons.push(why),
        }
    }

    if b.found == 0 && l.found == 0 {
        return Err(SignError::Missing(format!(
            "no signature found for {what} (bundle referrers, {} and {})",
            digest.fallback_tag(),
            CosignTag::Sig.tag(&digest)
        )));
    }
    let fail = |format: &str, c: &Checked, extra: &str| {
        let mut reasons = c.reasons.clone();
        reasons.dedup();
        SignError::Invalid(format!(
            "no valid {format}signature for {what}: {} found, none valid{}{extra}",
            c.found,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join("; "))
            }
        ))
    };
    let invalid = (b.found - b.valid.len().min(b.found)) + (l.found - l.valid.len());
    let mut valid = Vec::new();
    match opts.require {
        Require::Any if b.found > 0 => {
            if b.valid.is_empty() {
                return Err(fail(
                    "bundle ",
                    &b,
                    "; the image has bundles, so legacy signatures are not read (cosign v3's rule; \
                     --require legacy reads them)",
                ));
            }
            valid.extend(b.valid);
        }
        Require::Any | Require::Legacy => {
            if l.valid.is_empty() {
                return Err(fail("legacy ", &l, ""));
            }
            valid.extend(l.valid);
        }
        Require::Bundle => {
            if b.valid.is_empty() {
                return Err(fail("bundle ", &b, ""));
            }
            valid.extend(b.valid);
        }
        Require::Either => {
            if b.valid.is_empty() && l.valid.is_empty() {
                let mut all = Checked::new();
                all.found = b.found + l.found;
                all.reasons = b.reasons.iter().chain(&l.reasons).cloned().collect();
                return Err(fail("", &all, ""));
            }
            valid.extend(b.valid);
            valid.extend(l.valid);
        }
        Require::Both => {
            if b.valid.is_empty() {
                return Err(fail("bundle ", &b, ""));
            }
            if l.valid.is_empty() {
                return Err(fail("legacy ", &l, ""));
            }
            valid.extend(b.valid);
            valid.extend(l.valid);
        }
    }
    let mut verified: Vec<Format> = Vec::new();
    for (v, _) in &valid {
        if !verified.contains(&v.format) {
            verified.push(v.format);
        }
    }
    let claims = valid.first().map(|(_, c)| c.clone()).unwrap_or_default();
    Ok(VerifyReport {
        operation: "verify",
        image: image.to_string(),
        digest,
        identity,
        verified,
        claims,
        valid: valid.into_iter().map(|(v, _)| v).collect(),
        invalid,
    })
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}
