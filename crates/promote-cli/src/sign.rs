//! `promote sign IMAGE --key KEY`: the image's digest (and each platform's) signed in cosign's
//! format, stored as an OCI 1.1 referrer, cosign's `.sig` tag, or both.

use crate::Cli;
use crate::args::{Creds, entries};
use crate::inputs::signer;
use crate::output::{Failure, done, failed, parse_ref, print_json};
use clap::Args;
use promotion_aws::kms::KmsMessageMode;
use promotion_core::sign::store::{SignMode, SignOptions, sign_image};
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
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote sign`.
pub async fn run(cli: &Cli, args: &SignArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let opts = SignOptions {
        mode: args.mode,
        annotations: entries("annotation", "--annotation", &args.annotations)?,
        gate_summary: args.gate_summary.clone(),
        top_only: args.top_only,
        ..SignOptions::default()
    };
    let registry = args.creds.registry(cli, &image)?;
    let signer = signer(cli, &args.key, args.kms_message_mode).await?;
    let report = sign_image(&registry, &image, signer.as_ref(), &opts)
        .await
        .map_err(|e| {
            failed!(e, { operation = "sign", image = %image, });
            Failure::from(e)
        })?;
    done!(
        operation = "sign",
        image = %report.image,
        digest = %report.digest,
        key = %report.key,
        signed = report.signed.len(),
        signatures_created = report.signatures_created,
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
