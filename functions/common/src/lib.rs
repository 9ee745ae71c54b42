//! What the five pipeline Lambdas share: configuration parsed once from the environment,
//! clients built once per container, the stable `errorType` names, and one canonical JSON log
//! line per invocation.
//!
//! Each Lambda's `main` is a few lines: read [`Config`], build the clients it needs, and hand
//! [`serve`] a closure that parses its request and calls `promotion_core::pipeline`.
//!
//! Errors: lambda_runtime names an error by its Rust type unless told otherwise; the state
//! machine matches on names, so every failure leaves here as a [`Diagnostic`] whose `errorType`
//! is one of `promotion_core::ErrorType::ALL`. The event is taken as raw JSON and parsed here, so
//! even a malformed event is `Input.Invalid` with a message naming the field (lambda_runtime's own
//! deserialisation would report a type name).

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use promotion_core::ErrorType;
use promotion_core::copy::CopyOptions;
use promotion_core::environment::Environments;
use promotion_core::error::Classify;
use promotion_core::gate::inspector::InspectorSource;
use promotion_core::gate::{AssumeScanned, FindingsSource, Policy};
use promotion_core::mutate::Entries;
use promotion_core::pipeline::{Repositories, parse_repository};
use promotion_core::registry::auth::ChainProvider;
use promotion_core::registry::ecr::{EcrCredentials, EcrRegistry, SdkTokenSource};
use promotion_core::registry::http::{HttpConfig, HttpRegistry};
use promotion_core::sign::kms::{KmsMessageMode, KmsSigner};
use promotion_core::sign::store::SignMode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// A configuration or start-up failure, naming the variable.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Everything the functions read from their environment, parsed and validated once.
pub struct Config {
    /// Quarantine and trusted repositories, and the ingress registry.
    pub repos: Repositories,
    /// The gate policy (`GATE_POLICY`, JSON or YAML; default: the built-in policy).
    pub policy: Policy,
    /// The environments (`ENVIRONMENTS`; default: dev, staging, prod).
    pub environments: Environments,
    /// `SCAN_POLL_SECONDS` (default 30).
    pub poll_seconds: u64,
    /// `SCAN_MAX_WAIT_SECONDS` (default: the policy's `max_wait_seconds`).
    pub max_wait_seconds: u64,
    /// `KMS_KEY_ID`.
    pub kms_key_id: Option<String>,
    /// `KMS_MESSAGE_MODE` (`digest`, default, or `raw` for moto).
    pub kms_message_mode: KmsMessageMode,
    /// `SIGN_MODE` (`referrer`, `tag`, `both`; default `both`).
    pub sign_mode: SignMode,
    /// `ANNOTATIONS` (JSON object).
    pub annotations: Entries,
    /// `LABELS` (JSON object).
    pub labels: Entries,
    /// `ECR_REGISTRY_ALIASES`: `host=<account>.dkr.ecr.<region>.amazonaws.com`, comma-separated.
    pub ecr_aliases: Vec<(String, EcrRegistry)>,
    /// `INSECURE_REGISTRIES`: hosts reached over plain HTTP (stand-ins only).
    pub insecure_registries: Vec<String>,
    /// `INSPECTOR_ASSUME_SCANNED=true`: skip ListCoverage (stand-ins without it only).
    pub assume_scanned: bool,
    /// `COPY_CONCURRENCY` (default 4).
    pub copy_concurrency: usize,
}

