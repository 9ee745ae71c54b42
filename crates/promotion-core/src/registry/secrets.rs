//! Source registry credentials kept in a secret store (AWS Secrets Manager in the Lambdas): one
//! secret per registry host, named `<prefix><host>` (a port after `_`, as secret names have no
//! `:`), holding the JSON ECR pull-through cache rules use, `{"username": …, "accessToken": …}`,
//! so one secret can serve both.
//!
//! Read when a registry first challenges and kept for the container's life; read again when
//! the registry refuses them ([`CredentialProvider::refreshed`]: a rotated secret). An absent
//! secret is not remembered: one created later is found at the next challenge. Nothing read is
//! logged or put into an error: a malformed secret is named, never quoted.

use super::RegistryError;
use super::auth::{CredentialProvider, Credentials, async_trait, normalise_host};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Where secrets are read (Secrets Manager's `GetSecretValue` in the Lambdas).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret's text; `Ok(None)` when there is no secret of that name.
    async fn secret_text(&self, name: &str) -> Result<Option<String>, SecretError>;
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The store refused (no permission, a key the caller may not decrypt with).
    #[error("reading secret {name} was refused: {detail}")]
    Denied {
        /// The secret's name.
        name: String,
        /// The store's reason (never the value).
        detail: String,
    },
    /// The store could not answer now (throttled, unavailable): worth retrying.
    #[error("secret {name} could not be read: {detail}")]
    Unavailable {
        /// The secret's name.
        name: String,
        /// The store's reason.
        detail: String,
    },
    /// The secret is not text (a binary secret).
    #[error("secret {name} has no text value")]
    NotText {
        /// The secret's name.
        name: String,
    },
}

/// Credentials per registry host from a [`SecretStore`].
pub struct SecretCredentials {
    store: Arc<dyn SecretStore>,
    prefix: String,
    cache: Mutex<HashMap<String, Credentials>>,
}

impl SecretCredentials {
    /// Secrets named `prefix` + host.
    pub fn new(store: Arc<dyn SecretStore>, prefix: &str) -> Self {
        SecretCredentials {
            store,
            prefix: prefix.to_owned(),
            cache: Mutex::default(),
        }
    }

    /// The secret holding `registry`'s credentials: `ghcr.io` → `<prefix>ghcr.io`,
    /// `registry.example.com:5000` → `<prefix>registry.example.com_5000`; Docker Hub under
    /// `index.docker.io` whichever of its names is used.
    pub fn secret_name(&self, registry: &str) -> String {
        format!(
            "{}{}",
            self.prefix,
            normalise_host(registry).replace(':', "_")
        )
    }

    async fn read(&self, registry: &str) -> Result<Credentials, RegistryError> {
        let name = self.secret_name(registry);
        let creds = match self.store.secret_text(&name).await {
            Ok(None) => {
                tracing::debug!(registry, secret = %name, "no secret for this registry");
                return Ok(Credentials::Anonymous);
            }
            Ok(Some(text)) => parse(&text).ok_or_else(|| RegistryError::Credentials {
                registry: registry.to_owned(),
                detail: format!(
                    "secret {name} is not JSON with non-empty \"username\" and \"accessToken\" \
                     strings (the ECR pull-through cache shape)"
                ),
            })?,
            Err(e @ SecretError::Unavailable { .. }) => {
                return Err(RegistryError::Transient {
                    what: format!("credentials for {registry}"),
                    detail: e.to_string(),
                    retry_after: None,
                });
            }
            Err(e) => {
                return Err(RegistryError::Credentials {
                    registry: registry.to_owned(),
                    detail: e.to_string(),
                });
            }
        };
        tracing::debug!(registry, secret = %name, "credentials read from the secret");
        self.cache
            .lock()
            .await
            .insert(normalise_host(registry).to_owned(), creds.clone());
        Ok(creds)
    }
}

/// `{"username", "accessToken"}`, both non-empty strings; other fields are ignored.
fn parse(text: &str) -> Option<Credentials> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        username: String,
        access_token: String,
    }
    let s: Shape = serde_json::from_str(text).ok()?;
    (!s.username.is_empty() && !s.access_token.is_empty()).then_some(Credentials::Basic {
        username: s.username,
        password: s.access_token,
    })
}

#[async_trait]
impl CredentialProvider for SecretCredentials {
    async fn credentials(&self, registry: &str) -> Result<Credentials, RegistryError> {
        if let Some(c) = self.cache.lock().await.get(normalise_host(registry)) {
            return Ok(c.clone());
        }
        self.read(registry).await
    }

