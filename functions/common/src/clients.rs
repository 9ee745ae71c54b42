//! The clients a Lambda builds once per container, from its typed configuration.

use crate::config::{ConfigError, Gating, RegistrySettings};
use promotion_aws::ecr::SdkTokenSource;
use promotion_aws::inspector::InspectorSource;
use promotion_aws::kms::{KmsMessageMode, KmsSigner};
use promotion_aws::secrets::SecretsManagerStore;
use promotion_core::ecr::EcrCredentials;
use promotion_core::gate::{AssumeScanned, FindingsSource};
use promotion_core::registry::auth::ChainProvider;
use promotion_core::registry::secrets::SecretCredentials;
use promotion_core::sign::PublicKey;
use promotion_registry::{HttpConfig, HttpRegistry};
use std::sync::Arc;

/// The AWS SDK configuration (region, credentials and `AWS_ENDPOINT_URL` from the usual chain).
pub async fn sdk() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The registry client: ECR hosts (and aliases) authenticate with `GetAuthorizationToken`.
pub fn registry(
    sdk: &aws_config::SdkConfig,
    settings: &RegistrySettings,
) -> Result<HttpRegistry, ConfigError> {
    build_registry(
        settings,
        ChainProvider::default().with(Arc::new(ecr(sdk, settings))),
        "the function role's ECR access".to_owned(),
    )
}

/// copy-to-quarantine's and sync-plan's client: ECR as [`registry`], another account's ECR with a token its
/// role in `roles` (`SOURCE_ECR_ROLES`: account, role ARN) gets, then, with a `secret_prefix`
/// (`SOURCE_CREDENTIALS_SECRET_PREFIX`), every other registry's credentials from the Secrets
/// Manager secret `<prefix><host>`. Assumed roles' sessions are named `session_name`
/// (CloudTrail shows which function read the source).
pub async fn source_registry(
    sdk: &aws_config::SdkConfig,
    settings: &RegistrySettings,
    roles: &[(String, String)],
    secret_prefix: Option<&str>,
    session_name: &str,
) -> Result<HttpRegistry, ConfigError> {
    let mut tokens = SdkTokenSource::new(aws_sdk_ecr::config::Config::from(sdk));
    for (account, arn) in roles {
        // Assumed lazily, at the first token for that account, and renewed before expiry.
        let role = aws_config::sts::AssumeRoleProvider::builder(arn)
            .session_name(session_name)
            .configure(sdk)
            .build()
            .await;
        tokens = tokens.with_role(
            account,
            aws_sdk_ecr::config::SharedCredentialsProvider::new(role),
        );
    }
    let mut chain = ChainProvider::default().with(Arc::new(ecr_with(Arc::new(tokens), settings)));
    let hint = match secret_prefix {
        Some(prefix) => {
            let store = SecretsManagerStore(aws_sdk_secretsmanager::Client::new(sdk));
            chain = chain.with(Arc::new(SecretCredentials::new(Arc::new(store), prefix)));
            format!(
                "a Secrets Manager secret {prefix}<host> ({{\"username\", \"accessToken\"}}), \
                 SOURCE_CREDENTIALS_SECRET_PREFIX, or for ECR the function role's access"
            )
        }
        None => "SOURCE_CREDENTIALS_SECRET_PREFIX is not set: only ECR (the function role's \
                 access) and anonymous sources can be read"
            .to_owned(),
    };
    build_registry(settings, chain, hint)
}

fn ecr(sdk: &aws_config::SdkConfig, settings: &RegistrySettings) -> EcrCredentials {
    ecr_with(
        Arc::new(SdkTokenSource::new(aws_sdk_ecr::config::Config::from(sdk))),
        settings,
    )
}

fn ecr_with(tokens: Arc<SdkTokenSource>, settings: &RegistrySettings) -> EcrCredentials {
    let mut ecr = EcrCredentials::new(tokens);
    for (host, registry) in &settings.ecr_aliases {
        ecr = ecr.with_alias(host, registry.clone());
    }
    ecr
}

fn build_registry(
    settings: &RegistrySettings,
    provider: ChainProvider,
    credentials_hint: String,
) -> Result<HttpRegistry, ConfigError> {
    let config = HttpConfig {
        insecure_hosts: settings.insecure_registries.clone(),
        internal_hosts: settings.internal_registries.clone(),
        redirect_hosts: settings.redirect_hosts.clone(),
        credentials_hint,
        ..HttpConfig::default()
    };
    HttpRegistry::new(config, Arc::new(provider)).map_err(|e| ConfigError(e.to_string()))
}

/// A function that reads findings (scan-gate, promote-and-annotate, retag-for-environment).
pub trait ReadsFindings {
    /// Its deployment, policy and stand-in switch.
    fn gating(&self) -> &Gating;
}

/// `impl ReadsFindings for $config` over its `gating` field.
#[macro_export]
macro_rules! reads_findings {
    ($config:ty) => {
        impl $crate::clients::ReadsFindings for $config {
            fn gating(&self) -> &$crate::config::Gating {
                &self.gating
            }
        }
    };
}

/// What a function that reads findings builds at start-up: its configuration back, the SDK
/// configuration, the registry client and the findings source.
pub type WithFindings<C> = (
    C,
    aws_config::SdkConfig,
    HttpRegistry,
    Box<dyn FindingsSource>,
);

/// The clients of a function that reads findings; `promotion_lambda::start`'s `build`.
pub async fn with_findings<C: ReadsFindings>(c: C) -> Result<WithFindings<C>, ConfigError> {
    let g = c.gating();
    let sdk = sdk().await;
    let registry = registry(&sdk, &g.deployment.registry)?;
    let findings = findings(&sdk, g.assume_scanned);
    Ok((c, sdk, registry, findings))
}

/// Inspector as the findings source (`assume_scanned`: without ListCoverage, stand-ins only).
pub fn findings(sdk: &aws_config::SdkConfig, assume_scanned: bool) -> Box<dyn FindingsSource> {
    let inspector = InspectorSource::new(aws_sdk_inspector2::Client::new(sdk));
    if assume_scanned {
        Box::new(AssumeScanned(inspector))
    } else {
        Box::new(inspector)
    }
}

/// The KMS signer of key `id` (sign).
pub async fn signer(
    sdk: &aws_config::SdkConfig,
    id: &str,
    mode: KmsMessageMode,
) -> Result<KmsSigner, ConfigError> {
    KmsSigner::connect(aws_sdk_kms::Client::new(sdk), id, mode)
        .await
        .map_err(|e| ConfigError(format!("KMS_KEY_ID {id}: {e}")))
}

/// The approvers' keys of `envs`: PEM keys as given, `awskms:///` keys fetched once.
pub async fn approver_keys(
    sdk: &aws_config::SdkConfig,
    envs: &promotion_core::environment::Environments,
) -> Result<promotion_core::environment::ApproverKeys, ConfigError> {
    let kms = promotion_aws::kms::KmsKeys(aws_sdk_kms::Client::new(sdk));
    promotion_core::environment::approver_keys(envs, &kms)
        .await
        .map_err(|e| ConfigError(format!("ENVIRONMENTS: {e}")))
}

/// The public half of key `id` (retag verifies the pipeline's signature).
pub async fn public_key(sdk: &aws_config::SdkConfig, id: &str) -> Result<PublicKey, ConfigError> {
    promotion_aws::kms::public_key(&aws_sdk_kms::Client::new(sdk), id)
        .await
        .map_err(|e| ConfigError(format!("KMS_KEY_ID {id}: {e}")))
}