/// Where configuration values come from: the process environment, or a map in tests.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn var(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.var(name)
            .ok_or_else(|| ConfigError(format!("{name} is not set")))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ConfigError(format!("{name}={v:?} is not a whole number"))),
        }
    }

    fn entries(&self, name: &str, what: &str) -> Result<Entries, ConfigError> {
        let Some(text) = self.var(name) else {
            return Ok(Entries::default());
        };
        let map: BTreeMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| ConfigError(format!("{name} must be a JSON object of strings: {e}")))?;
        Entries::from_input(what, map).map_err(|e| ConfigError(format!("{name}: {e}")))
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.var(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Config {
    /// Reads the environment once. Every error names the variable.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(&|name: &str| std::env::var(name).ok())
    }

    /// The configuration from `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let v = Vars(lookup);
        let repo = |name: &str| -> Result<_, ConfigError> {
            parse_repository(name, &v.required(name)?).map_err(|e| ConfigError(e.to_string()))
        };
        let repos = Repositories {
            ingress_registry: v.var("INGRESS_REGISTRY"),
            quarantine: repo("QUARANTINE_REPOSITORY")?,
            trusted: repo("TRUSTED_REPOSITORY")?,
        };
        let policy = match v.var("GATE_POLICY") {
            Some(t) => Policy::parse(&t).map_err(|e| ConfigError(format!("GATE_POLICY: {e}")))?,
            None => Policy::default(),
        };
        let mut environments = match v.var("ENVIRONMENTS") {
            Some(t) => {
                Environments::parse(&t).map_err(|e| ConfigError(format!("ENVIRONMENTS: {e}")))?
            }
            None => Environments::default(),
        };
        // The deployment's approval type (the one its EventBridge rule matches) must be the one
        // approvals are resolved by: a document naming another type is a configuration error.
        if let Some(t) = v.var("APPROVAL_ARTIFACT_TYPE") {
            let from_doc = &environments.approval_artifact_type;
            if *from_doc != t
                && from_doc != promotion_core::environment::config::DEFAULT_APPROVAL_ARTIFACT_TYPE
            {
                return Err(ConfigError(format!(
                    "APPROVAL_ARTIFACT_TYPE={t:?} but ENVIRONMENTS names approval_artifact_type {from_doc:?}"
                )));
            }
            environments.approval_artifact_type = t;
        }
        let poll_seconds = v.number("SCAN_POLL_SECONDS", 30)?.max(1);
        let max_wait_seconds =
            v.number("SCAN_MAX_WAIT_SECONDS", policy.rules(None).max_wait_seconds)?;
        let parse_mode = |name: &str, default: &str| v.var(name).unwrap_or_else(|| default.into());
        let kms_message_mode = parse_mode("KMS_MESSAGE_MODE", "digest")
            .parse()
            .map_err(|e| ConfigError(format!("KMS_MESSAGE_MODE: {e}")))?;
        let sign_mode = parse_mode("SIGN_MODE", "both")
            .parse()
            .map_err(|e| ConfigError(format!("SIGN_MODE: {e}")))?;
        let mut ecr_aliases = Vec::new();
        for item in v.list("ECR_REGISTRY_ALIASES") {
            let (host, ecr) = item
                .split_once('=')
                .and_then(|(h, e)| Some((h.to_owned(), EcrRegistry::from_host(e)?)))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "ECR_REGISTRY_ALIASES: {item:?} is not host=<account>.dkr.ecr.<region>.amazonaws.com"
                    ))
                })?;
            ecr_aliases.push((host, ecr));
        }
        let assume_scanned = match v.var("INSPECTOR_ASSUME_SCANNED").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(ConfigError(format!(
                    "INSPECTOR_ASSUME_SCANNED={v:?}: expected true or false"
                )));
            }
        };
        Ok(Config {
            repos,
            policy,
            environments,
            poll_seconds,
            max_wait_seconds,
            kms_key_id: v.var("KMS_KEY_ID"),
            kms_message_mode,
            sign_mode,
            annotations: v.entries("ANNOTATIONS", "annotation")?,
            labels: v.entries("LABELS", "label")?,
            ecr_aliases,
            insecure_registries: v.list("INSECURE_REGISTRIES"),
            assume_scanned,
            copy_concurrency: v.number("COPY_CONCURRENCY", 4)?.clamp(1, 64) as usize,
        })
    }

    /// Transfer settings.
    pub fn copy_options(&self) -> CopyOptions {
        CopyOptions {
            concurrency: self.copy_concurrency,
            ..CopyOptions::default()
        }
    }

    /// The AWS SDK configuration (region, credentials and `AWS_ENDPOINT_URL` from the usual
    /// chain).
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
    }

    /// The registry client: ECR hosts (and aliases) authenticate with `GetAuthorizationToken`.
    pub fn registry(&self, sdk: &aws_config::SdkConfig) -> Result<HttpRegistry, ConfigError> {
        let mut ecr = EcrCredentials::new(Arc::new(SdkTokenSource::new(
            aws_sdk_ecr::config::Config::from(sdk),
        )));
        for (host, registry) in &self.ecr_aliases {
            ecr = ecr.with_alias(host, registry.clone());
        }
        let provider = ChainProvider::default().with(Arc::new(ecr));
        let config = HttpConfig {
            insecure_hosts: self.insecure_registries.clone(),
            ..HttpConfig::default()
        };
        HttpRegistry::new(config, Arc::new(provider)).map_err(|e| ConfigError(e.to_string()))
    }

    /// Inspector as the findings source.
    pub fn findings(&self, sdk: &aws_config::SdkConfig) -> Box<dyn FindingsSource> {
        let inspector = InspectorSource::new(aws_sdk_inspector2::Client::new(sdk));
        if self.assume_scanned {
            Box::new(AssumeScanned(inspector))
        } else {
            Box::new(inspector)
        }
    }

    /// The KMS signer (sign).
    pub async fn signer(&self, sdk: &aws_config::SdkConfig) -> Result<KmsSigner, ConfigError> {
        let id = self
            .kms_key_id
            .as_deref()
            .ok_or_else(|| ConfigError("KMS_KEY_ID is not set".into()))?;
        KmsSigner::connect(aws_sdk_kms::Client::new(sdk), id, self.kms_message_mode)
            .await
            .map_err(|e| ConfigError(format!("KMS_KEY_ID {id}: {e}")))
    }

    /// The signing key's public half (retag verifies the pipeline's signature).
    pub async fn public_key(
        &self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<promotion_core::sign::PublicKey, ConfigError> {
        let id = self
            .kms_key_id
            .as_deref()
            .ok_or_else(|| ConfigError("KMS_KEY_ID is not set".into()))?;
        promotion_core::sign::kms::public_key(&aws_sdk_kms::Client::new(sdk), id)
            .await
            .map_err(|e| ConfigError(format!("KMS_KEY_ID {id}: {e}")))
    }
}

