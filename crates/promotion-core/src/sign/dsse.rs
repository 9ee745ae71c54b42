//! DSSE envelopes over in-toto Statements v1: the signed form of cosign v3 signatures, of the
//! promotion attestation and (later) of approvals — one home for all of them.
//!
//! - [`pae`]: the pre-authentication encoding every DSSE signature covers
//!   (`"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`), so a signature made over one
//!   payload type cannot be replayed under another (cosign's CVE-2022-35929 came from checking
//!   the type beside the signature instead of inside it).
//! - [`Statement`]: in-toto Statement v1 (`_type`, `subject`, `predicateType`, `predicate`).
//! - [`seal`] signs a statement into an [`Envelope`] with any [`Signer`] (local key or KMS);
//!   [`open`] returns the statement only when a signature verifies with the given key and the
//!   payload type is in-toto's.
//!
//! Written here rather than taken from a crate: the DSSE crates on crates.io sign through a
//! synchronous signer trait (our KMS signer is async) and sigstore-rs cannot read cosign v3
//! bundles (sigstore-rs#533); the encoding itself is a few lines, tested against the spec's
//! example and, in the integration tests, against Sigstore's own verifier (`@sigstore/verify`).

use super::{PublicKey, SignError, Signer};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// DSSE payload type of an in-toto statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// Largest statement [`open`] decodes.
pub const MAX_STATEMENT_BYTES: usize = 256 * 1024;

/// The pre-authentication encoding of `body` under `payload_type`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + body.len() + 32);
    out.extend_from_slice(
        format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// A DSSE envelope (JSON field names as in the spec and Sigstore bundles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The payload, base64 (standard).
    pub payload: String,
    /// How to read the payload.
    pub payload_type: String,
    /// Signatures over [`pae`]`(payload_type, payload)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// The signature, base64 (standard); DER for ECDSA.
    pub sig: String,
    /// Unused by Sigstore (the bundle names the key); omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    /// [`STATEMENT_V1`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// What the predicate means.
    pub predicate_type: String,
    /// The predicate (`{}` for a cosign signature).
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// An in-toto ResourceDescriptor as a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The repository (`registry/repository`) the statement was made for; empty when a
    /// statement does not say (cosign's own signatures).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `{"sha256": "<hex>"}`.
    pub digest: BTreeMap<String, String>,
    /// Claims (cosign puts `-a KEY=VALUE` here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, serde_json::Value>,
}

impl Subject {
    /// A subject for `digest` in repository `name`, with string claims.
    pub fn new(
        name: &str,
        digest: &crate::digest::Digest,
        claims: &BTreeMap<String, String>,
    ) -> Self {
        Subject {
            name: name.to_owned(),
            digest: BTreeMap::from([("sha256".to_owned(), digest.hex().to_owned())]),
            annotations: claims
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        }
    }

    /// `sha256:<hex>` of this subject, when it has a SHA-256 digest.
    pub fn sha256(&self) -> Option<String> {
        self.digest.get("sha256").map(|h| format!("sha256:{h}"))
    }
}

impl Statement {
    /// A statement of `predicate_type` about `subject`.
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: serde_json::Value) -> Self {
        Statement {
            type_: STATEMENT_V1.to_owned(),
            subject,
            predicate_type: predicate_type.to_owned(),
            predicate,
        }
    }

    /// The subject whose SHA-256 digest is `digest`.
    pub fn subject_for(&self, digest: &crate::digest::Digest) -> Option<&Subject> {
        self.subject
            .iter()
            .find(|s| s.digest.get("sha256").is_some_and(|h| h == digest.hex()))
    }
}

/// Sign `statement` with `signer`: the payload is the statement's JSON. The signature is
/// checked with the signer's own public key before it is returned (a KMS in the wrong message
/// mode, or a key whose algorithm was misread, never produces a stored envelope).
pub async fn seal(statement: &Statement, signer: &dyn Signer) -> Result<Envelope, SignError> {
    let body = serde_json::to_vec(statement)
        .map_err(|e| SignError::Input(format!("cannot encode the statement: {e}")))?;
    let signed = pae(INTOTO_PAYLOAD_TYPE, &body);
    let sig = signer.sign(&signed).await?;
    if !signer.public_key().verify(&signed, &sig) {
        return Err(SignError::Invalid(format!(
            "{} returned a signature that does not verify with its public key",
            signer.describe()
        )));
    }
    Ok(Envelope {
        payload: B64.encode(&body),
        payload_type: INTOTO_PAYLOAD_TYPE.to_owned(),
        signatures: vec![EnvelopeSignature {
            sig: B64.encode(sig),
            keyid: String::new(),
        }],
    })
}

