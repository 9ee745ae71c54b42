//! Where `promote` finds registry credentials, in order: `--src-creds`/`--dst-creds` (or
//! their environment variables), Docker's `config.json` (`DOCKER_CONFIG`, credential helpers
//! included), ECR's `GetAuthorizationToken` for ECR hosts, then anonymous.

use promotion_core::registry::RegistryError;
use promotion_core::registry::auth::{
    ChainProvider, CredentialProvider, Credentials, StaticCredentials,
};
use std::sync::Arc;

use ecr::LazyEcr;

/// The provider chain.
pub fn chain(
    fixed: Vec<(String, Credentials)>,
    region: Option<String>,
    endpoint: Option<String>,
) -> ChainProvider {
    let mut explicit = StaticCredentials::default();
    for (host, c) in fixed {
        explicit.insert(&host, c);
    }
    ChainProvider::default()
        .with(Arc::new(explicit))
        .with(Arc::new(DockerConfig))
        .with(Arc::new(LazyEcr::new(region, endpoint)))
}

/// Docker's `config.json`, read through the `docker_credential` crate (which also runs
/// `credsStore`/`credHelpers`).
struct DockerConfig;

#[promotion_core::registry::auth::async_trait]
impl CredentialProvider for DockerConfig {
    async fn credentials(&self, registry: &str) -> Result<Credentials, RegistryError> {
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        let host = registry.to_owned();
        let found = tokio::task::spawn_blocking(move || docker_credential::get_credential(&host))
            .await
            .map_err(|e| RegistryError::Credentials {
                registry: registry.to_owned(),
                detail: e.to_string(),
            })?;
        match found {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Ok(Credentials::Basic { username, password })
            }
            // Identity tokens are OAuth refresh tokens; the Basic/Bearer flow cannot use them.
            Ok(DockerCredential::IdentityToken(_)) => Ok(Credentials::Anonymous),
            Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => {
                Ok(Credentials::Anonymous)
            }
            // Helper output can contain secrets: name the failure, not what it printed.
            Err(E::HelperFailure { helper, .. }) => Err(RegistryError::Credentials {
                registry: registry.to_owned(),
                detail: format!("docker credential helper {helper:?} failed"),
            }),
            Err(e) => Err(RegistryError::Credentials {
                registry: registry.to_owned(),
                detail: format!("Docker config.json: {e}"),
            }),
        }
    }
}

mod ecr {
    //! ECR credentials, with the AWS configuration loaded only when an ECR host shows up.

    use crate::inputs::aws_config;
    use promotion_aws::ecr::SdkTokenSource;
    use promotion_core::ecr::{EcrCredentials, EcrRegistry};
    use promotion_core::registry::RegistryError;
    use promotion_core::registry::auth::{CredentialProvider, Credentials};
    use std::sync::Arc;
    use tokio::sync::OnceCell;

    /// ECR credentials through the AWS SDK, configured on first use.
    pub struct LazyEcr {
        region: Option<String>,
        endpoint: Option<String>,
        inner: OnceCell<EcrCredentials>,
    }

    impl LazyEcr {
        /// Configured from `--aws-region` and `--aws-endpoint-url`.
        pub fn new(region: Option<String>, endpoint: Option<String>) -> Self {
            LazyEcr {
                region,
                endpoint,
                inner: OnceCell::new(),
            }
        }
    }

    #[promotion_core::registry::auth::async_trait]
    impl CredentialProvider for LazyEcr {
        async fn credentials(&self, registry: &str) -> Result<Credentials, RegistryError> {
            if EcrRegistry::from_host(registry).is_none() {
                return Ok(Credentials::Anonymous);
            }
            let inner = self
                .inner
                .get_or_init(|| async {
                    let sdk = aws_config(self.region.clone(), self.endpoint.clone()).await;
                    EcrCredentials::new(Arc::new(SdkTokenSource::new(
                        aws_sdk_ecr::config::Config::from(&sdk),
                    )))
                })
                .await;
            inner.credentials(registry).await
        }
    }
}
