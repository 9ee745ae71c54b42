//! Sigstore bundles v0.3 as OCI 1.1 referrers, the way cosign v3 stores them
//! (cosign `pkg/oci/remote/write.go` `WriteAttestationNewBundleFormat`, `specs/BUNDLE_SPEC.md`):
//!
//! - the bundle: `{"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": {"publicKey":
//!   {"hint": base64(sha256(SPKI DER))}}, "dsseEnvelope": {...}}` — a key-based bundle without
//!   transparency-log entries or timestamps (the key is a private KMS key; verifiers need
//!   `--insecure-ignore-tlog` / Kyverno `ignoreTlog`);
//! - the referrer: an OCI image manifest with `artifactType` = the bundle media type, the empty
//!   config, exactly one layer of the bundle media type, `subject` = the signed manifest, and the
//!   annotations `dev.sigstore.bundle.content: dsse-envelope`,
//!   `dev.sigstore.bundle.predicateType` and `org.opencontainers.image.created`.
//!
//! cosign v3 `verify` lists the referrers, reads every bundle it can parse and, when there is at
//! least one, verifies bundles only (the legacy `.sig` is read only when there are none). The
//! same listing serves our signatures (predicate [`COSIGN_SIGN_PREDICATE`]) and the promotion
//! attestation ([`super::attest`]).

use super::dsse::{Envelope, Statement};
use super::{PublicKey, SignError};
use crate::digest::Digest;
use crate::manifest::{Kind, ManifestDoc, OCI_EMPTY, OCI_MANIFEST, RawManifest};
use crate::reference::ImageRef;
use crate::referrers::{
    self, Listing, Route, descriptor_json, get_optional, put_small_blob, read_small_blob,
};
use crate::registry::{Registry, RegistryError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Media type (and referrer `artifactType`) of a Sigstore bundle v0.3. ECR refuses media types
/// with parameters, so v0.2's `…+json;version=0.2` form is never used.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of a cosign v3 image signature (an empty predicate).
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Referrer annotation: what the bundle holds.
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// Referrer annotation: the statement's predicate type.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// Referrer annotation: when the bundle was written (RFC 3339).
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// Largest bundle read back from a registry.
pub(crate) const MAX_BUNDLE_BYTES: u64 = 512 * 1024;

/// A Sigstore bundle v0.3 holding a DSSE envelope (the only content we write or read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// [`BUNDLE_MEDIA_TYPE`].
    pub media_type: String,
    /// The key hint (and, in others' bundles, certificates and log entries we ignore).
    pub verification_material: VerificationMaterial,
    /// The signed statement.
    pub dsse_envelope: Envelope,
}

/// `verificationMaterial` of a key-based bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// `{"hint": ...}`; absent in keyless bundles (which carry a certificate instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<KeyHint>,
}

/// Which key signed: `base64(sha256(SPKI DER))`, as cosign computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHint {
    /// The hint.
    pub hint: String,
}

impl Bundle {
    /// A bundle of `envelope` signed by `key`.
    pub fn new(envelope: Envelope, key: &PublicKey) -> Result<Self, SignError> {
        Ok(Bundle {
            media_type: BUNDLE_MEDIA_TYPE.to_owned(),
            verification_material: VerificationMaterial {
                public_key: Some(KeyHint { hint: key.hint()? }),
            },
            dsse_envelope: envelope,
        })
    }

    /// The JSON bytes stored as the referrer's layer.
    pub fn to_bytes(&self) -> Result<Bytes, SignError> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| SignError::Input(format!("cannot encode the bundle: {e}")))
    }
}