/// The decoded payload of `envelope`, bounded by [`MAX_STATEMENT_BYTES`].
fn payload_bytes(envelope: &Envelope) -> Result<Vec<u8>, String> {
    let body = B64
        .decode(envelope.payload.trim())
        .map_err(|e| format!("the envelope's payload is not base64: {e}"))?;
    if body.len() > MAX_STATEMENT_BYTES {
        return Err(format!(
            "the envelope's payload is {} bytes, more than {MAX_STATEMENT_BYTES}",
            body.len()
        ));
    }
    Ok(body)
}

/// The statement `envelope` carries, **unverified**: only to learn what to verify (which
/// digest an approval event is about), never to decide anything.
pub fn payload_statement(envelope: &Envelope) -> Result<Statement, String> {
    let body = payload_bytes(envelope)?;
    serde_json::from_slice(&body).map_err(|e| format!("not an in-toto statement: {e}"))
}

/// The statement of `envelope`, when one of its signatures verifies with `key` over the PAE of
/// its payload type and payload, and that type is in-toto's. The error says why not.
pub fn open(envelope: &Envelope, key: &PublicKey) -> Result<Statement, String> {
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(format!(
            "the envelope's payload type is {:?}, not {INTOTO_PAYLOAD_TYPE:?}",
            envelope.payload_type
        ));
    }
    let body = payload_bytes(envelope)?;
    let signed = pae(&envelope.payload_type, &body);
    let verified = envelope.signatures.iter().any(|s| {
        B64.decode(s.sig.trim())
            .is_ok_and(|sig| key.verify(&signed, &sig))
    });
    if !verified {
        return Err("no signature of the envelope verifies with the key".into());
    }
    let st: Statement = serde_json::from_slice(&body)
        .map_err(|e| format!("the signed payload is not an in-toto statement: {e}"))?;
    if st.type_ != STATEMENT_V1 {
        return Err(format!(
            "the statement's _type is {:?}, not {STATEMENT_V1:?}",
            st.type_
        ));
    }
    Ok(st)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::sign::local::LocalSigner;

    #[test]
    fn pae_matches_the_spec_example() {
        // secure-systems-lab/dsse protocol.md, "Test vectors".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[tokio::test]
    async fn sealed_statements_open_only_with_their_key_payload_and_type() {
        let key = LocalSigner::generate_p256();
        let d = Digest::of(b"image");
        let st = Statement::new(
            vec![Subject::new(
                "r/app",
                &d,
                &BTreeMap::from([("a".into(), "b".into())]),
            )],
            "https://example.test/p",
            serde_json::json!({}),
        );
        let env = seal(&st, &key).await.unwrap();
        assert_eq!(open(&env, key.public_key()).unwrap(), st);
        assert_eq!(
            open(&env, key.public_key())
                .unwrap()
                .subject_for(&d)
                .unwrap()
                .name,
            "r/app"
        );

        let other = LocalSigner::generate_p256();
        assert!(
            open(&env, other.public_key())
                .unwrap_err()
                .contains("verifies")
        );

        // The payload changed, the signature kept.
        let mut forged = st.clone();
        forged.subject[0]
            .digest
            .insert("sha256".into(), "0".repeat(64));
        let mut tampered = env.clone();
        tampered.payload = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert!(open(&tampered, key.public_key()).is_err());

        // The type changed: refused, and the signature would not cover it either.
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(
            open(&retyped, key.public_key())
                .unwrap_err()
                .contains("payload type")
        );

        // A signature over the bare payload (no PAE) is not a DSSE signature.
        let body = B64.decode(&env.payload).unwrap();
        let bare = key.sign(&body).await.unwrap();
        let mut no_pae = env.clone();
        no_pae.signatures[0].sig = B64.encode(bare);
        assert!(open(&no_pae, key.public_key()).is_err());
    }
}
