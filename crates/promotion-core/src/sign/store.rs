//! Where signatures live, how they are written, and how they are found again.
//!
//! Two formats, each readable by the tools people run:
//!
//! - **bundle** (cosign v3's default): a Sigstore bundle v0.3 holding a DSSE envelope over an
//!   in-toto statement (predicate `https://sigstore.dev/cosign/sign/v1`) whose subject is the
//!   signed digest, named by its repository, with the claims as subject annotations; stored as an
//!   OCI 1.1 referrer ([`super::bundle`]). On a registry without the referrers API the
//!   `sha256-<hex>` fallback index is maintained by read-modify-write, without duplicates.
//! - **legacy** (cosign v1/v2's layout, which Kyverno `type: Cosign`, podman/CRI-O
//!   `sigstoreSigned`, Harbor and Flux read): one manifest at `sha256-<hex>.sig`, each
//!   simple-signing signature **appended** as a layer.
//!
//! Both is the default: cosign v3 reads the legacy tag only when an image has no bundle at all,
//! while admission controllers lag the other way.
//!
//! ECR answers 405 to a referrer whose subject is an index (containers-roadmap#2783); such a
//! signature goes to the legacy tag instead, with a warning.
//!
//! Idempotency: ECDSA signatures from KMS are randomised, so "already signed" cannot be decided by
//! comparing signature bytes. A route already holds our signature when it holds exactly our
//! statement (bundle) or payload (legacy) under a signature that verifies with our public key.
//!
//! Reading: signatures written by earlier versions as cosign's experimental OCI 1.1
//! simple-signing referrers ([`super::COSIGN_SIG_ARTIFACT`]) are still found, and count as
//! legacy signatures.

use super::bundle::{self, Bundle, COSIGN_SIGN_PREDICATE};
use super::dsse::{self, Statement, Subject};
use super::{
    COSIGN_SIG_ARTIFACT, SIGNATURE_ANNOTATION, SIMPLESIGNING, SignError, Signer, claims, payload,
};
use crate::digest::Digest;
use crate::manifest::{Kind, ManifestDoc, OCI_MANIFEST, RawManifest};
use crate::mutate::{Entries, MAX_VALUE_BYTES};
use crate::reference::ImageRef;
use crate::referrers::{
    self, CosignTag, descriptor_json, get_optional, put_small_blob, read_small_blob,
};
use crate::registry::{Registry, RegistryError};
use crate::selection::{Limits, Role, select};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;

/// Largest payload read back from a registry.
const MAX_PAYLOAD_BYTES: u64 = 1024 * 1024;
/// OCI image config media type (config of cosign's `.sig` manifests).
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Which formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignMode {
    /// A Sigstore bundle referrer only (cosign v3).
    Bundle,
    /// cosign's legacy `sha256-<hex>.sig` tag only.
    Legacy,
    /// Both (the default).
    #[default]
    Both,
}

impl std::str::FromStr for SignMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bundle" => Ok(SignMode::Bundle),
            "legacy" => Ok(SignMode::Legacy),
            "both" => Ok(SignMode::Both),
            _ => Err(format!(
                "invalid signature mode {s:?}: expected bundle, legacy or both"
            )),
        }
    }
}

/// How to sign.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Formats to write.
    pub mode: SignMode,
    /// Claims from input (validated).
    pub annotations: Entries,
    /// The gate's compact summary, when known.
    pub gate_summary: Option<String>,
    /// Sign only the top digest, not each platform manifest of an index.
    pub top_only: bool,
    /// Bounds on the image ([`crate::selection`]).
    pub limits: Limits,
    /// When, RFC 3339 (the bundle referrers' `org.opencontainers.image.created`).
    pub created: String,
    /// The digest was preserved: the documents' annotations are upstream's, not the pipeline's
    /// record, and no claim is taken from them (the record comes in `annotations`).
    pub preserved: bool,
}

