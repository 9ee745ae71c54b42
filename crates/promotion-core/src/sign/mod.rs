//! Signing and verification in cosign's formats.
//!
//! - [`payload`]: cosign's "simple signing" payload for a digest, byte for byte as cosign (Go's
//!   `json.Marshal`) writes it, with `optional` claims;
//! - [`Signer`]: the port a signature comes from: [`local::LocalSigner`] (cosign key files,
//!   PKCS#8 PEM) and `promotion_aws::kms::KmsSigner` (AWS KMS, an adapter crate);
//! - [`PublicKey`]: what signatures are checked with (PEM, or KMS `GetPublicKey`);
//! - [`store`]: where signatures go (OCI 1.1 referrer with the fallback tag, cosign's legacy
//!   `sha256-<hex>.sig` tag) and how a re-run avoids duplicates;
//! - [`verify`]: finding signatures by every route and checking them;
//! - [`discover`]: the tree of referrers of an image.

pub mod attest;
pub mod bundle;
pub mod discover;
pub mod dsse;
pub mod local;
pub mod store;
pub mod verify;

use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::registry::RegistryError;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Layer media type of a simple-signing payload.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 (standard) signature; DER for ECDSA.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `artifactType` of our OCI 1.1 signature referrers (cosign's OCI 1.1 signature type).
pub const COSIGN_SIG_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The `critical.type` of a cosign image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// Claim: the digest the image was promoted from.
pub const CLAIM_SOURCE_DIGEST: &str = "io.ecr-promotion.source.digest";
/// Claim: the gate's compact summary.
pub const CLAIM_GATE: &str = "io.ecr-promotion.gate";
/// Claim: the original source as given (`reg/incoming/app:1.4.2`).
pub const CLAIM_SOURCE_NAME: &str = crate::mutate::SOURCE_NAME;
/// Claim: the digest of the gate policy document that passed the image.
pub const CLAIM_POLICY_DIGEST: &str = "io.ecr-promotion.policy.digest";
/// The claims a signature takes from the signed document's own annotations (set by
/// promote-and-annotate; a source document's reserved keys are removed before that).
pub const RECORDED_CLAIMS: [&str; 4] = [
    CLAIM_SOURCE_NAME,
    CLAIM_SOURCE_DIGEST,
    CLAIM_GATE,
    CLAIM_POLICY_DIGEST,
];

/// Why signing or verification failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key that cannot be used (wrong password, unsupported type, cannot sign).
    #[error("{0}")]
    Key(String),
    /// KMS throttled or failed transiently.
    #[error("KMS: {0}")]
    KmsThrottled(String),
    /// KMS refused.
    #[error("KMS: {0}")]
    Kms(String),
    /// Signatures exist, none valid.
    #[error("{0}")]
    Invalid(String),
    /// No signature at all.
    #[error("{0}")]
    Missing(String),
    /// Bad input (claims, options).
    #[error("{0}")]
    Input(String),
    /// A registry call failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The image's tree was refused ([`crate::selection`]).
    #[error(transparent)]
    Selection(#[from] crate::selection::SelectionError),
}

impl Classify for SignError {
    fn error_type(&self) -> ErrorType {
        match self {
            SignError::Key(_) => ErrorType::KeyInvalid,
            SignError::KmsThrottled(_) => ErrorType::KmsThrottled,
            SignError::Kms(_) => ErrorType::KmsFailed,
            SignError::Invalid(_) => ErrorType::SignatureInvalid,
            SignError::Missing(_) => ErrorType::SignatureMissing,
            SignError::Input(_) => ErrorType::InputInvalid,
            SignError::Registry(e) => e.error_type(),
            SignError::Selection(e) => e.error_type(),
        }
    }
}

/// Produces signatures over payloads.
#[async_trait]
pub trait Signer: Send + Sync {
    /// Sign `payload` (SHA-256 inside the scheme); DER for ECDSA, raw for RSA.
    async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError>;
    /// The key that verifies this signer's signatures.
    fn public_key(&self) -> &PublicKey;
    /// A name for logs and reports (key id or ARN, never secret material).
    fn describe(&self) -> String;
}

/// A verification key: ECDSA P-256 or RSA (PKCS#1 v1.5 or PSS, SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA over P-256 with SHA-256, DER signatures.
    P256(p256::ecdsa::VerifyingKey),
    /// RSA with SHA-256.
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// From a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign public-key` prints it.
    pub fn from_pem(pem: &str) -> Result<Self, SignError> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| SignError::Key(format!("not a PEM public key: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(SignError::Key(format!(
                "expected a PEM \"PUBLIC KEY\", found {label:?}"
            )));
        }
        Self::from_spki_der(&der)
    }

    /// From DER SubjectPublicKeyInfo (what KMS `GetPublicKey` returns).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SignError> {
        use pkcs8::DecodePublicKey as _;
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k.into()));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(PublicKey::Rsa(k));
        }
        Err(SignError::Key(
            "unsupported public key: ECDSA P-256 and RSA keys are supported".into(),
        ))
    }

    /// PEM `PUBLIC KEY`, for `cosign verify --key` and skopeo's `sigstoreSigned` policies.
    pub fn to_pem(&self) -> Result<String, SignError> {
        use pkcs8::EncodePublicKey as _;
        let pem = match self {
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_pem(Default::default()),
            PublicKey::Rsa(k) => k.to_public_key_pem(Default::default()),
        };
        pem.map_err(|e| SignError::Key(format!("cannot encode the public key: {e}")))
    }

    /// DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, SignError> {
        use pkcs8::EncodePublicKey as _;
        let der = match self {
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_der(),
            PublicKey::Rsa(k) => k.to_public_key_der(),
        };
        der.map(|d| d.into_vec())
            .map_err(|e| SignError::Key(format!("cannot encode the public key: {e}")))
    }

    /// The key hint of a Sigstore bundle: base64 (standard) of the SHA-256 of the DER
    /// SubjectPublicKeyInfo, as cosign computes it.
    pub fn hint(&self) -> Result<String, SignError> {
        use base64::Engine as _;
        use sha2_10::Digest as _;
        let der = self.to_spki_der()?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sha2_10::Sha256::digest(&der)))
    }

    /// Whether `sig` is a valid signature of `payload` by this key.
    pub fn verify(&self, payload: &[u8], sig: &[u8]) -> bool {
        use rsa::signature::Verifier as _;
        match self {
            PublicKey::P256(k) => p256::ecdsa::DerSignature::try_from(sig)
                .is_ok_and(|s| k.verify(payload, &s).is_ok()),
            PublicKey::Rsa(k) => {
                let pkcs1 = rsa::pkcs1v15::VerifyingKey::<sha2_10::Sha256>::new(k.clone());
                let pss = rsa::pss::VerifyingKey::<sha2_10::Sha256>::new(k.clone());
                rsa::pkcs1v15::Signature::try_from(sig)
                    .is_ok_and(|s| pkcs1.verify(payload, &s).is_ok())
                    || rsa::pss::Signature::try_from(sig)
                        .is_ok_and(|s| pss.verify(payload, &s).is_ok())
            }
        }
    }

    /// `ecdsa-p256` or `rsa-<bits>`.
    pub fn kind(&self) -> String {
        use rsa::traits::PublicKeyParts as _;
        match self {
            PublicKey::P256(_) => "ecdsa-p256".into(),
            PublicKey::Rsa(k) => format!("rsa-{}", k.size() * 8),
        }
    }
}

