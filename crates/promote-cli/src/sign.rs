//! `promote sign`, `promote verify` and `promote discover`.
//!
//! Keys: `awskms:///<key id, ARN or alias/…>` (KMS, configured by `--aws-region` and
//! `--aws-endpoint-url`), or a key file. Private key files are cosign's encrypted ones (password
//! in `COSIGN_PASSWORD`) or PEM PKCS#8; `verify` takes a PEM public key (a private key file works
//! too). This is the edge: files and the environment are read here, never in the core.

use crate::annotate::entries;
use crate::{Cli, Failure, build_registry, fixed_creds, input, parse_ref, print_json};
use clap::Args;
use promotion_core::ErrorType;
use promotion_core::error::Classify as _;
use promotion_aws::kms::{self, KmsMessageMode, KmsSigner, parse_kms_uri};
use promotion_core::sign::local::LocalSigner;
use promotion_core::sign::store::{SignMode, SignOptions, sign_image};
use promotion_core::sign::{PublicKey, SignError, Signer, discover as disc, verify::verify_image};
use std::ffi::OsString;

/// Arguments of `promote sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The image to sign (a tag is resolved once; the digest is signed).
    image: String,
    /// `awskms:///KEY-ID-OR-ARN` or a private key file (cosign's, or PEM PKCS#8).
    #[arg(long, value_name = "awskms:///KEY | FILE")]
    key: String,
    /// Claim KEY=VALUE signed into the payload's `optional`; repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<OsString>,
    /// Where signatures go: OCI 1.1 referrer, cosign's `.sig` tag, or both.
    #[arg(long, default_value = "both", value_name = "referrer|tag|both")]
    mode: SignMode,
    /// How the payload goes to KMS: `digest` (cosign's way, correct on AWS) or `raw` (for
    /// stand-ins such as moto, whose DIGEST mode is wrong; payloads up to 4096 bytes).
    #[arg(long, default_value = "digest", value_name = "digest|raw")]
    kms_message_mode: KmsMessageMode,
    /// Sign only the top digest, not each platform manifest of an index.
    #[arg(long)]
    top_only: bool,
    /// The gate's compact summary, signed as a claim.
    #[arg(long, value_name = "SUMMARY")]
    gate_summary: Option<String>,
    /// Registry credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_DST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    creds: Option<String>,
}

/// Arguments of `promote verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The image to verify.
    image: String,
    /// `awskms:///KEY-ID-OR-ARN` or a PEM public key file.
    #[arg(long, value_name = "awskms:///KEY | FILE")]
    key: String,
    /// Registry credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_DST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    creds: Option<String>,
}

/// Arguments of `promote discover`.
#[derive(Args)]
pub struct DiscoverArgs {
    /// The image whose referrers to show.
    image: String,
    /// Registry credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_DST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    creds: Option<String>,
}

fn key_failure(message: String) -> Failure {
    Failure {
        kind: ErrorType::KeyInvalid,
        message,
    }
}

async fn kms_client(cli: &Cli, uri_endpoint: Option<String>) -> aws_sdk_kms::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = &cli.aws_region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    // `--aws-endpoint-url` wins; an endpoint inside the URI (`awskms://host/key`) is HTTPS.
    match (&cli.aws_endpoint_url, uri_endpoint) {
        (Some(e), _) => loader = loader.endpoint_url(e),
        (None, Some(host)) => loader = loader.endpoint_url(format!("https://{host}")),
        (None, None) => {}
    }
    aws_sdk_kms::Client::new(&loader.load().await)
}

fn read_key_file(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| key_failure(format!("cannot read key file {path}: {e}")))
}

/// cosign's convention: the password of an encrypted key file is in `COSIGN_PASSWORD`.
fn cosign_password() -> Option<Vec<u8>> {
    std::env::var_os("COSIGN_PASSWORD").map(|p| p.into_encoded_bytes())
}

pub(crate) async fn signer(
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

pub(crate) async fn public_key(cli: &Cli, key: &str) -> Result<PublicKey, Failure> {
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

/// Run `promote sign`.
pub async fn sign(cli: &Cli, args: &SignArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let opts = SignOptions {
        mode: args.mode,
        annotations: entries("annotation", "--annotation", &args.annotations)?,
        gate_summary: args.gate_summary.clone(),
        top_only: args.top_only,
    };
    let registry = build_registry(cli, fixed_creds(&[(&image, &args.creds, "--creds")])?)?;
    let signer = signer(cli, &args.key, args.kms_message_mode).await?;
    let report = sign_image(&registry, &image, signer.as_ref(), &opts)
        .await
        .map_err(|e| {
            tracing::debug!(operation = "sign", image = %image, outcome = "failed",
                error_type = %e.error_type(), "done");
            Failure::from(e)
        })?;
    tracing::info!(
        operation = "sign",
        image = %report.image,
        digest = %report.digest,
        key = %report.key,
        signed = report.signed.len(),
        signatures_created = report.signatures_created,
        outcome = "ok",
        "done"
    );
    if cli.json {
        return print_json(&report);
    }
    println!("signed {} with {}", report.image, report.key);
    for s in &report.signed {
        println!(
            "  {:<16} {}  referrer: {:?}, tag: {:?}",
            s.platform, s.digest, s.referrer, s.tag
        );
    }
    println!("  {} new signature(s)", report.signatures_created);
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    Ok(())
}

/// Run `promote verify`.
pub async fn verify(cli: &Cli, args: &VerifyArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let registry = build_registry(cli, fixed_creds(&[(&image, &args.creds, "--creds")])?)?;
    let key = public_key(cli, &args.key).await?;
    let report = verify_image(&registry, &image, &key).await?;
    tracing::info!(operation = "verify", image = %report.image, digest = %report.digest,
        valid = report.valid.len(), invalid = report.invalid, outcome = "ok", "done");
    if cli.json {
        return print_json(&report);
    }
    println!("verified {} ({})", report.image, report.digest);
    println!("  docker-reference  {}", report.docker_reference);
    for v in &report.valid {
        println!("  valid             {:?} in {}", v.route, v.manifest);
    }
    for (k, v) in &report.claims {
        match v {
            serde_json::Value::String(s) => println!("  claim             {k}={s}"),
            other => println!("  claim             {k}={other}"),
        }
    }
    Ok(())
}

/// Run `promote discover`.
pub async fn discover(cli: &Cli, args: &DiscoverArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let registry = build_registry(cli, fixed_creds(&[(&image, &args.creds, "--creds")])?)?;
    let tree = disc::discover(&registry, &image).await?;
    if cli.json {
        return print_json(&tree);
    }
    print!("{}", disc::render(&image.repo_path(), &tree));
    Ok(())
}
