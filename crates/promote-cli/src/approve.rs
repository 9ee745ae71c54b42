//! `promote approve IMAGE --environment ENV --key KEY`: a signed approval (DSSE in-toto
//! statement in a Sigstore bundle) asking for the image's promotion to ENV, pushed as a referrer
//! of the approved digest to the application's approvals repository (`--to`; default: the
//! image's own repository, for single-repository setups).

use crate::Cli;
use crate::args::{Creds, EnvFileArg};
use crate::inputs::signer;
use crate::output::{Failure, done, parse_ref, print_json};
use clap::Args;
use promotion_aws::kms::KmsMessageMode;
use promotion_core::environment::{ApprovalInput, push_approval};
use promotion_core::gate::time::rfc3339;
use std::time::{Instant, SystemTime};

/// Arguments of `promote approve`.
#[derive(Args)]
pub struct ApproveArgs {
    /// The trusted image to approve (a tag is resolved once; the digest is approved).
    image: String,
    /// The environment it is approved for.
    #[arg(long, short = 'e', value_name = "ENV")]
    environment: String,
    /// The approver's signing key: `awskms:///KEY` or a cosign private key file
    /// (`COSIGN_PASSWORD` for an encrypted one).
    #[arg(long, value_name = "awskms:///KEY | FILE")]
    key: String,
    /// The approvals repository to push to (e.g. `<registry>/approvals/<app>`); default: the
    /// image's repository.
    #[arg(long, value_name = "REPOSITORY")]
    to: Option<String>,
    /// Build id for the environment tag.
    #[arg(long, value_name = "ID")]
    build: Option<String>,
    /// Who approves (recorded in the signed statement; reports name the approver the key
    /// belongs to).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// KMS message mode for `awskms://` keys.
    #[arg(long, value_name = "MODE", default_value = "digest")]
    kms_message_mode: KmsMessageMode,
    #[command(flatten)]
    envs: EnvFileArg,
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote approve`.
pub async fn run(cli: &Cli, args: &ApproveArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let envs = args.envs.load()?;
    let image = parse_ref(&args.image)?;
    let approvals = match &args.to {
        Some(t) => parse_ref(t)?,
        None => image.clone(),
    };
    let approvals = promotion_core::reference::ImageRef::from_parts(
        approvals.registry(),
        approvals.repository(),
        None,
        None,
    );
    let registry = args.creds.registry(cli, &image)?;
    let signer = signer(cli, &args.key, args.kms_message_mode).await?;
    let time = rfc3339(SystemTime::now());
    let input = ApprovalInput {
        environment: &args.environment,
        build: args.build.as_deref(),
        approved_by: args.by.as_deref(),
        time: &time,
    };
    let r = push_approval(
        &registry,
        &image,
        &approvals,
        &envs,
        &input,
        signer.as_ref(),
    )
    .await?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    done!(
        operation = "approve",
        repository = %r.repository,
        subject = %r.subject,
        approval = %r.approval,
        environment = %r.environment,
        duration_ms = started.elapsed().as_millis() as u64,
    );
    if cli.json {
        return print_json(&r);
    }
    println!(
        "approved {} for {} ({} in {}, signed by {})",
        r.image, r.environment, r.approval, r.repository, r.key
    );
    Ok(())
}
