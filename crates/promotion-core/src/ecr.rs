//! ECR registries: recognising their host names, and credentials from `GetAuthorizationToken`
//! (through the [`EcrTokenSource`] port) cached until shortly before they expire (tokens live 12
//! hours; one call per registry and container is plenty).

use crate::clock::{Clock, SystemClock};
use crate::registry::RegistryError;
use crate::registry::auth::{CredentialProvider, Credentials};
use async_trait::async_trait;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// An ECR private registry host: its account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EcrRegistry {
    /// 12-digit account id.
    pub account: String,
    /// Region (`eu-west-1`).
    pub region: String,
}

impl EcrRegistry {
    /// Recognise `<account>.dkr.ecr.<region>.amazonaws.com` (FIPS and China partitions too):
    /// the account is 12 ASCII digits, the region one label of `[a-z0-9-]`. Matched by hand
    /// rather than with a regex, which would cost every process a compilation on first use.
    pub fn from_host(host: &str) -> Option<Self> {
        let rest = host
            .strip_suffix(".amazonaws.com.cn")
            .or_else(|| host.strip_suffix(".amazonaws.com"))?;
        let (account, rest) = rest.split_once('.')?;
        let region = rest
            .strip_prefix("dkr.ecr.")
            .or_else(|| rest.strip_prefix("dkr.ecr-fips."))?;
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (account_ok && region_ok).then(|| EcrRegistry {
            account: account.to_owned(),
            region: region.to_owned(),
        })
    }
}

/// A decoded authorization token.
#[derive(Clone)]
pub struct EcrToken {
    /// Always `AWS` in practice.
    pub username: String,
    /// The token.
    pub password: String,
    /// When ECR says it expires.
    pub expires_at: SystemTime,
}

/// Calls `GetAuthorizationToken`. The port; `promotion_aws::ecr::SdkTokenSource` is the real one.
#[async_trait]
pub trait EcrTokenSource: Send + Sync {
    /// A fresh token for `registry`.
    async fn token(&self, registry: &EcrRegistry) -> Result<EcrToken, String>;
}

/// Decode ECR's base64 `AWS:<password>` token.
pub fn decode_token(b64: &str, expires_at: SystemTime) -> Result<EcrToken, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "the authorization token is not base64".to_owned())?;
    let raw =
        String::from_utf8(raw).map_err(|_| "the authorization token is not UTF-8".to_owned())?;
    let (u, p) = raw
        .split_once(':')
        .ok_or("the authorization token is not USER:PASSWORD")?;
    Ok(EcrToken {
        username: u.to_owned(),
        password: p.to_owned(),
        expires_at,
    })
}

/// Credentials for ECR hosts, anonymous for every other host.
pub struct EcrCredentials {
    source: Arc<dyn EcrTokenSource>,
    clock: Arc<dyn Clock>,
    /// Refresh this long before ECR's expiry, so no request carries a token that expires in
    /// flight.
    margin: Duration,
    cache: Mutex<HashMap<EcrRegistry, EcrToken>>,
    aliases: HashMap<String, EcrRegistry>,
}

impl EcrCredentials {
    /// With the system clock and a 15-minute refresh margin.
    pub fn new(source: Arc<dyn EcrTokenSource>) -> Self {
        Self::with_clock(source, Arc::new(SystemClock))
    }

    /// With an injected clock (tests).
    pub fn with_clock(source: Arc<dyn EcrTokenSource>, clock: Arc<dyn Clock>) -> Self {
        EcrCredentials {
            source,
            clock,
            margin: Duration::from_secs(15 * 60),
            cache: Mutex::default(),
            aliases: HashMap::new(),
        }
    }

    /// Also treat `host` as the ECR registry `registry`: for stand-ins (a local registry whose
    /// password is a token from a local ECR API) and for proxies in front of ECR.
    pub fn with_alias(mut self, host: &str, registry: EcrRegistry) -> Self {
        self.aliases.insert(host.to_owned(), registry);
        self
    }
}