    async fn refreshed(&self, registry: &str) -> Result<Credentials, RegistryError> {
        self.cache.lock().await.remove(normalise_host(registry));
        self.read(registry).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ErrorType;
    use crate::error::Classify as _;
    use std::sync::Mutex as StdMutex;

    /// Secrets by name, and every name asked for.
    #[derive(Default)]
    struct Store {
        secrets: StdMutex<HashMap<String, Result<String, &'static str>>>,
        asked: StdMutex<Vec<String>>,
    }

    impl Store {
        fn put(&self, name: &str, value: Result<String, &'static str>) {
            self.secrets.lock().unwrap().insert(name.into(), value);
        }
        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl SecretStore for Store {
        async fn secret_text(&self, name: &str) -> Result<Option<String>, SecretError> {
            self.asked.lock().unwrap().push(name.into());
            match self.secrets.lock().unwrap().get(name) {
                None => Ok(None),
                Some(Ok(v)) => Ok(Some(v.clone())),
                Some(Err("denied")) => Err(SecretError::Denied {
                    name: name.into(),
                    detail: "AccessDeniedException".into(),
                }),
                Some(Err(_)) => Err(SecretError::Unavailable {
                    name: name.into(),
                    detail: "ThrottlingException".into(),
                }),
            }
        }
    }

    fn shape(user: &str, token: &str) -> Result<String, &'static str> {
        Ok(serde_json::json!({"username": user, "accessToken": token}).to_string())
    }

    fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            username: user.into(),
            password: password.into(),
        }
    }

    #[tokio::test]
    async fn secrets_are_named_by_host_read_once_and_read_again_when_refused() {
        let store = Arc::new(Store::default());
        let p = SecretCredentials::new(store.clone(), "ecr-pullthroughcache/");
        assert_eq!(
            p.secret_name("docker.io"),
            "ecr-pullthroughcache/index.docker.io"
        );
        assert_eq!(
            p.secret_name("registry.example.com:5000"),
            "ecr-pullthroughcache/registry.example.com_5000"
        );
        store.put("ecr-pullthroughcache/ghcr.io", shape("robot", "t1"));
        assert_eq!(
            p.credentials("ghcr.io").await.unwrap(),
            basic("robot", "t1")
        );
        assert_eq!(
            p.credentials("ghcr.io").await.unwrap(),
            basic("robot", "t1")
        );
        assert_eq!(store.asked().len(), 1, "read once: {:?}", store.asked());
        // Rotated: the cached value stays until the registry refuses it.
        store.put("ecr-pullthroughcache/ghcr.io", shape("robot", "t2"));
        assert_eq!(
            p.credentials("ghcr.io").await.unwrap(),
            basic("robot", "t1")
        );
        assert_eq!(p.refreshed("ghcr.io").await.unwrap(), basic("robot", "t2"));
        assert_eq!(
            p.credentials("ghcr.io").await.unwrap(),
            basic("robot", "t2")
        );
        assert_eq!(store.asked().len(), 2);
    }

    #[tokio::test]
    async fn an_absent_secret_is_anonymous_and_not_remembered() {
        let store = Arc::new(Store::default());
        let p = SecretCredentials::new(store.clone(), "p/");
        assert_eq!(
            p.credentials("quay.io").await.unwrap(),
            Credentials::Anonymous
        );
        store.put("p/quay.io", shape("u", "created-later"));
        assert_eq!(
            p.credentials("quay.io").await.unwrap(),
            basic("u", "created-later")
        );
    }

    #[tokio::test]
    async fn malformed_denied_and_unavailable_secrets_fail_without_their_value() {
        let store = Arc::new(Store::default());
        let p = SecretCredentials::new(store.clone(), "p/");
        for (host, value) in [
            ("a.io", Ok("hunter2-not-json".to_owned())),
            (
                "b.io",
                Ok(r#"{"username": "u", "accessToken": 1234567}"#.to_owned()),
            ),
            (
                "c.io",
                Ok(r#"{"username": "", "accessToken": "hunter2"}"#.to_owned()),
            ),
            (
                "d.io",
                Ok(r#"{"user": "u", "password": "hunter2"}"#.to_owned()),
            ),
        ] {
            store.put(&format!("p/{host}"), value);
            let e = p.credentials(host).await.unwrap_err();
            assert_eq!(
                e.error_type(),
                ErrorType::RegistryUnauthorized,
                "{host}: {e}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&format!("p/{host}")), "{msg}");
            assert!(
                !msg.contains("hunter2") && !msg.contains("1234567"),
                "{msg}"
            );
        }
        store.put("p/e.io", Err("denied"));
        let e = p.credentials("e.io").await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::RegistryUnauthorized, "{e}");
        store.put("p/f.io", Err("throttled"));
        let e = p.credentials("f.io").await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::RegistryTransient, "{e}");
    }
}
