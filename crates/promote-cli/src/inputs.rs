//! The edge: what the verbs read from files, the environment and AWS, never the core. Keys
//! (`awskms:///…` or a key file), gate policies, findings (a file or Inspector), and the AWS
//! SDK configuration every AWS client starts from.
//!
//! Keys: `awskms:///<key id, ARN or alias/…>` (KMS, configured by `--aws-region` and
//! `--aws-endpoint-url`), or a key file. Private key files are cosign's encrypted ones (password
//! in `COSIGN_PASSWORD`) or PEM PKCS#8; public keys are PEM (a private key file works too).

use crate::Cli;
use crate::output::{Failure, input};
use promotion_aws::inspector::InspectorSource;
use promotion_aws::kms::{self, KmsMessageMode, KmsSigner, parse_kms_uri};
use promotion_core::ErrorType;
use promotion_core::gate::{AssumeScanned, FileSource, FindingsSource, Policy};
use promotion_core::sign::local::LocalSigner;
use promotion_core::sign::{PublicKey, SignError, Signer};
use std::path::PathBuf;

/// The AWS SDK configuration: the usual chain, with this region and endpoint when given.
pub async fn aws_config(region: Option<String>, endpoint: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

fn key_failure(message: String) -> Failure {
    Failure::new(ErrorType::KeyInvalid, message)
}

async fn kms_client(cli: &Cli, uri_endpoint: Option<String>) -> aws_sdk_kms::Client {
    // `--aws-endpoint-url` wins; an endpoint inside the URI (`awskms://host/key`) is HTTPS.
    let endpoint = cli
        .aws_endpoint_url
        .clone()
        .or_else(|| uri_endpoint.map(|host| format!("https://{host}")));
    aws_sdk_kms::Client::new(&aws_config(cli.aws_region.clone(), endpoint).await)
}

fn read_key_file(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| key_failure(format!("cannot read key file {path}: {e}")))
}

/// cosign's convention: the password of an encrypted key file is in `COSIGN_PASSWORD`.
fn cosign_password() -> Option<Vec<u8>> {
    std::env::var_os("COSIGN_PASSWORD").map(|p| p.into_encoded_bytes())
}

/// The signing key `--key` names: KMS or a private key file.
pub async fn signer(
    cli: &Cli,
    key: &str,
    mode: KmsMessageMode,
) -> Result<Box<dyn Signer>, Failure> {
    if let Some((endpoint, id)) = parse_kms_uri(key) {
        let client = kms_client(cli, endpoint).await;
        return Ok(Box::new(KmsSigner::connect(client, &id, mode).await?));
    }
    if key.starts_with("awskms:") {
        return Err(input(format!(
            "--key {key:?}: expected awskms:///KEY-ID-OR-ARN"
        )));
    }
    let pem = read_key_file(key)?;
    let password = cosign_password();
    let s = LocalSigner::from_pem(&pem, password.as_deref()).map_err(|e| match e {
        SignError::Key(m) if m.contains("no password") => {
            key_failure(format!("{key}: {m}; set COSIGN_PASSWORD"))
        }
        other => key_failure(format!("{key}: {other}")),
    })?;
    Ok(Box::new(s))
}

/// The approvers' keys of the environments document: PEM keys as given, `awskms:///` keys
/// fetched through the CLI's KMS client (built only when a document names one).
pub async fn approver_keys(
    cli: &Cli,
    envs: &promotion_core::environment::Environments,
) -> Result<promotion_core::environment::ApproverKeys, Failure> {
    use promotion_core::environment::{self, ApproverKey, approval::NoKms};
    let uses_kms = envs.all().iter().any(|e| {
        e.approvers
            .iter()
            .any(|a| matches!(a.key, ApproverKey::Kms(_)))
    });
    let keys = if uses_kms {
        let kms = promotion_aws::kms::KmsKeys(kms_client(cli, None).await);
        environment::approver_keys(envs, &kms).await?
    } else {
        environment::approver_keys(envs, &NoKms).await?
    };
    Ok(keys)
}

/// The verifying key `--key` names: KMS, or a public (or private) key file.
pub async fn public_key(cli: &Cli, key: &str) -> Result<PublicKey, Failure> {
    if let Some((endpoint, id)) = parse_kms_uri(key) {
        let client = kms_client(cli, endpoint).await;
        return Ok(kms::public_key(&client, &id).await?);
    }
    let pem = read_key_file(key)?;
    match PublicKey::from_pem(&pem) {
        Ok(k) => Ok(k),
        Err(first) => LocalSigner::from_pem(&pem, cosign_password().as_deref())
            .map(|s| s.public_key().clone())
            .map_err(|_| key_failure(format!("{key}: {first}"))),
    }
}

fn read(path: &PathBuf, flag: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| input(format!("{flag}: cannot read {}: {e}", path.display())))
}

/// The policy file (JSON or YAML), or the built-in policy without one.
pub fn load_policy(path: Option<&PathBuf>) -> Result<Policy, Failure> {
    match path {
        Some(p) => Policy::parse(&read(p, "--policy")?).map_err(|e| {
            Failure::new(
                promotion_core::error::Classify::error_type(&e),
                format!("{}: {e}", p.display()),
            )
        }),
        None => Ok(Policy::default()),
    }
}

/// Findings from a file (`--findings`) or from Inspector (region from `--aws-region`, else
/// `region_hint`, else the AWS chain); `assume_scanned` only for stand-ins without ListCoverage.
pub async fn findings_source(
    cli: &Cli,
    findings: Option<&PathBuf>,
    assume_scanned: bool,
    region_hint: Option<String>,
) -> Result<Box<dyn FindingsSource>, Failure> {
    Ok(match findings {
        Some(path) => {
            let text = read(path, "--findings")?;
            Box::new(FileSource::from_json(&text).map_err(|e| {
                Failure::new(
                    ErrorType::FindingsInvalid,
                    format!("{}: {e}", path.display()),
                )
            })?)
        }
        None => {
            let region = cli.aws_region.clone().or(region_hint);
            let sdk = aws_config(region, cli.aws_endpoint_url.clone()).await;
            if sdk.region().is_none() {
                return Err(input(
                    "Inspector needs a region: pass --aws-region or set AWS_REGION".into(),
                ));
            }
            let inspector = InspectorSource::new(aws_sdk_inspector2::Client::new(&sdk));
            if assume_scanned {
                Box::new(AssumeScanned(inspector))
            } else {
                Box::new(inspector)
            }
        }
    })
}
