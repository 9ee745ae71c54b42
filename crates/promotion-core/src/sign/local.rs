//! Local keys: cosign's encrypted key files and plain PEM keys.
//!
//! cosign (`cosign generate-key-pair`, also `skopeo generate-sigstore-key`) writes the PKCS#8 DER
//! private key encrypted in a JSON envelope, PEM-wrapped as `ENCRYPTED SIGSTORE PRIVATE KEY`
//! (older releases: `ENCRYPTED COSIGN PRIVATE KEY`):
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<base64>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<base64>"},"ciphertext":"<base64>"}
//! ```
//!
//! The secretbox key is `scrypt(password, salt, N, r, p)` (32 bytes); the ciphertext is NaCl's
//! (tag first). Plain keys: PKCS#8 `PRIVATE KEY`, encrypted PKCS#8 `ENCRYPTED PRIVATE KEY`, SEC1
//! `EC PRIVATE KEY` and PKCS#1 `RSA PRIVATE KEY`.
//!
//! The core never reads the file or the password: the edge hands in their contents.

use super::{PublicKey, SignError, Signer};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

/// PEM label of cosign's current encrypted key files.
pub const SIGSTORE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of older cosign encrypted key files.
pub const COSIGN_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// Largest scrypt cost accepted from a key file (cosign uses 2^15; more is a denial of service).
const MAX_LOG_N: u8 = 20;

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

enum Key {
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2_10::Sha256>>),
}

/// A signer holding its private key in memory.
pub struct LocalSigner {
    key: Key,
    public: PublicKey,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        write!(f, "LocalSigner({})", self.public.kind())
    }
}

fn key_err(msg: impl Into<String>) -> SignError {
    SignError::Key(msg.into())
}

impl LocalSigner {
    /// A signer from a PEM key file's contents. `password` is needed for encrypted keys (cosign
    /// accepts an empty one).
    pub fn from_pem(pem: &str, password: Option<&[u8]>) -> Result<Self, SignError> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| key_err(format!("not a PEM private key: {e}")))?;
        match label {
            SIGSTORE_KEY_LABEL | COSIGN_KEY_LABEL => {
                let password = password.ok_or_else(|| {
                    key_err("the key file is encrypted and no password was given")
                })?;
                Self::from_pkcs8_der(&decrypt_cosign(&der, password)?)
            }
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or_else(|| {
                    key_err("the key file is encrypted and no password was given")
                })?;
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| key_err(format!("malformed encrypted PKCS#8 key: {e}")))?;
                let doc = info
                    .decrypt(password)
                    .map_err(|_| key_err("cannot decrypt the key: wrong password"))?;
                Self::from_pkcs8_der(doc.as_bytes())
            }
            "EC PRIVATE KEY" => {
                let k = p256::SecretKey::from_sec1_der(&der)
                    .map_err(|_| key_err("only P-256 EC keys are supported"))?;
                Ok(Self::p256(k.into()))
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey as _;
                let k = rsa::RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| key_err(format!("malformed RSA key: {e}")))?;
                Ok(Self::rsa(k))
            }
            other => Err(key_err(format!(
                "unsupported PEM block {other:?}: expected a cosign key file or a PKCS#8 private key"
            ))),
        }
    }

    /// A signer from PKCS#8 DER (P-256 or RSA).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        use pkcs8::DecodePrivateKey as _;
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            return Ok(Self::p256(k.into()));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
            return Ok(Self::rsa(k));
        }
        Err(key_err(
            "unsupported private key: ECDSA P-256 and RSA keys are supported",
        ))
    }

    fn p256(k: p256::ecdsa::SigningKey) -> Self {
        LocalSigner {
            public: PublicKey::P256(*k.verifying_key()),
            key: Key::P256(k),
        }
    }

    fn rsa(k: rsa::RsaPrivateKey) -> Self {
        LocalSigner {
            public: PublicKey::Rsa(k.to_public_key()),
            key: Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))),
        }
    }

    /// A fresh P-256 key (tests, demos).
    pub fn generate_p256() -> Self {
        loop {
            let mut b = [0u8; 32];
            rand::rng().fill_bytes(&mut b);
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&b) {
                return Self::p256(k);
            }
        }
    }

    /// The private key as PKCS#8 DER (to write a key file).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, SignError> {
        use pkcs8::EncodePrivateKey as _;
        let doc = match &self.key {
            Key::P256(k) => p256::SecretKey::from(k).to_pkcs8_der(),
            Key::Rsa(k) => k.as_ref().as_ref().to_pkcs8_der(),
        };
        doc.map(|d| d.as_bytes().to_vec())
            .map_err(|e| key_err(format!("cannot encode the key: {e}")))
    }
}

#[async_trait]
impl Signer for LocalSigner {
    async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        Ok(match &self.key {
            Key::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(payload);
                sig.to_der().as_bytes().to_vec()
            }
            Key::Rsa(k) => k.sign(payload).to_vec(),
        })
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn describe(&self) -> String {
        format!("local {} key", self.public.kind())
    }
}

