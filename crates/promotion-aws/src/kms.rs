//! AWS KMS as a [`Signer`], the way cosign's `awskms://` provider uses it.
//!
//! The key's algorithm comes from `DescribeKey`: `ECDSA_SHA_256` for `ECC_NIST_P256` (the default
//! key spec), and for RSA keys `RSASSA_PKCS1_V1_5_SHA_256` when the key offers it (what skopeo and
//! `cosign verify --key <pem>` check), else `RSASSA_PSS_SHA_256`. The public key comes from
//! `GetPublicKey` (DER SubjectPublicKeyInfo).
//!
//! # Message type
//!
//! On AWS the signer sends `MessageType=DIGEST` with the SHA-256 of the payload, as cosign does:
//! the payload never leaves the process, and `RAW` messages are limited to 4096 bytes, which a
//! payload with many claims can exceed. KMS then signs that digest exactly as it would have
//! signed the hash of the raw message, so the signature verifies over the payload.
//!
//! That is the default and what the template deploys, and it is proven against a KMS stand-in:
//! moto_server started through `scripts/moto_server.py`, a hand-written correction of
//! moto's DIGEST path (moto 5.2.5, the newest release, hashes the digest again, so its signatures
//! do not verify over the payload; ../shared/reference/test-infra.md §3). The adapter tests below
//! and the end-to-end state machine run sign in DIGEST mode there and verify the result over the
//! payload.
//!
//! The message type stays configuration ([`KmsMessageMode`]): `Raw` sends the payload itself, for
//! KMS stand-ins without that fix (plain moto_server). Whatever the mode, every signature must
//! verify with the key's public key before it is stored, the guard that keeps a KMS signing the
//! wrong bytes from writing garbage (tests/it/sign.rs runs plain moto in DIGEST mode against it).
//!
//! P-256 (`ECDSA_SHA_256`) is the recommended key. RSA works, with the caveat above: a PSS
//! signature (chosen only for a key that offers no PKCS#1 v1.5) is not accepted by every
//! verifier, and cosign itself signs with whichever algorithm the key lists first
//! (infra/README.md, "Signing key").

use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};
use promotion_core::sign::{PublicKey, SignError, Signer};
use sha2::Digest as _;

/// KMS refuses `RAW` messages longer than this.
pub const MAX_RAW_MESSAGE: usize = 4096;

/// How the payload is handed to KMS `Sign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KmsMessageMode {
    /// `MessageType=DIGEST` with SHA-256(payload): what cosign does; correct on AWS.
    #[default]
    Digest,
    /// `MessageType=RAW` with the payload (at most 4096 bytes): for KMS stand-ins whose `DIGEST`
    /// mode is wrong, such as moto_server without `scripts/moto_server.py`.
    Raw,
}

impl std::str::FromStr for KmsMessageMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "digest" => Ok(KmsMessageMode::Digest),
            "raw" => Ok(KmsMessageMode::Raw),
            _ => Err(format!(
                "invalid KMS message mode {s:?}: expected digest or raw"
            )),
        }
    }
}

/// The key id of a cosign KMS URI: `awskms:///<key id, ARN or alias/…>` (or
/// `awskms://<endpoint>/<key>`, whose endpoint is returned too). `None` when `s` is not one.
pub fn parse_kms_uri(s: &str) -> Option<(Option<String>, String)> {
    let rest = s.strip_prefix("awskms://")?;
    let (endpoint, key) = rest.split_once('/')?;
    if key.is_empty() {
        return None;
    }
    let endpoint = (!endpoint.is_empty()).then(|| endpoint.to_owned());
    Some((endpoint, key.to_owned()))
}

/// A KMS key that signs.
#[derive(Debug)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
    algorithm: SigningAlgorithmSpec,
    public: PublicKey,
    mode: KmsMessageMode,
}