/// The claims of a signature (`optional`): annotations given for signing, then the
/// [`RECORDED_CLAIMS`] the signed document records (its source, source digest, gate summary and
/// policy digest; a source digest that is not a digest is left out), then `gate_summary` when
/// given. Sorted, as Go marshals maps.
pub fn claims(
    annotations: &BTreeMap<String, String>,
    recorded: &BTreeMap<String, String>,
    gate_summary: Option<&str>,
) -> BTreeMap<String, String> {
    let mut c = annotations.clone();
    for key in RECORDED_CLAIMS {
        let Some(v) = recorded.get(key) else { continue };
        if key == CLAIM_SOURCE_DIGEST && v.parse::<Digest>().is_err() {
            continue;
        }
        c.insert(key.into(), v.clone());
    }
    if let Some(g) = gate_summary {
        c.insert(CLAIM_GATE.into(), g.to_owned());
    }
    c
}

/// cosign's simple-signing payload, byte for byte as cosign writes it:
///
/// ```json
/// {"critical":{"identity":{"docker-reference":"<registry/repository>"},"image":{"docker-manifest-digest":"sha256:…"},"type":"cosign container image signature"},"optional":null}
/// ```
///
/// `optional` is `null` without claims, else an object sorted by key. Strings are escaped as Go's
/// `encoding/json` does (`<`, `>`, `&`, U+2028, U+2029 as `\uXXXX`).
pub fn payload(
    docker_reference: &str,
    digest: &Digest,
    claims: &BTreeMap<String, String>,
) -> Vec<u8> {
    let optional = if claims.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(claims)
    };
    let v = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest.as_str()},
            "type": SIGNATURE_TYPE,
        },
        "optional": optional,
    });
    go_escape(&v.to_string()).into_bytes()
}

