//! ECR `GetAuthorizationToken` through `aws-sdk-ecr`: the real [`EcrTokenSource`]. Caching and
//! host recognition are the domain's (`promotion_core::ecr`).

use async_trait::async_trait;
use promotion_core::ecr::{EcrRegistry, EcrToken, EcrTokenSource, decode_token};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// `GetAuthorizationToken` through `aws-sdk-ecr`, one client per region (a registry's region
/// need not be the caller's).
pub struct SdkTokenSource {
    base: aws_sdk_ecr::config::Config,
    clients: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
}

impl SdkTokenSource {
    /// From an SDK configuration built at the edge (credentials chain, endpoint override).
    pub fn new(base: aws_sdk_ecr::config::Config) -> Self {
        SdkTokenSource {
            base,
            clients: Mutex::default(),
        }
    }
}

#[async_trait]
impl EcrTokenSource for SdkTokenSource {
    async fn token(&self, registry: &EcrRegistry) -> Result<EcrToken, String> {
        let client = {
            let mut clients = self.clients.lock().await;
            clients
                .entry(registry.region.clone())
                .or_insert_with(|| {
                    let conf = self
                        .base
                        .to_builder()
                        .region(aws_sdk_ecr::config::Region::new(registry.region.clone()))
                        .build();
                    aws_sdk_ecr::Client::from_conf(conf)
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
}