impl KmsSigner {
    /// Look the key up (`DescribeKey`, `GetPublicKey`) and check that it can sign.
    pub async fn connect(
        client: aws_sdk_kms::Client,
        key_id: &str,
        mode: KmsMessageMode,
    ) -> Result<Self, SignError> {
        let described = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| kms_error("DescribeKey", key_id, e))?;
        let meta = described
            .key_metadata()
            .ok_or_else(|| SignError::Kms(format!("DescribeKey {key_id}: no key metadata")))?;
        if meta.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(SignError::Key(format!(
                "KMS key {key_id} cannot sign: its usage is {}",
                meta.key_usage().map_or("unknown", |u| u.as_str())
            )));
        }
        if meta.key_state().is_some_and(|s| *s != KeyState::Enabled) {
            return Err(SignError::Key(format!(
                "KMS key {key_id} cannot sign: it is {}",
                meta.key_state().map_or("unknown", |s| s.as_str())
            )));
        }
        let algorithms = meta.signing_algorithms();
        let algorithm = [
            SigningAlgorithmSpec::EcdsaSha256,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            SigningAlgorithmSpec::RsassaPssSha256,
        ]
        .into_iter()
        .find(|a| algorithms.contains(a))
        .ok_or_else(|| {
            SignError::Key(format!(
                "KMS key {key_id} has no supported SHA-256 signing algorithm (it offers {}); \
                 use an ECC_NIST_P256 or RSA key",
                algorithms
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let public = public_key(&client, key_id).await?;
        Ok(KmsSigner {
            client,
            key_id: key_id.to_owned(),
            algorithm,
            public,
            mode,
        })
    }
}

/// The public key of a KMS key (`GetPublicKey`), for verification.
pub async fn public_key(
    client: &aws_sdk_kms::Client,
    key_id: &str,
) -> Result<PublicKey, SignError> {
    let out = client
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| kms_error("GetPublicKey", key_id, e))?;
    let der = out
        .public_key()
        .ok_or_else(|| SignError::Kms(format!("GetPublicKey {key_id}: no public key returned")))?;
    PublicKey::from_spki_der(der.as_ref())
}

/// Approvers' KMS keys (`awskms:///<key>`), fetched with `GetPublicKey` through one client.
/// A URI naming its own endpoint is refused: the pipeline talks to its configured KMS only.
pub struct KmsKeys(pub aws_sdk_kms::Client);

#[async_trait]
impl promotion_core::environment::KeySource for KmsKeys {
    async fn public_key(&self, uri: &str) -> Result<PublicKey, SignError> {
        match parse_kms_uri(uri) {
            Some((None, id)) => public_key(&self.0, &id).await,
            Some((Some(endpoint), _)) => Err(SignError::Key(format!(
                "{uri}: a KMS endpoint ({endpoint}) in an approver's key is not allowed; use \
                 awskms:///<key>"
            ))),
            None => Err(SignError::Key(format!(
                "{uri}: expected awskms:///<key id, ARN or alias>"
            ))),
        }
    }
}

#[async_trait]
impl Signer for KmsSigner {
    async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        let (message, message_type) = match self.mode {
            KmsMessageMode::Digest => (sha2::Sha256::digest(payload).to_vec(), MessageType::Digest),
            KmsMessageMode::Raw => {
                if payload.len() > MAX_RAW_MESSAGE {
                    return Err(SignError::Input(format!(
                        "the payload is {} bytes; KMS RAW messages are limited to {MAX_RAW_MESSAGE} \
                         (use the digest message mode, or fewer claims)",
                        payload.len()
                    )));
                }
                (payload.to_vec(), MessageType::Raw)
            }
        };
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(message_type)
            .signing_algorithm(self.algorithm.clone())
            .send()
            .await
            .map_err(|e| kms_error("Sign", &self.key_id, e))?;
        out.signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| SignError::Kms(format!("Sign {}: no signature returned", self.key_id)))
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn describe(&self) -> String {
        format!("awskms:///{} ({})", self.key_id, self.algorithm.as_str())
    }
}