/// Go's `json.Marshal` HTML-escapes; the characters only ever occur inside strings, so replacing
/// them in serde_json's output is exact.
fn go_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// What a payload says, after its signature was checked.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Payload {
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub digest: String,
    /// `optional`.
    pub claims: BTreeMap<String, serde_json::Value>,
}

/// Parse a payload and check its type and digest against `expected`.
pub fn check_payload(bytes: &[u8], expected: &Digest) -> Result<Payload, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let critical = &v["critical"];
    let ty = critical["type"].as_str().unwrap_or_default();
    if ty != SIGNATURE_TYPE {
        return Err(format!(
            "the payload's critical.type is {ty:?}, not {SIGNATURE_TYPE:?}"
        ));
    }
    let digest = critical["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap_or_default();
    if digest != expected.as_str() {
        return Err(format!(
            "the payload signs {digest:?}, not the image's digest {expected}"
        ));
    }
    let claims = match &v["optional"] {
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    };
    Ok(Payload {
        docker_reference: critical["identity"]["docker-reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        digest: digest.to_owned(),
        claims,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_byte_exact_cosign() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let p = payload(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
            &d,
            &BTreeMap::new(),
        );
        assert_eq!(
            String::from_utf8(p).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"123456789012.dkr.ecr.us-east-1.amazonaws.com/app"}},"image":{{"docker-manifest-digest":"sha256:{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
                "a".repeat(64)
            )
        );
        let recorded = BTreeMap::from([
            (CLAIM_SOURCE_DIGEST.to_owned(), d.to_string()),
            (CLAIM_GATE.to_owned(), "FAILED".to_owned()),
            (
                "io.ecr-promotion.other".to_owned(),
                "not a claim".to_owned(),
            ),
        ]);
        let c = claims(
            &BTreeMap::from([("z".into(), "1".into()), ("a".into(), "<b&c>".into())]),
            &recorded,
            Some("PASSED"),
        );
        let p = String::from_utf8(payload("r/app", &d, &c)).unwrap();
        assert!(
            p.ends_with(&format!(
                r#""optional":{{"a":"\u003cb\u0026c\u003e","io.ecr-promotion.gate":"PASSED","io.ecr-promotion.source.digest":"{d}","z":"1"}}}}"#
            )),
            "{p}"
        );
        let parsed = check_payload(p.as_bytes(), &d).unwrap();
        assert_eq!(parsed.claims["a"], "<b&c>");
        assert!(check_payload(p.as_bytes(), &Digest::of(b"x")).is_err());
        assert!(
            check_payload(p.replace("cosign container", "other").as_bytes(), &d)
                .unwrap_err()
                .contains("critical.type")
        );
    }
}
