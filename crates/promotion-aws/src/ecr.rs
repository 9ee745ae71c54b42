//! ECR `GetAuthorizationToken` through `aws-sdk-ecr`: the real [`EcrTokenSource`]. Caching and
//! host recognition are the domain's (`promotion_core::ecr`).

use async_trait::async_trait;
use aws_sdk_ecr::config::SharedCredentialsProvider;
use promotion_core::ecr::{EcrRegistry, EcrToken, EcrTokenSource, decode_token};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// `GetAuthorizationToken` through `aws-sdk-ecr`, one client per region (a registry's region
/// need not be the caller's) and credentials: the caller's own, or for an account given a role
/// ([`SdkTokenSource::with_role`]) that role's, so that another account's ECR is read as that
/// account allows its role to, not through a repository policy naming the pipeline.
pub struct SdkTokenSource {
    base: aws_sdk_ecr::config::Config,
    roles: HashMap<String, SharedCredentialsProvider>,
    clients: Mutex<HashMap<(String, Option<String>), aws_sdk_ecr::Client>>,
}

impl SdkTokenSource {
    /// From an SDK configuration built at the edge (credentials chain, endpoint override).
    pub fn new(base: aws_sdk_ecr::config::Config) -> Self {
        SdkTokenSource {
            base,
            roles: HashMap::new(),
            clients: Mutex::default(),
        }
    }

    /// Tokens for `account`'s registries with `credentials` (an assumed role's, built at the
    /// edge: `aws_config::sts::AssumeRoleProvider`).
    pub fn with_role(mut self, account: &str, credentials: SharedCredentialsProvider) -> Self {
        self.roles.insert(account.to_owned(), credentials);
        self
    }
}

#[async_trait]
impl EcrTokenSource for SdkTokenSource {
    async fn token(&self, registry: &EcrRegistry) -> Result<EcrToken, String> {
        let role = self.roles.get(&registry.account);
        let client = {
            let mut clients = self.clients.lock().await;
            let key = (
                registry.region.clone(),
                role.map(|_| registry.account.clone()),
            );
            clients
                .entry(key)
                .or_insert_with(|| {
                    let mut conf = self
                        .base
                        .to_builder()
                        .region(aws_sdk_ecr::config::Region::new(registry.region.clone()));
                    if let Some(credentials) = role {
                        conf = conf.credentials_provider(credentials.clone());
                    }
                    aws_sdk_ecr::Client::from_conf(conf.build())
                })
                .clone()
        };
        // registryIds is deprecated but still selects the account for cross-account pulls.
        #[allow(deprecated)]
        let out = client
            .get_authorization_token()
            .registry_ids(&registry.account)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetAuthorizationToken failed: {}",
                    aws_sdk_ecr::error::DisplayErrorContext(e)
                )
            })?;
        let data = out
            .authorization_data()
            .first()
            .ok_or("GetAuthorizationToken returned no data")?;
        let token = data
            .authorization_token()
            .ok_or("GetAuthorizationToken returned no token")?;
        let expires_at = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600));
        decode_token(token, expires_at)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::Stub;
    use base64::Engine as _;
    use serde_json::json;

    #[tokio::test]
    async fn sdk_token_source_calls_get_authorization_token_for_the_registry_account() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:from-ecr");
        let srv = Stub::start(move |_, _| {
            (
                200,
                json!({"authorizationData":[{"authorizationToken": token, "expiresAt": 1893456000,
                    "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}]}),
            )
        })
        .await;
        let conf = aws_sdk_ecr::Config::builder()
            .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
            .region(aws_sdk_ecr::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                "AKID", "SECRET", None, None, "test",
            ))
            .endpoint_url(&srv.url)
            .build();
        let source = SdkTokenSource::new(conf);
        let registry =
            EcrRegistry::from_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap();
        let t = source.token(&registry).await.unwrap();
        assert_eq!(
            (t.username.as_str(), t.password.as_str()),
            ("AWS", "from-ecr")
        );
        assert_eq!(
            t.expires_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
        );
        let head = srv.heads().join("\n").to_lowercase();
        assert!(
            head.contains(
                "x-amz-target: amazonec2containerregistry_v20150921.getauthorizationtoken"
            ),
            "{head}"
        );
        // The registry's region, not the configured one, signs the request.
        assert!(head.contains("/eu-west-1/ecr/aws4_request"), "{head}");
    }

    /// Another account's registry: the token is asked for with that account's role's
    /// credentials (here static ones standing in for `AssumeRoleProvider`'s, which the Lambda
    /// builds; moto's STS is exercised in functions/common), every other account with the
    /// caller's own.
    #[tokio::test]
    async fn another_accounts_registry_is_asked_for_with_its_roles_credentials() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:t");
        let srv = Stub::start(move |_, _| {
            (
                200,
                json!({"authorizationData":[{"authorizationToken": token}]}),
            )
        })
        .await;
        let conf = aws_sdk_ecr::Config::builder()
            .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
            .region(aws_sdk_ecr::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                "AKIDOWNROLE",
                "SECRET",
                None,
                None,
                "test",
            ))
            .endpoint_url(&srv.url)
            .build();
        let role = SharedCredentialsProvider::new(aws_sdk_ecr::config::Credentials::new(
            "ASIASOURCEROLE",
            "SECRET",
            Some("session".into()),
            None,
            "assumed",
        ));
        let source = SdkTokenSource::new(conf).with_role("210987654321", role);
        for host in [
            "210987654321.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        ] {
            source
                .token(&EcrRegistry::from_host(host).unwrap())
                .await
                .unwrap();
        }
        let heads = srv.heads();
        assert_eq!(heads.len(), 2, "{heads:?}");
        let credential = |h: &str| {
            h.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .map(str::to_owned)
                .unwrap_or_default()
        };
        assert!(
            credential(&heads[0]).contains("Credential=ASIASOURCEROLE/"),
            "{heads:?}"
        );
        assert!(
            credential(&heads[1]).contains("Credential=AKIDOWNROLE/"),
            "{heads:?}"
        );
        // The registry id selects the account in both.
        let bodies = srv.requests("/");
        assert_eq!(
            bodies[0]["registryIds"],
            json!(["210987654321"]),
            "{bodies:?}"
        );
    }
}
