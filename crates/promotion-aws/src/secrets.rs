//! AWS Secrets Manager `GetSecretValue`: the real [`SecretStore`] behind copy-to-quarantine's
//! source credentials (`promotion_core::registry::secrets`, which names, parses and caches).

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use promotion_core::registry::secrets::{SecretError, SecretStore};

/// `GetSecretValue` on the current version (`AWSCURRENT`) of a secret.
pub struct SecretsManagerStore(pub aws_sdk_secretsmanager::Client);

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn secret_text(&self, name: &str) -> Result<Option<String>, SecretError> {
        match self.0.get_secret_value().secret_id(name).send().await {
            Ok(out) => match out.secret_string() {
                Some(text) => Ok(Some(text.to_owned())),
                None => Err(SecretError::NotText {
                    name: name.to_owned(),
                }),
            },
            Err(e) => classify(name, e),
        }
    }
}

/// Not found is no secret; refused (no permission, a key it may not decrypt with, a secret
/// marked for deletion) is `Denied`; throttling, 5xx and transport failures are `Unavailable`.
/// The detail is the service's code and message only: an SDK error can carry the raw response,
/// and this one would carry the secret.
fn classify<E, R>(name: &str, e: SdkError<E, R>) -> Result<Option<String>, SecretError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let name = name.to_owned();
    let (code, detail) = crate::sdk_failure(&e);
    match code.as_deref() {
        Some("ResourceNotFoundException") => Ok(None),
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "DecryptionFailure"
            | "InvalidRequestException"
            | "InvalidParameterException",
        ) => Err(SecretError::Denied { name, detail }),
        // No answer (timeout, connection, dispatch), throttling, 5xx.
        _ => Err(SecretError::Unavailable { name, detail }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{Moto, Stub};
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    use serde_json::json;

    fn client(url: &str) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(url)
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    /// Against moto's Secrets Manager: a secret's current text, and no secret for a name
    /// that has none (or whose secret was deleted).
    #[tokio::test]
    async fn reads_a_secrets_text_and_an_absent_secret_is_none() {
        let moto = Moto::start();
        let c = client(&moto.url);
        let value = json!({"username": "robot", "accessToken": "t0ken"}).to_string();
        c.create_secret()
            .name("ecr-pullthroughcache/ghcr.io")
            .secret_string(&value)
            .send()
            .await
            .unwrap();
        let store = SecretsManagerStore(c.clone());
        assert_eq!(
            store
                .secret_text("ecr-pullthroughcache/ghcr.io")
                .await
                .unwrap(),
            Some(value)
        );
        assert_eq!(
            store
                .secret_text("ecr-pullthroughcache/quay.io")
                .await
                .unwrap(),
            None
        );
        c.delete_secret()
            .secret_id("ecr-pullthroughcache/ghcr.io")
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
        assert_eq!(
            store
                .secret_text("ecr-pullthroughcache/ghcr.io")
                .await
                .unwrap(),
            None
        );
    }

    /// Refusals and outages as the service words them (moto has no permissions to refuse):
    /// denied is `Denied`, throttled is `Unavailable`, and neither quotes a body.
    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let stub = Stub::start(|_, body| {
            let id = body["SecretId"].as_str().unwrap_or_default();
            let kind = if id.ends_with("denied") {
                "AccessDeniedException"
            } else {
                "ThrottlingException"
            };
            (
                400,
                json!({"__type": kind, "message": format!("{kind} for the test")}),
            )
        })
        .await;
        let store = SecretsManagerStore(client(&stub.url));
        let e = store.secret_text("p/denied").await.unwrap_err();
        assert!(matches!(e, SecretError::Denied { .. }), "{e:?}");
        assert!(e.to_string().contains("p/denied"), "{e}");
        let e = store.secret_text("p/slow").await.unwrap_err();
        assert!(matches!(e, SecretError::Unavailable { .. }), "{e:?}");
    }
}