/// Store `bundle` as a referrer of `subject` in `repo` (the fallback index where the registry
/// has no referrers API). Returns the referrer manifest's digest.
pub async fn push<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &RawManifest,
    bundle: &Bundle,
    predicate_type: &str,
    created: &str,
) -> Result<Digest, SignError> {
    let bytes = bundle.to_bytes()?;
    let (bd, _) = put_small_blob(reg, repo, &bytes).await?;
    let (ed, _) = put_small_blob(reg, repo, &Bytes::from_static(b"{}")).await?;
    let annotations = serde_json::json!({
        CONTENT_ANNOTATION: "dsse-envelope",
        PREDICATE_ANNOTATION: predicate_type,
        CREATED_ANNOTATION: created,
    });
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": descriptor_json(OCI_EMPTY, &ed, 2),
        "layers": [descriptor_json(BUNDLE_MEDIA_TYPE, &bd, bytes.len())],
        "subject": descriptor_json(&subject.media_type, &subject.digest, subject.bytes.len()),
        "annotations": annotations,
    });
    let raw = RawManifest::new(
        Bytes::from(serde_json::to_vec(&m).map_err(|e| SignError::Input(e.to_string()))?),
        OCI_MANIFEST.to_owned(),
    );
    referrers::attach(reg, repo, &subject.digest, &raw, BUNDLE_MEDIA_TYPE).await?;
    Ok(raw.digest)
}

/// A bundle read back from a registry (not yet verified).
#[derive(Debug, Clone)]
pub struct FoundBundle {
    /// How its referrer was listed.
    pub route: Route,
    /// The referrer manifest.
    pub manifest: Digest,
    /// The bundle.
    pub bundle: Bundle,
}

impl FoundBundle {
    /// The statement, when the envelope verifies with `key` and one subject is `digest`;
    /// the error says why not.
    pub fn open(&self, key: &PublicKey, digest: &Digest) -> Result<Statement, String> {
        let st = super::dsse::open(&self.bundle.dsse_envelope, key)?;
        if st.subject_for(digest).is_none() {
            return Err(format!(
                "the bundle's statement is about {}, not {digest}",
                st.subject
                    .iter()
                    .filter_map(|s| s.sha256())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(st)
    }
}

/// The Sigstore bundles among the referrers of a digest.
#[derive(Debug, Clone, Default)]
pub struct Bundles {
    /// Referrers listed with the bundle `artifactType`, whatever they hold. cosign v3 reads the
    /// legacy `.sig` only when there are none.
    pub referrers: usize,
    /// Those that hold a DSSE bundle we can read (unverified). Others' bundles (keyless
    /// attestations) are here too when they parse; they fail to verify with our key.
    pub found: Vec<FoundBundle>,
}

/// Every Sigstore bundle among the referrers of `digest` (unverified), as cosign v3 finds them.
pub async fn find<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<Bundles, SignError> {
    let listing = referrers::list(reg, repo, digest).await?;
    find_in(reg, repo, &listing).await
}

/// The Sigstore bundles of a referrers `listing` already read (unverified).
pub async fn find_in<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    listing: &Listing,
) -> Result<Bundles, SignError> {
    let mut out = Bundles::default();
    for d in &listing.descriptors {
        if d.artifact_type.as_deref() != Some(BUNDLE_MEDIA_TYPE) {
            continue;
        }
        out.referrers += 1;
        let Some(raw) = get_optional(reg, repo, d.digest.as_str()).await? else {
            continue;
        };
        let Ok((doc, Kind::Manifest, _)) = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
        else {
            continue;
        };
        let Some(layer) = doc
            .layers
            .iter()
            .find(|l| l.media_type == BUNDLE_MEDIA_TYPE)
        else {
            continue;
        };
        if layer.size > MAX_BUNDLE_BYTES {
            continue;
        }
        let bytes =
            match read_small_blob(reg, repo, &layer.digest, layer.size, MAX_BUNDLE_BYTES).await {
                Ok(b) => b,
                // A dangling or corrupt layer is not a bundle; anything else is a failure.
                Err(RegistryError::NotFound { .. } | RegistryError::DigestMismatch { .. }) => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
        // Bundles with other content (message signatures, certificates) do not parse into
        // ours and are not signatures by our key anyway.
        let Ok(bundle) = serde_json::from_slice::<Bundle>(&bytes) else {
            continue;
        };
        out.found.push(FoundBundle {
            route: listing.route,
            manifest: raw.digest.clone(),
            bundle,
        });
    }
    Ok(out)
}