/// Map an SDK failure onto `Kms.Throttled` (worth retrying), `Key.Invalid` (the key cannot be
/// used) or `Kms.Failed`.
fn kms_error<E, R>(op: &str, key_id: &str, e: SdkError<E, R>) -> SignError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SignError::KmsThrottled(format!("{op} {key_id}: KMS unreachable or timed out"))
        }
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown");
            let msg = format!("{op} {key_id}: {code}: {}", err.message().unwrap_or(""));
            match code {
                "ThrottlingException"
                | "KMSInternalException"
                | "DependencyTimeoutException"
                | "LimitExceededException" => SignError::KmsThrottled(msg),
                "InvalidKeyUsageException"
                | "DisabledException"
                | "KMSInvalidStateException"
                | "UnsupportedOperationException"
                | "IncorrectKeyException" => SignError::Key(msg),
                _ => SignError::Kms(msg),
            }
        }
        _ => SignError::Kms(format!(
            "{op} {key_id}: {}",
            aws_sdk_kms::error::DisplayErrorContext(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Moto;
    use aws_sdk_kms::config::retry::RetryConfig;
    use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_kms::error::ErrorMetadata;
    use aws_sdk_kms::operation::sign::SignError as SdkSignError;
    use aws_sdk_kms::types::KeySpec;
    use promotion_core::error::{Classify as _, ErrorType};

    fn service(code: &str) -> SignError {
        let err = SdkSignError::generic(ErrorMetadata::builder().code(code).message("m").build());
        kms_error("Sign", "k", SdkError::<_, ()>::service_error(err, ()))
    }

    #[test]
    fn sdk_errors_map_to_stable_names() {
        for (code, expected) in [
            ("ThrottlingException", ErrorType::KmsThrottled),
            ("KMSInternalException", ErrorType::KmsThrottled),
            ("DisabledException", ErrorType::KeyInvalid),
            ("InvalidKeyUsageException", ErrorType::KeyInvalid),
            ("NotFoundException", ErrorType::KmsFailed),
            ("AccessDeniedException", ErrorType::KmsFailed),
        ] {
            let e = service(code);
            assert_eq!(e.error_type(), expected, "{code}: {e}");
            assert!(e.to_string().contains(code), "{e}");
        }
        assert!(ErrorType::KmsThrottled.is_retryable());
        assert!(!ErrorType::KmsFailed.is_retryable());
    }

    #[test]
    fn kms_uris() {
        assert_eq!(
            parse_kms_uri("awskms:///alias/signer"),
            Some((None, "alias/signer".into()))
        );
        assert_eq!(
            parse_kms_uri("awskms://localhost:4566/1234"),
            Some((Some("localhost:4566".into()), "1234".into()))
        );
        assert_eq!(parse_kms_uri("cosign.key"), None);
        assert_eq!(parse_kms_uri("awskms:///"), None);
        assert_eq!("raw".parse(), Ok(KmsMessageMode::Raw));
        assert!("x".parse::<KmsMessageMode>().is_err());
    }

    /// A KMS client for moto, with the SDK's own retries off.
    fn moto_client(moto: &Moto) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(&moto.url)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// A SIGN_VERIFY key, created with a plain SDK call (not with the code under test).
    async fn signing_key(client: &aws_sdk_kms::Client, spec: KeySpec) -> String {
        let out = client
            .create_key()
            .key_spec(spec)
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await
            .unwrap();
        out.key_metadata().unwrap().key_id().to_owned()
    }

    /// DIGEST (the default, what the template deploys) against moto with DIGEST corrected: the
    /// signature verifies over the payload with the key's public key (GetPublicKey), for the
    /// recommended P-256 key and for RSA, where the signer picks PKCS#1 v1.5.
    #[tokio::test]
    async fn digest_signatures_verify_over_the_payload_for_p256_and_rsa() {
        let moto = Moto::start();
        let client = moto_client(&moto);
        // Longer than RAW allows: DIGEST signs payloads of any size.
        let payload = br#"{"critical":{"type":"cosign container image signature"}}"#.repeat(100);
        assert!(payload.len() > MAX_RAW_MESSAGE);
        for (spec, algorithm) in [
            (KeySpec::EccNistP256, SigningAlgorithmSpec::EcdsaSha256),
            (KeySpec::Rsa3072, SigningAlgorithmSpec::RsassaPkcs1V15Sha256),
        ] {
            let key_id = signing_key(&client, spec.clone()).await;
            let signer = KmsSigner::connect(client.clone(), &key_id, KmsMessageMode::default())
                .await
                .unwrap();
            assert_eq!(signer.algorithm, algorithm, "{spec:?}");
            let sig = signer.sign(&payload).await.unwrap();

            let public = public_key(&client, &key_id).await.unwrap();
            assert!(public.verify(&payload, &sig), "{spec:?}: {}", public.kind());
            assert!(!public.verify(b"another payload", &sig), "{spec:?}");
            // Not a signature of the digest taken as a message (moto's uncorrected DIGEST).
            assert!(
                !public.verify(&sha2::Sha256::digest(&payload), &sig),
                "{spec:?}"
            );
        }
    }

    /// What the corrected stand-in does beyond the signer's path: RSASSA-PSS in DIGEST mode (a
    /// salt as long as the hash, as KMS) verifies with our verifier; a digest of the wrong length
    /// is refused as AWS refuses it; RAW, for stand-ins without the fix, still signs.
    #[tokio::test]
    async fn the_stand_in_signs_pss_refuses_short_digests_and_still_signs_raw() {
        let moto = Moto::start();
        let client = moto_client(&moto);
        let payload = b"payload".to_vec();
        let digest = sha2::Sha256::digest(&payload).to_vec();

        let rsa = signing_key(&client, KeySpec::Rsa2048).await;
        let out = client
            .sign()
            .key_id(&rsa)
            .message(Blob::new(digest.clone()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
            .send()
            .await
            .unwrap();
        let public = public_key(&client, &rsa).await.unwrap();
        assert!(public.verify(&payload, out.signature().unwrap().as_ref()));

        let p256 = signing_key(&client, KeySpec::EccNistP256).await;
        let err = client
            .sign()
            .key_id(&p256)
            .message(Blob::new(digest[..20].to_vec()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.as_service_error().and_then(|e| e.code()),
            Some("ValidationException"),
            "{err:?}"
        );

        let signer = KmsSigner::connect(client.clone(), &p256, KmsMessageMode::Raw)
            .await
            .unwrap();
        let sig = signer.sign(&payload).await.unwrap();
        assert!(signer.public_key().verify(&payload, &sig));
        let too_long = vec![b'x'; MAX_RAW_MESSAGE + 1];
        let e = signer.sign(&too_long).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::InputInvalid, "{e}");
    }
}
