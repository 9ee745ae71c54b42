//! `promote lifecycle`: the ECR lifecycle policy for a list of environments, printed as JSON
//! (the same with or without `--json`).

use crate::args::EnvFileArg;
use crate::output::{Failure, input, print_json};
use clap::Args;
use promotion_core::environment::{self, Environments};

/// Arguments of `promote lifecycle`.
#[derive(Args)]
pub struct LifecycleArgs {
    /// Environment names, production last (comma-separated); or use --environments-file.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ENV,...",
        conflicts_with = "environments_file"
    )]
    environments: Vec<String>,
    /// Images each environment keeps (with --environments).
    #[arg(long, default_value_t = environment::config::DEFAULT_KEEP, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    keep: u32,
    /// Days after push when everything else expires.
    #[arg(long, default_value_t = 30, value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(1..))]
    expire_days: u32,
    #[command(flatten)]
    envs: EnvFileArg,
}

/// Runs `promote lifecycle`.
pub fn run(args: &LifecycleArgs) -> Result<(), Failure> {
    let envs = if args.environments.is_empty() {
        if !args.envs.is_given() {
            return Err(input(
                "name the environments: --environments dev,staging,prod or --environments-file FILE"
                    .into(),
            ));
        }
        args.envs.load()?
    } else {
        Environments::from_names(&args.environments, args.keep)
            .map_err(|e| input(format!("--environments: {e}")))?
    };
    print_json(&environment::lifecycle::policy(&envs, args.expire_days))
}
