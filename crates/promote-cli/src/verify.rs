//! `promote verify IMAGE --key KEY`: the image digest's signatures, read the way cosign v3 reads
//! them (Sigstore bundles first, the legacy `.sig` when there are none) or as `--require` says,
//! checked against the key and the repository they must name; with `--attestation`, the
//! promotion attestation too. Exit 1 when what is required is not valid.

use crate::Cli;
use crate::args::Creds;
use crate::inputs::public_key;
use crate::output::{Failure, done, parse_ref, print_json, to_json};
use clap::Args;
use promotion_core::sign::attest;
use promotion_core::sign::verify::{Require, VerifyOptions, verify_image};

/// Arguments of `promote verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The image to verify.
    image: String,
    /// `awskms:///KEY-ID-OR-ARN` or a PEM public key file.
    #[arg(long, value_name = "awskms:///KEY | FILE")]
    key: String,
    /// Which formats must hold a valid signature: `any` (cosign v3's rule: bundles when the
    /// image has any, else legacy), `bundle`, `legacy`, `both`, or `either` (a valid signature
    /// in either format, whatever else the image carries: the pipeline's own check).
    #[arg(
        long,
        default_value = "any",
        value_name = "any|bundle|legacy|both|either"
    )]
    require: Require,
    /// The repository (`registry/repository`) the signatures must name; default: the image's.
    #[arg(long, value_name = "REPOSITORY")]
    identity: Option<String>,
    /// Also require the promotion attestation (SLSA VSA) by the key, naming the same
    /// repository, and print it.
    #[arg(long)]
    attestation: bool,
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote verify`.
pub async fn run(cli: &Cli, args: &VerifyArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let registry = args.creds.registry(cli, &image)?;
    let key = public_key(cli, &args.key).await?;
    let opts = VerifyOptions {
        require: args.require,
        identity: args.identity.clone(),
    };
    let report = verify_image(&registry, &image, &key, &opts).await?;
    let attestation = match args.attestation {
        true => {
            let pinned = image.pinned(report.digest.clone());
            Some(
                attest::verify_naming(&registry, &pinned, &key, &report.digest, &report.identity)
                    .await?,
            )
        }
        false => None,
    };
    done!(operation = "verify", image = %report.image, digest = %report.digest,
        valid = report.valid.len(), invalid = report.invalid,
        attestation = attestation.is_some(),);
    if cli.json {
        let mut v = to_json(&report)?;
        if let Some(a) = &attestation {
            v["attestation"] = to_json(a)?;
        }
        return print_json(&v);
    }
    println!("verified {} ({})", report.image, report.digest);
    println!("  identity          {}", report.identity);
    let formats: Vec<String> = report
        .verified
        .iter()
        .map(|f| format!("{f:?}").to_lowercase())
        .collect();
    println!("  formats           {}", formats.join(", "));
    for v in &report.valid {
        println!(
            "  valid             {:?} via {:?} in {}",
            v.format, v.route, v.manifest
        );
    }
    for (k, v) in &report.claims {
        match v {
            serde_json::Value::String(s) => println!("  claim             {k}={s}"),
            other => println!("  claim             {k}={other}"),
        }
    }
    if let Some(a) = &attestation {
        println!(
            "  attestation       {} in {}",
            attest::VSA_PREDICATE,
            a.manifest
        );
        let pretty = serde_json::to_string_pretty(&a.predicate).unwrap_or_default();
        for line in pretty.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}