/// What happened in one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteOutcome {
    /// A signature was written.
    Written,
    /// Our signature over this statement or payload was already there.
    Present,
    /// Not asked for.
    NotRequested,
    /// The registry refused (405 on an index subject); the legacy tag was used instead.
    Refused,
}

/// One signed digest.
#[derive(Debug, Clone, Serialize)]
pub struct SignedDigest {
    /// `index`, or the platform of a child.
    pub platform: String,
    /// The signed digest.
    pub digest: Digest,
    /// The bundle referrer.
    pub bundle: RouteOutcome,
    /// The legacy `.sig` tag.
    pub legacy: RouteOutcome,
    /// Digest of the bundle referrer manifest, when one holds the signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_referrer: Option<Digest>,
}

/// The result of signing.
#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    /// Always `sign`.
    pub operation: &'static str,
    /// The image as given.
    pub image: String,
    /// The top digest.
    pub digest: Digest,
    /// The signer (key id or kind; no secrets).
    pub key: String,
    /// Per digest.
    pub signed: Vec<SignedDigest>,
    /// Signatures created (0 on a re-run).
    pub signatures_created: u64,
    /// Claims signed for the top digest.
    pub claims: BTreeMap<String, String>,
    /// Anything an operator should know (fallbacks).
    pub warnings: Vec<String>,
}

/// Where a signature was found (the routes of [`referrers`]).
pub use crate::referrers::Route;

/// A legacy signature read back from the registry (not yet verified).
#[derive(Debug, Clone)]
pub struct FoundSignature {
    /// Where.
    pub route: Route,
    /// The manifest holding it.
    pub manifest: Digest,
    /// Payload bytes.
    pub payload: Bytes,
    /// Signature bytes (decoded from base64).
    pub signature: Vec<u8>,
}

/// The cosign v3 signature statement for `digest` in repository `name` with `claims`.
pub fn signature_statement(
    name: &str,
    digest: &Digest,
    claims: &BTreeMap<String, String>,
) -> Statement {
    Statement::new(
        vec![Subject::new(name, digest, claims)],
        COSIGN_SIGN_PREDICATE,
        serde_json::json!({}),
    )
}

