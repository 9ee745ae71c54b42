//! `promote verify IMAGE --key KEY`: the image digest's signatures, found by every route and
//! checked against the key; exit 1 when none is valid.

use crate::Cli;
use crate::args::Creds;
use crate::inputs::public_key;
use crate::output::{Failure, done, parse_ref, print_json};
use clap::Args;
use promotion_core::sign::verify::verify_image;

/// Arguments of `promote verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The image to verify.
    image: String,
    /// `awskms:///KEY-ID-OR-ARN` or a PEM public key file.
    #[arg(long, value_name = "awskms:///KEY | FILE")]
    key: String,
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote verify`.
pub async fn run(cli: &Cli, args: &VerifyArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let registry = args.creds.registry(cli, &image)?;
    let key = public_key(cli, &args.key).await?;
    let report = verify_image(&registry, &image, &key).await?;
    done!(operation = "verify", image = %report.image, digest = %report.digest,
        valid = report.valid.len(), invalid = report.invalid,);
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