fn decrypt_cosign(envelope: &[u8], password: &[u8]) -> Result<Vec<u8>, SignError> {
    let env: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| key_err(format!("malformed cosign key file: {e}")))?;
    if env.kdf.name != "scrypt" || env.cipher.name != "nacl/secretbox" {
        return Err(key_err(format!(
            "unsupported cosign key encryption {}/{}",
            env.kdf.name, env.cipher.name
        )));
    }
    let b64 = |s: &str, what: &str| {
        B64.decode(s)
            .map_err(|_| key_err(format!("malformed cosign key file: bad base64 in {what}")))
    };
    let salt = b64(&env.kdf.salt, "salt")?;
    let nonce = b64(&env.cipher.nonce, "nonce")?;
    let ciphertext = b64(&env.ciphertext, "ciphertext")?;
    let n = env.kdf.params.n;
    if !n.is_power_of_two() || n < 2 || n.trailing_zeros() > u32::from(MAX_LOG_N) {
        return Err(key_err(format!("unsupported scrypt cost N={n}")));
    }
    let params = scrypt::Params::new(
        n.trailing_zeros() as u8,
        env.kdf.params.r,
        env.kdf.params.p,
        32,
    )
    .map_err(|e| key_err(format!("unsupported scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key)
        .map_err(|e| key_err(format!("scrypt: {e}")))?;
    if nonce.len() != 24 {
        return Err(key_err(
            "malformed cosign key file: the nonce is not 24 bytes",
        ));
    }
    let cipher = XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map_err(|_| key_err("cannot decrypt the key file: wrong password"))
}

/// Encrypt PKCS#8 DER as a cosign key file (`ENCRYPTED SIGSTORE PRIVATE KEY`) with scrypt cost
/// `2^log_n` (cosign uses 15).
pub fn encrypt_cosign_key(
    pkcs8_der: &[u8],
    password: &[u8],
    log_n: u8,
) -> Result<String, SignError> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut salt);
    rand::rng().fill_bytes(&mut nonce);
    let params = scrypt::Params::new(log_n, 8, 1, 32)
        .map_err(|e| key_err(format!("scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key)
        .map_err(|e| key_err(format!("scrypt: {e}")))?;
    let ciphertext = XSalsa20Poly1305::new(&key.into())
        .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), pkcs8_der)
        .map_err(|_| key_err("encryption failed"))?;
    let env = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1u64 << log_n,
                r: 8,
                p: 1,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    let json = serde_json::to_vec(&env).map_err(|e| key_err(e.to_string()))?;
    pkcs8::der::pem::encode_string(SIGSTORE_KEY_LABEL, Default::default(), &json)
        .map_err(|e| key_err(format!("PEM: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorType};

    #[tokio::test]
    async fn cosign_key_file_round_trip_and_wrong_password() {
        let k = LocalSigner::generate_p256();
        let pem = encrypt_cosign_key(&k.to_pkcs8_der().unwrap(), b"s3cret", 10).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let back = LocalSigner::from_pem(&pem, Some(b"s3cret")).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        let sig = back.sign(b"payload").await.unwrap();
        assert!(k.public_key().verify(b"payload", &sig));
        assert!(!k.public_key().verify(b"payloaD", &sig), "tampered payload");
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            !k.public_key().verify(b"payload", &bad),
            "tampered signature"
        );
        let other = LocalSigner::generate_p256();
        assert!(!other.public_key().verify(b"payload", &sig), "wrong key");

        let e = LocalSigner::from_pem(&pem, Some(b"nope")).unwrap_err();
        assert_eq!(e.error_type(), ErrorType::KeyInvalid);
        assert!(e.to_string().contains("wrong password"), "{e}");
        assert!(LocalSigner::from_pem(&pem, None).is_err());
        // The public key survives PEM.
        let pub_pem = k.public_key().to_pem().unwrap();
        assert_eq!(&PublicKey::from_pem(&pub_pem).unwrap(), k.public_key());
    }

    #[tokio::test]
    async fn pkcs8_pem_keys_ecdsa_and_rsa() {
        use pkcs8::EncodePrivateKey as _;
        let k = LocalSigner::generate_p256();
        let der = k.to_pkcs8_der().unwrap();
        let pem = pkcs8::der::pem::encode_string("PRIVATE KEY", Default::default(), &der).unwrap();
        let back = LocalSigner::from_pem(&pem, None).unwrap();
        assert_eq!(back.public_key(), k.public_key());

        let mut rng = rsa::rand_core::OsRng;
        let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let pem = rsa_key.to_pkcs8_pem(Default::default()).unwrap();
        let s = LocalSigner::from_pem(&pem, None).unwrap();
        let sig = s.sign(b"hello").await.unwrap();
        assert!(s.public_key().verify(b"hello", &sig));
        assert!(!s.public_key().verify(b"hellO", &sig));
        assert_eq!(s.public_key().kind(), "rsa-2048");

        let e = LocalSigner::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::KeyInvalid);
    }
}