/// Sign `image` (its top digest and, for an index, each platform manifest) with `signer`.
#[tracing::instrument(level = "debug", skip(reg, signer, opts), fields(image = %image))]
pub async fn sign_image<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    signer: &dyn Signer,
    opts: &SignOptions,
) -> Result<SignReport, SignError> {
    if let Some(g) = &opts.gate_summary
        && (g.is_empty() || g.len() > MAX_VALUE_BYTES || g.chars().any(char::is_control))
    {
        return Err(SignError::Input(format!(
            "the gate summary must be 1 to {MAX_VALUE_BYTES} bytes without control characters"
        )));
    }
    // The one selection: exactly the images the gate judged and promote wrote are signed
    // (never an attestation, never a nested index as if it were an image).
    let selection = select(reg, image, &opts.limits).await?;
    let top_member = selection.top();
    let top = top_member.raw.clone();
    let kind = if top_member.role == Role::Index {
        Kind::Index
    } else {
        Kind::Manifest
    };
    let top_name = if kind == Kind::Index {
        "index"
    } else {
        "image"
    };
    let mut targets = vec![(top_name.to_owned(), top.clone(), top_member.doc.clone())];
    if kind == Kind::Index && !opts.top_only {
        for m in selection.images() {
            targets.push((m.label(), m.raw.clone(), m.doc.clone()));
        }
    }

    let mut report = SignReport {
        operation: "sign",
        image: image.to_string(),
        digest: top.digest.clone(),
        key: signer.describe(),
        signed: Vec::new(),
        signatures_created: 0,
        claims: BTreeMap::new(),
        warnings: Vec::new(),
    };
    for (i, (platform, raw, doc)) in targets.iter().enumerate() {
        // The recorded claims (source, gate summary, policy) come from the document itself;
        // a gate summary given for signing wins.
        let none = BTreeMap::new();
        let recorded = if opts.preserved {
            &none
        } else {
            &doc.annotations
        };
        let c = claims(
            opts.annotations.as_map(),
            recorded,
            opts.gate_summary.as_deref(),
        );
        if i == 0 {
            report.claims = c.clone();
        }
        let kind = if i == 0 { kind } else { Kind::Manifest };
        let signed = sign_one(reg, image, signer, opts, raw, kind, &c, &mut report).await?;
        report.signed.push(SignedDigest {
            platform: platform.clone(),
            ..signed
        });
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn sign_one<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    signer: &dyn Signer,
    opts: &SignOptions,
    subject: &RawManifest,
    kind: Kind,
    claims: &BTreeMap<String, String>,
    report: &mut SignReport,
) -> Result<SignedDigest, SignError> {
    let key = signer.public_key();
    let name = repo.repo_path();
    let mut want_legacy = opts.mode != SignMode::Bundle;
    let mut out = SignedDigest {
        platform: String::new(),
        digest: subject.digest.clone(),
        bundle: RouteOutcome::NotRequested,
        legacy: RouteOutcome::NotRequested,
        bundle_referrer: None,
    };

    if opts.mode != SignMode::Legacy {
        let statement = signature_statement(&name, &subject.digest, claims);
        let found = bundle::find(reg, repo, &subject.digest).await?;
        let present = found
            .found
            .iter()
            .find(|b| b.open(key, &subject.digest).is_ok_and(|st| st == statement));
        if let Some(b) = present {
            out.bundle = RouteOutcome::Present;
            out.bundle_referrer = Some(b.manifest.clone());
        } else {
            let envelope = dsse::seal(&statement, signer).await?;
            report.signatures_created += 1;
            let b = Bundle::new(envelope, key)?;
            match bundle::push(reg, repo, subject, &b, COSIGN_SIGN_PREDICATE, &opts.created).await {
                Ok(d) => {
                    out.bundle = RouteOutcome::Written;
                    out.bundle_referrer = Some(d);
                }
                Err(SignError::Registry(RegistryError::Protocol { detail, .. }))
                    if kind == Kind::Index && detail.starts_with("HTTP 405") =>
                {
                    let w = format!(
                        "the registry refused a referrer whose subject is the index {} (HTTP 405, as ECR does); \
                         its signature is stored under the legacy {} tag instead",
                        subject.digest,
                        CosignTag::Sig.tag(&subject.digest)
                    );
                    tracing::warn!(digest = %subject.digest, "{w}");
                    report.warnings.push(w);
                    out.bundle = RouteOutcome::Refused;
                    want_legacy = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    if want_legacy {
        let payload = payload(&name, &subject.digest, claims);
        // Only the `.sig` tag is written, so only it is read.
        let found = sig_tag_signatures(reg, repo, &subject.digest).await?;
        let present = found
            .iter()
            .any(|f| f.payload == payload && key.verify(&payload, &f.signature));
        if present {
            out.legacy = RouteOutcome::Present;
        } else {
            let sig = signer.sign(&payload).await?;
            // Never store a signature that does not verify (a misconfigured KMS message mode,
            // a key whose algorithm we misread).
            if !key.verify(&payload, &sig) {
                return Err(SignError::Invalid(format!(
                    "{} returned a signature that does not verify with its public key",
                    signer.describe()
                )));
            }
            report.signatures_created += 1;
            append_sig_tag(reg, repo, &subject.digest, &payload, &B64.encode(&sig)).await?;
            out.legacy = RouteOutcome::Written;
        }
    }
    Ok(out)
}

/// Append a layer to cosign's `sha256-<hex>.sig` manifest (created when absent).
async fn append_sig_tag<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &Digest,
    payload: &[u8],
    sig_b64: &str,
) -> Result<(), SignError> {
    let tag = CosignTag::Sig.tag(subject);
    let payload = Bytes::copy_from_slice(payload);
    let (pd, _) = put_small_blob(reg, repo, &payload).await?;
    let mut layers: Vec<serde_json::Value> = match get_optional(reg, repo, &tag).await? {
        Some(raw) => {
            let v: serde_json::Value = serde_json::from_slice(&raw.bytes)
                .map_err(|e| SignError::Input(format!("{tag}: {e}")))?;
            v["layers"].as_array().cloned().unwrap_or_default()
        }
        None => Vec::new(),
    };
    let mut layer = descriptor_json(SIMPLESIGNING, &pd, payload.len());
    layer["annotations"] = serde_json::json!({ SIGNATURE_ANNOTATION: sig_b64 });
    layers.push(layer);
    // cosign's config for signature images: an image config whose rootfs lists the layers.
    let diff_ids: Vec<&str> = layers.iter().filter_map(|l| l["digest"].as_str()).collect();
    let config = serde_json::json!({
        "architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z",
        "history": diff_ids.iter().map(|_| serde_json::json!({"created": "0001-01-01T00:00:00Z"})).collect::<Vec<_>>(),
        "os": "", "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config =
        Bytes::from(serde_json::to_vec(&config).map_err(|e| SignError::Input(e.to_string()))?);
    let (cd, _) = put_small_blob(reg, repo, &config).await?;
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor_json(OCI_CONFIG, &cd, config.len()),
        "layers": layers,
    });
    let raw = RawManifest::new(
        Bytes::from(serde_json::to_vec(&m).map_err(|e| SignError::Input(e.to_string()))?),
        OCI_MANIFEST.to_owned(),
    );
    reg.put_manifest(repo, &tag, &raw).await?;
    Ok(())
}

/// Every simple-signing signature of `digest`, by every route (unverified).
pub async fn find_signatures<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<Vec<FoundSignature>, SignError> {
    let listing = referrers::list(reg, repo, digest).await?;
    find_signatures_in(reg, repo, digest, &listing).await
}

/// As [`find_signatures`], with the referrers `listing` of `digest` already read.
pub async fn find_signatures_in<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
    listing: &referrers::Listing,
) -> Result<Vec<FoundSignature>, SignError> {
    let mut out = Vec::new();
    for d in &listing.descriptors {
        if d.artifact_type
            .as_deref()
            .is_some_and(|t| t != COSIGN_SIG_ARTIFACT)
        {
            continue;
        }
        if let Some(raw) = get_optional(reg, repo, d.digest.as_str()).await? {
            collect_layers(reg, repo, listing.route, &raw, &mut out).await?;
        }
    }
    out.extend(sig_tag_signatures(reg, repo, digest).await?);
    Ok(out)
}

/// The signatures in cosign's `sha256-<hex>.sig` manifest of `digest` (unverified).
async fn sig_tag_signatures<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<Vec<FoundSignature>, SignError> {
    let mut out = Vec::new();
    if let Some(raw) = get_optional(reg, repo, &CosignTag::Sig.tag(digest)).await? {
        collect_layers(reg, repo, Route::SigTag, &raw, &mut out).await?;
    }
    Ok(out)
}

async fn collect_layers<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    route: Route,
    raw: &RawManifest,
    out: &mut Vec<FoundSignature>,
) -> Result<(), SignError> {
    let Ok((doc, Kind::Manifest, _)) = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type)) else {
        return Ok(());
    };
    for l in doc.layers.iter().filter(|l| l.media_type == SIMPLESIGNING) {
        let Some(sig) = l
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            .and_then(|s| B64.decode(s.trim()).ok())
        else {
            continue;
        };
        if l.size > MAX_PAYLOAD_BYTES {
            continue;
        }
        let payload = match read_small_blob(reg, repo, &l.digest, l.size, MAX_PAYLOAD_BYTES).await {
            Ok(p) => p,
            // A dangling or corrupt payload is not a signature; anything else is a failure.
            Err(RegistryError::NotFound { .. } | RegistryError::DigestMismatch { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(FoundSignature {
            route,
            manifest: raw.digest.clone(),
            payload,
            signature: sig,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorType};
    use crate::registry::memory::{Behaviour, MemoryRegistry};
    use crate::sign::bundle::{BUNDLE_MEDIA_TYPE, find};
    use crate::sign::local::LocalSigner;
    use crate::sign::verify::{Format, Require, VerifyOptions, verify_image};

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    fn index(reg: &MemoryRegistry, repo: &ImageRef) -> RawManifest {
        crate::annotate::tests::index(reg, repo)
    }

    fn opts(mode: SignMode) -> SignOptions {
        SignOptions {
            mode,
            annotations: Entries::parse_kv("annotation", &["team=core"]).unwrap(),
            created: "2026-12-04T00:00:00Z".into(),
            ..SignOptions::default()
        }
    }

    fn require(require: Require) -> VerifyOptions {
        VerifyOptions {
            require,
            identity: None,
        }
    }

    async fn verify(
        reg: &MemoryRegistry,
        img: &ImageRef,
        key: &LocalSigner,
        req: Require,
    ) -> Result<crate::sign::verify::VerifyReport, SignError> {
        verify_image(reg, img, key.public_key(), &require(req)).await
    }

    #[tokio::test]
    async fn signs_index_and_platforms_in_both_formats_and_a_rerun_adds_nothing() {
        let reg = MemoryRegistry::new();
        let img = r("reg.example/trusted/app:1");
        let idx = index(&reg, &img);
        let key = LocalSigner::generate_p256();
        let rep = sign_image(&reg, &img, &key, &opts(SignMode::Both))
            .await
            .unwrap();
        assert_eq!(rep.signed.len(), 3);
        assert_eq!(
            rep.signatures_created, 6,
            "a bundle and a legacy signature each"
        );
        assert!(
            rep.signed
                .iter()
                .all(|s| s.bundle == RouteOutcome::Written && s.legacy == RouteOutcome::Written)
        );
        // No referrers API: the fallback index lists the bundle referrer, with its annotations.
        let fb = reg.tag(&img, &idx.digest.fallback_tag()).unwrap();
        let (doc, _, _) =
            ManifestDoc::parse(&reg.manifest(&img, &fb).unwrap().bytes, None).unwrap();
        assert_eq!(doc.manifests.len(), 1);
        assert_eq!(
            doc.manifests[0].artifact_type.as_deref(),
            Some(BUNDLE_MEDIA_TYPE)
        );
        // The referrer is cosign v3's shape.
        let m = reg.manifest(&img, &doc.manifests[0].digest).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(m["artifactType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], crate::manifest::OCI_EMPTY);
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["mediaType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(m["subject"]["digest"], idx.digest.as_str());
        assert_eq!(
            m["annotations"]["dev.sigstore.bundle.content"],
            "dsse-envelope"
        );
        assert_eq!(
            m["annotations"]["dev.sigstore.bundle.predicateType"],
            COSIGN_SIGN_PREDICATE
        );

        for req in [
            Require::Any,
            Require::Bundle,
            Require::Legacy,
            Require::Both,
        ] {
            let v = verify(&reg, &img, &key, req).await.unwrap();
            assert_eq!(v.claims["team"], "core");
            assert_eq!(v.identity, "reg.example/trusted/app");
        }
        let v = verify(&reg, &img, &key, Require::Any).await.unwrap();
        assert_eq!(
            v.verified,
            vec![Format::Bundle],
            "bundles first, as cosign v3"
        );
        let v = verify(&reg, &img, &key, Require::Both).await.unwrap();
        assert_eq!(v.verified, vec![Format::Bundle, Format::Legacy]);

        let puts = reg.calls().manifest_puts;
        let again = sign_image(&reg, &img, &key, &opts(SignMode::Both))
            .await
            .unwrap();
        assert_eq!(again.signatures_created, 0);
        assert!(
            again
                .signed
                .iter()
                .all(|s| s.bundle == RouteOutcome::Present && s.legacy == RouteOutcome::Present)
        );
        assert_eq!(
            reg.calls().manifest_puts,
            puts,
            "nothing written on a re-run"
        );

        // Other claims: a second signature in each format (the .sig manifest gets a layer).
        let more = SignOptions {
            annotations: Entries::parse_kv("annotation", &["team=other"]).unwrap(),
            ..opts(SignMode::Both)
        };
        sign_image(&reg, &img, &key, &more).await.unwrap();
        let sig = reg
            .tag(&img, &format!("{}.sig", idx.digest.fallback_tag()))
            .unwrap();
        let (doc, _, _) =
            ManifestDoc::parse(&reg.manifest(&img, &sig).unwrap().bytes, None).unwrap();
        assert_eq!(doc.layers.len(), 2);
        assert_eq!(find(&reg, &img, &idx.digest).await.unwrap().found.len(), 2);
    }

    #[tokio::test]
    async fn with_the_referrers_api_no_fallback_tag_is_written() {
        let reg = MemoryRegistry::new();
        reg.set_behaviour(Behaviour {
            referrers_api: true,
            ..Behaviour::default()
        });
        let img = r("reg.example/trusted/app:1");
        let idx = index(&reg, &img);
        let key = LocalSigner::generate_p256();
        sign_image(&reg, &img, &key, &opts(SignMode::Bundle))
            .await
            .unwrap();
        assert_eq!(reg.tags(&img), vec!["1".to_owned()]);
        let v = verify(&reg, &img, &key, Require::Any).await.unwrap();
        assert_eq!(v.valid[0].route, Route::ReferrersApi);
        assert_eq!(v.verified, vec![Format::Bundle]);
        assert_eq!(v.digest, idx.digest);
        let e = verify(&reg, &img, &key, Require::Legacy).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureInvalid, "{e}");
        let again = sign_image(&reg, &img, &key, &opts(SignMode::Bundle))
            .await
            .unwrap();
        assert_eq!(again.signatures_created, 0);
    }

    #[tokio::test]
    async fn wrong_key_tampered_payload_and_signature_are_rejected() {
        let reg = MemoryRegistry::new();
        let img = r("reg.example/trusted/app:1");
        let idx = index(&reg, &img);
        let key = LocalSigner::generate_p256();
        let e = verify(&reg, &img, &key, Require::Any).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureMissing);

        sign_image(&reg, &img, &key, &opts(SignMode::Legacy))
            .await
            .unwrap();
        let other = LocalSigner::generate_p256();
        let e = verify(&reg, &img, &other, Require::Any).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureInvalid, "{e}");

        // Tamper with the .sig manifest: a payload for the same digest with other claims, and
        // the original signature.
        let tag = format!("{}.sig", idx.digest.fallback_tag());
        let sig_raw = reg.manifest(&img, &reg.tag(&img, &tag).unwrap()).unwrap();
        let mut m: serde_json::Value = serde_json::from_slice(&sig_raw.bytes).unwrap();
        let forged = crate::sign::payload(
            &img.repo_path(),
            &idx.digest,
            &BTreeMap::from([("team".into(), "evil".into())]),
        );
        let fd = reg.put_blob_bytes(&img, Bytes::from(forged.clone()));
        m["layers"][0]["digest"] = fd.to_string().into();
        m["layers"][0]["size"] = forged.len().into();
        let tampered = RawManifest::new(
            Bytes::from(serde_json::to_vec(&m).unwrap()),
            OCI_MANIFEST.into(),
        );
        reg.put_manifest_bytes(&img, Some(&tag), tampered);
        let e = verify(&reg, &img, &key, Require::Any).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureInvalid, "{e}");

        // Tampered signature bytes over the genuine payload.
        let mut m: serde_json::Value = serde_json::from_slice(&sig_raw.bytes).unwrap();
        let s = m["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned();
        let mut bytes = B64.decode(s).unwrap();
        let n = bytes.len() - 2;
        bytes[n] ^= 0x55;
        m["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = B64.encode(bytes).into();
        let tampered = RawManifest::new(
            Bytes::from(serde_json::to_vec(&m).unwrap()),
            OCI_MANIFEST.into(),
        );
        reg.put_manifest_bytes(&img, Some(&tag), tampered);
        let e = verify(&reg, &img, &key, Require::Any).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureInvalid, "{e}");

        // A valid signature over another digest's payload does not count either.
        let other_digest = Digest::of(b"other");
        let wrong = crate::sign::payload(&img.repo_path(), &other_digest, &BTreeMap::new());
        let wsig = key.sign(&wrong).await.unwrap();
        let wd = reg.put_blob_bytes(&img, Bytes::from(wrong.clone()));
        m["layers"][0]["digest"] = wd.to_string().into();
        m["layers"][0]["size"] = wrong.len().into();
        m["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = B64.encode(wsig).into();
        let tampered = RawManifest::new(
            Bytes::from(serde_json::to_vec(&m).unwrap()),
            OCI_MANIFEST.into(),
        );
        reg.put_manifest_bytes(&img, Some(&tag), tampered);
        let e = verify(&reg, &img, &key, Require::Any).await.unwrap_err();
        assert!(e.to_string().contains("not the image's digest"), "{e}");
    }

    /// A registry holding only the image and `bundle` as its referrer.
    async fn with_only(bundle: &Bundle) -> (MemoryRegistry, ImageRef) {
        let reg = MemoryRegistry::new();
        let img = r("reg.example/trusted/app:1");
        let idx = index(&reg, &img);
        bundle::push(&reg, &img, &idx, bundle, COSIGN_SIGN_PREDICATE, "t")
            .await
            .unwrap();
        (reg, img)
    }

    #[tokio::test]
    async fn tampered_foreign_and_misdirected_bundles_are_refused() {
        let reg = MemoryRegistry::new();
        let img = r("reg.example/trusted/app:1");
        let idx = index(&reg, &img);
        let key = LocalSigner::generate_p256();
        sign_image(&reg, &img, &key, &opts(SignMode::Bundle))
            .await
            .unwrap();
        let genuine = find(&reg, &img, &idx.digest).await.unwrap().found[0]
            .bundle
            .clone();
        let (r0, i0) = with_only(&genuine).await;
        verify(&r0, &i0, &key, Require::Bundle).await.unwrap();

        // Another key.
        let other = LocalSigner::generate_p256();
        let e = verify(&r0, &i0, &other, Require::Any).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureInvalid, "{e}");
        assert!(e.to_string().contains("verifies with the key"), "{e}");

        // The statement changed (other claims), the signature kept.
        let mut st = crate::sign::dsse::open(&genuine.dsse_envelope, key.public_key()).unwrap();
        st.subject[0]
            .annotations
            .insert("team".into(), "evil".into());
        let mut forged = genuine.clone();
        forged.dsse_envelope.payload = B64.encode(serde_json::to_vec(&st).unwrap());
        let (r1, i1) = with_only(&forged).await;
        let e = verify(&r1, &i1, &key, Require::Any).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::SignatureInvalid, "{e}");

        // Another digest, validly signed: not this image's signature.
        let elsewhere = signature_statement(&img.repo_path(), &Digest::of(b"x"), &BTreeMap::new());
        let b = Bundle::new(
            dsse::seal(&elsewhere, &key).await.unwrap(),
            key.public_key(),
        )
        .unwrap();
        let (r2, i2) = with_only(&b).await;
        let e = verify(&r2, &i2, &key, Require::Any).await.unwrap_err();
        assert!(e.to_string().contains("not sha256:"), "{e}");

        // The same digest signed for another repository: the identity does not match.
        let moved = signature_statement("reg.example/other/app", &idx.digest, &BTreeMap::new());
        let b = Bundle::new(dsse::seal(&moved, &key).await.unwrap(), key.public_key()).unwrap();
        let (r3, i3) = with_only(&b).await;
        let e = verify(&r3, &i3, &key, Require::Any).await.unwrap_err();
        assert!(e.to_string().contains("reg.example/other/app"), "{e}");
        // ... unless that repository is the identity asked for.
        let o = VerifyOptions {
            require: Require::Any,
            identity: Some("reg.example/other/app".into()),
        };
        verify_image(&r3, &i3, key.public_key(), &o).await.unwrap();
    }

    #[tokio::test]
    async fn a_foreign_bundle_does_not_hide_ours_and_bundles_hide_legacy_as_in_cosign_v3() {
        let reg = MemoryRegistry::new();
        let img = r("reg.example/trusted/app:1");
        index(&reg, &img);
        let upstream = LocalSigner::generate_p256();
        sign_image(&reg, &img, &upstream, &opts(SignMode::Bundle))
            .await
            .unwrap();
        let key = LocalSigner::generate_p256();

        // Our legacy signature only: cosign v3 sees a bundle and reads nothing else.
        sign_image(&reg, &img, &key, &opts(SignMode::Legacy))
            .await
            .unwrap();
        let e = verify(&reg, &img, &key, Require::Any).await.unwrap_err();
        assert!(
            e.to_string().contains("legacy signatures are not read"),
            "{e}"
        );
        verify(&reg, &img, &key, Require::Legacy).await.unwrap();

        // With our bundle beside the foreign one, every route verifies.
        sign_image(&reg, &img, &key, &opts(SignMode::Both))
            .await
            .unwrap();
        for req in [
            Require::Any,
            Require::Bundle,
            Require::Legacy,
            Require::Both,
        ] {
            verify(&reg, &img, &key, req).await.unwrap();
        }
        let v = verify(&reg, &img, &key, Require::Both).await.unwrap();
        assert_eq!(v.invalid, 1, "the upstream bundle of the index: {v:?}");
    }

    #[tokio::test]
    async fn an_ecr_405_on_an_index_subject_falls_back_to_the_legacy_tag_with_a_warning() {
        let reg = MemoryRegistry::new();
        reg.set_behaviour(Behaviour {
            referrers_api: true,
            refuse_index_subjects: true,
            ..Behaviour::default()
        });
        let img = r("reg.example/trusted/app:1");
        let idx = index(&reg, &img);
        let key = LocalSigner::generate_p256();
        let rep = sign_image(&reg, &img, &key, &opts(SignMode::Bundle))
            .await
            .unwrap();
        assert_eq!(rep.signed[0].bundle, RouteOutcome::Refused);
        assert_eq!(rep.signed[0].legacy, RouteOutcome::Written);
        assert_eq!(rep.warnings.len(), 1);
        assert!(rep.warnings[0].contains("405"), "{:?}", rep.warnings);
        // Platform manifests are not indexes: they get bundles as asked, and no tag.
        assert!(
            rep.signed[1..].iter().all(
                |s| s.bundle == RouteOutcome::Written && s.legacy == RouteOutcome::NotRequested
            )
        );
        assert!(
            reg.tag(&img, &format!("{}.sig", idx.digest.fallback_tag()))
                .is_some()
        );
        verify(&reg, &img, &key, Require::Any).await.unwrap();

        // A re-run finds the legacy signature and writes nothing more than the refused try.
        let again = sign_image(&reg, &img, &key, &opts(SignMode::Bundle))
            .await
            .unwrap();
        assert_eq!(again.signed[0].legacy, RouteOutcome::Present);
        assert!(
            again.signed[1..]
                .iter()
                .all(|s| s.bundle == RouteOutcome::Present)
        );
    }

    #[tokio::test]
    async fn a_missing_image_writes_nothing() {
        let reg = MemoryRegistry::new();
        let key = LocalSigner::generate_p256();
        let e = sign_image(
            &reg,
            &r("reg.example/none/app:1"),
            &key,
            &opts(SignMode::Both),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::RegistryNotFound);
        assert_eq!(reg.calls().manifest_puts, 0);
    }
}