#[async_trait]
impl CredentialProvider for EcrCredentials {
    async fn credentials(&self, host: &str) -> Result<Credentials, RegistryError> {
        let Some(registry) =
            EcrRegistry::from_host(host).or_else(|| self.aliases.get(host).cloned())
        else {
            return Ok(Credentials::Anonymous);
        };
        // Held across the call on purpose: concurrent copies wait for one token request.
        let mut cache = self.cache.lock().await;
        let now = self.clock.now();
        let fresh = cache
            .get(&registry)
            .filter(|t| now + self.margin < t.expires_at)
            .cloned();
        let token = match fresh {
            Some(t) => t,
            None => {
                let t = self.source.token(&registry).await.map_err(|detail| {
                    RegistryError::Credentials {
                        registry: host.to_owned(),
                        detail,
                    }
                })?;
                tracing::debug!(registry = host, "fetched an ECR authorization token");
                cache.insert(registry, t.clone());
                t
            }
        };
        Ok(Credentials::Basic {
            username: token.username,
            password: token.password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct FakeSource(AtomicUsize);
    #[async_trait]
    impl EcrTokenSource for FakeSource {
        async fn token(&self, _: &EcrRegistry) -> Result<EcrToken, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("AWS:tok{n}"));
            decode_token(
                &b64,
                SystemTime::UNIX_EPOCH + Duration::from_secs(12 * 3600),
            )
        }
    }
    struct FakeClock(StdMutex<SystemTime>);
    impl Clock for FakeClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    #[test]
    fn recognises_ecr_hosts_only() {
        let r = EcrRegistry::from_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(
            (r.account.as_str(), r.region.as_str()),
            ("123456789012", "eu-west-1")
        );
        assert!(
            EcrRegistry::from_host("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com").is_some()
        );
        assert!(EcrRegistry::from_host("public.ecr.aws").is_none());
        assert!(EcrRegistry::from_host("123.dkr.ecr.eu-west-1.amazonaws.com").is_none());
        assert!(
            EcrRegistry::from_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.io")
                .is_none()
        );
        let cn = EcrRegistry::from_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn");
        assert_eq!(cn.map(|r| r.region), Some("cn-north-1".to_owned()));
        for not_ecr in [
            // Digits in other scripts are not an account id.
            "\u{661}23456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "1234567890123.dkr.ecr.eu-west-1.amazonaws.com",
            "12345678901a.dkr.ecr.eu-west-1.amazonaws.com",
            // The region is one lowercase label.
            "123456789012.dkr.ecr.eu.west-1.amazonaws.com",
            "123456789012.dkr.ecr.EU-west-1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecrx.eu-west-1.amazonaws.com",
            "x.123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn.evil",
        ] {
            assert!(EcrRegistry::from_host(not_ecr).is_none(), "{not_ecr}");
        }
    }

    #[tokio::test]
    async fn caches_the_token_until_shortly_before_expiry() {
        let source = Arc::new(FakeSource(AtomicUsize::new(0)));
        let clock = Arc::new(FakeClock(StdMutex::new(SystemTime::UNIX_EPOCH)));
        let creds = EcrCredentials::with_clock(source.clone(), clock.clone());
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let pw = |c: Credentials| match c {
            Credentials::Basic { username, password } => format!("{username}:{password}"),
            Credentials::Anonymous => "anon".into(),
        };
        assert_eq!(pw(creds.credentials(host).await.unwrap()), "AWS:tok0");
        *clock.0.lock().unwrap() += Duration::from_secs(11 * 3600);
        assert_eq!(
            pw(creds.credentials(host).await.unwrap()),
            "AWS:tok0",
            "still cached"
        );
        *clock.0.lock().unwrap() += Duration::from_secs(50 * 60);
        assert_eq!(
            pw(creds.credentials(host).await.unwrap()),
            "AWS:tok1",
            "refreshed 10 min before expiry"
        );
        assert_eq!(pw(creds.credentials("ghcr.io").await.unwrap()), "anon");
        assert_eq!(source.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn rejects_malformed_tokens() {
        assert!(decode_token("!!", SystemTime::UNIX_EPOCH).is_err());
        let b64 = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert!(decode_token(&b64, SystemTime::UNIX_EPOCH).is_err());
    }
}