/// JSON logs on stdout (what CloudWatch ingests), level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .init();
}

/// A failure as the state machine sees it: a stable `errorType` and a message.
pub fn diagnostic<E: Classify + std::fmt::Display>(e: &E) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().as_str().to_owned(),
        error_message: e.to_string(),
    }
}

/// Start-up: read the configuration and build the clients, or log why not and exit non-zero
/// (Lambda reports an init error; the state machine's Catch records it).
pub async fn start<T, F, Fut>(step: &'static str, build: F) -> T
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<T, ConfigError>>,
{
    init_tracing();
    let started = Instant::now();
    let built = match Config::from_env() {
        Ok(c) => build(c).await,
        Err(e) => Err(e),
    };
    match built {
        Ok(t) => {
            tracing::info!(
                step,
                init_ms = started.elapsed().as_millis() as u64,
                "ready"
            );
            t
        }
        Err(e) => {
            tracing::error!(step, error = %e, "configuration");
            std::process::exit(1);
        }
    }
}

/// Serve invocations of `step` with `handler` until the runtime stops. Each invocation ends with
/// one canonical log line: step, request id, X-Ray trace id, outcome, error type, duration.
pub async fn serve<Res, E, F, Fut>(
    step: &'static str,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    Res: Serialize,
    E: Classify + std::fmt::Display,
    F: Fn(serde_json::Value) -> Fut,
    Fut: Future<Output = Result<Res, E>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let started = Instant::now();
            let (payload, ctx) = event.into_parts();
            let result = handler(payload).await;
            let duration_ms = started.elapsed().as_millis() as u64;
            let trace = ctx.xray_trace_id.as_deref().unwrap_or("");
            match result {
                Ok(out) => {
                    tracing::info!(step, request_id = %ctx.request_id, xray_trace_id = trace,
                    outcome = "ok", duration_ms, "done");
                    serde_json::to_value(&out).map_err(|e| Diagnostic {
                        error_type: ErrorType::ImageInvalid.as_str().to_owned(),
                        error_message: format!("cannot serialise the result: {e}"),
                    })
                }
                Err(e) => {
                    let d = diagnostic(&e);
                    tracing::warn!(step, request_id = %ctx.request_id, xray_trace_id = trace,
                    outcome = "failed", error_type = %d.error_type, error = %d.error_message,
                    duration_ms, "done");
                    Err(d)
                }
            }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([
            (
                "QUARANTINE_REPOSITORY".into(),
                "reg.test/promotion/quarantine".into(),
            ),
            (
                "TRUSTED_REPOSITORY".into(),
                "reg.test/promotion/trusted".into(),
            ),
        ]);
        for (k, v) in pairs {
            map.insert((*k).into(), (*v).into());
        }
        Config::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_every_error_names_its_variable() {
        let c = config(&[]).unwrap();
        assert_eq!(c.poll_seconds, 30);
        assert_eq!(c.environments, Environments::default());
        assert!(!c.assume_scanned);
        let cases = [
            (("TRUSTED_REPOSITORY", ""), "TRUSTED_REPOSITORY is not set"),
            (
                ("TRUSTED_REPOSITORY", "reg.test/app:1"),
                "TRUSTED_REPOSITORY",
            ),
            (("SCAN_POLL_SECONDS", "soon"), "SCAN_POLL_SECONDS=\"soon\""),
            (("ANNOTATIONS", "[1]"), "ANNOTATIONS must be a JSON object"),
            (("LABELS", r#"{"io.ecr-promotion.x":"1"}"#), "LABELS"),
            (("GATE_POLICY", "block_severity: [HIGH]"), "GATE_POLICY"),
            (("ENVIRONMENTS", "environments: []"), "ENVIRONMENTS"),
            (
                ("ECR_REGISTRY_ALIASES", "127.0.0.1:5000"),
                "ECR_REGISTRY_ALIASES",
            ),
            (
                ("INSPECTOR_ASSUME_SCANNED", "yes"),
                "INSPECTOR_ASSUME_SCANNED",
            ),
            (("KMS_MESSAGE_MODE", "sha1"), "KMS_MESSAGE_MODE"),
        ];
        for ((k, v), needle) in cases {
            let e = config(&[(k, v)])
                .err()
                .unwrap_or_else(|| panic!("{k}={v} accepted"));
            assert!(e.0.contains(needle), "{k}={v}: {e}");
        }
    }

    #[test]
    fn the_deployment_approval_type_wins_unless_the_document_names_another() {
        let c = config(&[("APPROVAL_ARTIFACT_TYPE", "application/x.approve")]).unwrap();
        assert_eq!(
            c.environments.approval_artifact_type,
            "application/x.approve"
        );
        let doc = "environments: [{name: dev}]\napproval_artifact_type: application/x.other";
        let e = config(&[
            ("ENVIRONMENTS", doc),
            ("APPROVAL_ARTIFACT_TYPE", "application/x.approve"),
        ])
        .err()
        .expect("mismatch refused");
        assert!(e.0.contains("application/x.other"), "{e}");
        let same = "environments: [{name: dev}]\napproval_artifact_type: application/x.approve";
        assert!(
            config(&[
                ("ENVIRONMENTS", same),
                ("APPROVAL_ARTIFACT_TYPE", "application/x.approve")
            ])
            .is_ok()
        );
        let alias = config(&[(
            "ECR_REGISTRY_ALIASES",
            "127.0.0.1:5000=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        )])
        .unwrap();
        assert_eq!(alias.ecr_aliases[0].0, "127.0.0.1:5000");
        assert_eq!(alias.ecr_aliases[0].1.region, "eu-west-1");
    }
}
