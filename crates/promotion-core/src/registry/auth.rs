//! Where registry credentials come from.
//!
//! The HTTP adapter asks a [`CredentialProvider`] for a registry's credentials only when the
//! registry challenges (401), then runs the challenge: HTTP Basic, or the bearer-token flow of
//! Docker Hub, GHCR and Quay (credentials go to a token realm only on the registry's own
//! origin). Providers are composed at the edge: the CLI's are explicit credentials, then
//! Docker's `config.json`, then ECR's `GetAuthorizationToken`, then anonymous; copy-to-quarantine's
//! are ECR's, then a secret store ([`super::secrets`]).

use super::RegistryError;
pub use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials: anonymous access (public registries still hand out anonymous tokens).
    Anonymous,
    /// A user name and a password or token (ECR: `AWS` and the authorization token).
    Basic {
        /// User name.
        username: String,
        /// Password or token. Never logged: `Debug` redacts it.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}:<redacted>)"),
        }
    }
}

impl Credentials {
    /// Parse `USER:PASS` (the password may itself contain colons).
    pub fn parse_user_pass(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(Credentials::Basic {
                username: u.to_owned(),
                password: p.to_owned(),
            }),
            _ => Err("credentials must be USER:PASSWORD with neither part empty".to_owned()),
        }
    }
}

/// Supplies credentials for a registry host (`127.0.0.1:5000`, `index.docker.io`, …).
#[async_trait]
pub trait CredentialProvider: Send + Sync {
    /// Credentials for `registry`, or [`Credentials::Anonymous`] when this provider has none.
    async fn credentials(&self, registry: &str) -> Result<Credentials, RegistryError>;

    /// Credentials for `registry` after it refused the ones this provider gave: a provider
    /// that caches reads its source again (a rotated secret). By default, [`Self::credentials`].
    async fn refreshed(&self, registry: &str) -> Result<Credentials, RegistryError> {
        self.credentials(registry).await
    }
}

/// Fixed credentials per registry host.
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials(HashMap<String, Credentials>);

impl StaticCredentials {
    /// Add (or replace) the credentials of `registry`.
    pub fn insert(&mut self, registry: &str, creds: Credentials) {
        self.0.insert(normalise_host(registry).to_owned(), creds);
    }
}

#[async_trait]
impl CredentialProvider for StaticCredentials {
    async fn credentials(&self, registry: &str) -> Result<Credentials, RegistryError> {
        Ok(self
            .0
            .get(normalise_host(registry))
            .cloned()
            .unwrap_or(Credentials::Anonymous))
    }
}

/// Asks each provider in turn; the first that has credentials wins.
#[derive(Default, Clone)]
pub struct ChainProvider(Vec<Arc<dyn CredentialProvider>>);

impl ChainProvider {
    /// Append a provider (asked after the ones already there).
    pub fn with(mut self, p: Arc<dyn CredentialProvider>) -> Self {
        self.0.push(p);
        self
    }
}

impl ChainProvider {
    /// The first provider's credentials that are not anonymous (`refresh`: each asked for
    /// fresh ones).
    async fn first(&self, registry: &str, refresh: bool) -> Result<Credentials, RegistryError> {
        for p in &self.0 {
            let c = if refresh {
                p.refreshed(registry).await?
            } else {
                p.credentials(registry).await?
            };
            if c != Credentials::Anonymous {
                return Ok(c);
            }
        }
        Ok(Credentials::Anonymous)
    }
}

#[async_trait]
impl CredentialProvider for ChainProvider {
    async fn credentials(&self, registry: &str) -> Result<Credentials, RegistryError> {
        self.first(registry, false).await
    }

    async fn refreshed(&self, registry: &str) -> Result<Credentials, RegistryError> {
        self.first(registry, true).await
    }
}

/// Docker Hub has three names; credentials stored under any of them apply to all.
pub fn normalise_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "index.docker.io",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chain_takes_the_first_provider_with_credentials_and_debug_redacts() {
        let mut a = StaticCredentials::default();
        a.insert(
            "docker.io",
            Credentials::parse_user_pass("u:p:with:colons").unwrap(),
        );
        let chain = ChainProvider::default()
            .with(Arc::new(StaticCredentials::default()))
            .with(Arc::new(a));
        let c = chain.credentials("index.docker.io").await.unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "u".into(),
                password: "p:with:colons".into()
            }
        );
        assert!(!format!("{c:?}").contains("colons"));
        assert_eq!(
            chain.credentials("ghcr.io").await.unwrap(),
            Credentials::Anonymous
        );
        assert!(Credentials::parse_user_pass("nopass").is_err());
        assert!(Credentials::parse_user_pass(":p").is_err());
    }
}
