//! `promote sign IMAGE --key KEY`: the image's digest (and each platform's) signed in cosign's
//! formats: a Sigstore bundle referrer (cosign v3), the legacy `.sig` tag, or both; with
//! `--attest`, the promotion attestation (a signed SLSA VSA) of an image the pipeline promoted.

use crate::Cli;
use crate::args::{Creds, entries};
use crate::inputs::signer;
use crate::output::{Failure, done, failed, parse_ref, print_json, to_json};
use clap::Args;
use promotion_aws::kms::KmsMessageMode;
use promotion_core::gate::time::rfc3339;
use promotion_core::sign::attest::{AttestInput, attest_image};
use promotion_core::sign::store::{SignMode, SignOptions, sign_image};
use std::ffi::OsString;
use std::time::SystemTime;

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
    /// Signature formats: `bundle` (cosign v3's Sigstore bundle referrer), `legacy` (cosign's
    /// `sha256-<hex>.sig` tag, what Kyverno `type: Cosign`, podman and Harbor read) or both.
    #[arg(long, default_value = "both", value_name = "bundle|legacy|both")]
    mode: SignMode,
    /// Also attest the promotion: a SLSA Verification Summary of the source and gate the image
    /// records (an image promote-and-annotate wrote), signed with the same key.
    #[arg(long)]
    attest: bool,
    /// How the payload goes to KMS: `digest` (cosign's way, correct on AWS) or `raw` (for
    /// stand-ins whose DIGEST mode is wrong, such as moto as released; payloads up to 4096
    /// bytes).
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
        created: rfc3339(SystemTime::now()),
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
    let attestation = match args.attest {
        true => Some(
            attest_image(
                &registry,
                &image,
                signer.as_ref(),
                &AttestInput::default(),
                &opts.created,
            )
            .await
            .map_err(|e| {
                failed!(e, { operation = "sign", image = %image, });
                Failure::from(e)
            })?,
        ),
        false => None,
    };
    done!(
        operation = "sign",
        image = %report.image,
        digest = %report.digest,
        key = %report.key,
        signed = report.signed.len(),
        signatures_created = report.signatures_created,
    );
    if cli.json {
        let mut v = to_json(&report)?;
        v["attestation"] = to_json(&attestation)?;
        return print_json(&v);
    }
    println!("signed {} with {}", report.image, report.key);
    for s in &report.signed {
        println!(
            "  {:<16} {}  bundle: {:?}, legacy: {:?}",
            s.platform, s.digest, s.bundle, s.legacy
        );
    }
    if let Some(a) = &attestation {
        println!("  attestation      {}  {:?}", a.digest, a.outcome);
        for w in &a.warnings {
            println!("  warning: {w}");
        }
    }
    println!("  {} new signature(s)", report.signatures_created);
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    Ok(())
}
