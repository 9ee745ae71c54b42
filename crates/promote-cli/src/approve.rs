//! `promote approve IMAGE --environment ENV`: an approval referrer asking for the image's
//! promotion to ENV (no timestamp: approving twice changes nothing).

use crate::Cli;
use crate::args::{Creds, EnvFileArg};
use crate::output::{Failure, done, parse_ref, print_json};
use clap::Args;
use promotion_core::environment::push_approval;
use std::time::Instant;

/// Arguments of `promote approve`.
#[derive(Args)]
pub struct ApproveArgs {
    /// The trusted image to approve (a tag is resolved once).
    image: String,
    /// The environment it is approved for.
    #[arg(long, short = 'e', value_name = "ENV")]
    environment: String,
    /// Build id for the environment tag.
    #[arg(long, value_name = "ID")]
    build: Option<String>,
    /// Who or what approves (recorded in the approval).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
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
    let registry = args.creds.registry(cli, &image)?;
    let r = push_approval(
        &registry,
        &image,
        &envs,
        &args.environment,
        args.build.as_deref(),
        args.by.as_deref(),
    )
    .await?;
    done!(
        operation = "approve",
        repository = %r.repository,
        subject = %r.approval.subject,
        approval = %r.approval.digest,
        environment = %r.approval.environment,
        created = r.created,
        duration_ms = started.elapsed().as_millis() as u64,
    );
    if cli.json {
        return print_json(&r);
    }
    println!(
        "{} {}@{} for {} ({})",
        if r.created {
            "approved"
        } else {
            "already approved"
        },
        r.repository,
        r.approval.subject,
        r.approval.environment,
        r.approval.digest
    );
    Ok(())
}
