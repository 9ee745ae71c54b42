//! `promote retag`, `promote approve` and `promote lifecycle`: environments from the command line.
//!
//! The environments document (`--environments-file`, or `PROMOTE_ENVIRONMENTS_FILE`) says which
//! environments exist, their order, tag templates and whether their tags may move; without one
//! the built-in `dev` → `staging` → `prod` applies.
//!
//! `promote retag IMAGE --environment ENV` tags a digest; with `--key` it is a full environment
//! promotion: the pipeline's signature must verify, and with `--policy`/`--findings` (or
//! `--gate`, for Inspector) the gate is re-run with ENV's rules against current findings first.
//! With `--from-approvals` the environment and build id come from the approval referrers of the
//! image that have not been acted on yet.

use crate::gate::{findings_source, load_policy};
use crate::sign::public_key;
use crate::{Cli, Failure, build_registry, fixed_creds, input, parse_ref, print_json};
use clap::Args;
use promotion_core::clock::SystemClock;
use promotion_core::environment::{
    self, Environments, GateCheck, RetagOptions, RetagReport, TagOutcome, lifecycle,
};
use promotion_core::ecr::EcrRegistry;
use std::path::PathBuf;
use std::time::Instant;

/// Where the environments document comes from.
#[derive(Args)]
pub struct EnvFileArg {
    /// Environments document (JSON or YAML); default: dev, staging, prod in that order.
    #[arg(long, env = "PROMOTE_ENVIRONMENTS_FILE", value_name = "FILE")]
    environments_file: Option<PathBuf>,
}

impl EnvFileArg {
    pub(crate) fn load(&self) -> Result<Environments, Failure> {
        match &self.environments_file {
            None => Ok(Environments::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    input(format!(
                        "--environments-file: cannot read {}: {e}",
                        p.display()
                    ))
                })?;
                Environments::parse(&text).map_err(|e| input(format!("{}: {e}", p.display())))
            }
        }
    }
}

/// Arguments of `promote retag`.
#[derive(Args)]
pub struct RetagArgs {
    /// The trusted image (a tag is resolved once; the digest is tagged).
    image: String,
    /// The target environment.
    #[arg(
        long,
        short = 'e',
        value_name = "ENV",
        required_unless_present = "from_approvals"
    )]
    environment: Option<String>,
    /// Build id for the tag (`<env>-<build>`); default: the build id of the digest's existing
    /// environment tag, else the first 12 hex digits of the digest.
    #[arg(long, value_name = "ID")]
    build: Option<String>,
    /// An extra tag, with the environment's rules; repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Act on the image's approval referrers instead of --environment.
    #[arg(long, conflicts_with = "environment")]
    from_approvals: bool,
    /// Verify the pipeline's signature with this key first (`awskms:///KEY` or a public key file).
    #[arg(long, value_name = "awskms:///KEY | FILE")]
    key: Option<String>,
    /// Re-run the gate with this policy (the target environment's rules) first.
    #[arg(long, value_name = "FILE", requires = "key")]
    policy: Option<PathBuf>,
    /// Findings file for the gate re-run instead of Inspector.
    #[arg(long, value_name = "FILE", requires = "key")]
    findings: Option<PathBuf>,
    /// Re-run the gate against Inspector (implied by --policy or --findings).
    #[arg(long, requires = "key")]
    gate: bool,
    /// Treat every platform as scanned (stand-ins without ListCoverage only).
    #[arg(long, requires = "gate")]
    assume_scanned: bool,
    #[command(flatten)]
    envs: EnvFileArg,
    /// Registry credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_DST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    creds: Option<String>,
}

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
    /// Registry credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_DST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    creds: Option<String>,
}

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

fn print_retag(r: &RetagReport) {
    println!(
        "{}@{} → {} (build {})",
        r.repository, r.digest, r.environment, r.build
    );
    for t in &r.tags {
        let what = match &t.outcome {
            TagOutcome::Created => "created".to_owned(),
            TagOutcome::Unchanged => "already there".to_owned(),
            TagOutcome::Moved { previous } => format!("moved from {previous}"),
        };
        println!("  {:<24} {what}", t.tag);
    }
}

/// Runs `promote retag`.
pub async fn retag(cli: &Cli, args: &RetagArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let envs = args.envs.load()?;
    let image = parse_ref(&args.image)?;
    let registry = build_registry(cli, fixed_creds(&[(&image, &args.creds, "--creds")])?)?;

    // What to do: one environment, or every pending approval.
    let targets: Vec<(String, Option<String>)> = if args.from_approvals {
        let digest = match image.digest() {
            Some(d) => d.clone(),
            None => {
                use promotion_core::registry::Registry as _;
                registry
                    .head_manifest(&image, &image.reference())
                    .await?
                    .ok_or_else(|| input(format!("{image} does not exist")))?
            }
        };
        let found = environment::resolve_approvals(&registry, &image, &digest, &envs).await?;
        if found.is_empty() {
            return Err(input(format!(
                "{image} has no approval ({}) among its referrers",
                envs.approval_artifact_type
            )));
        }
        // Earlier environments first, so that one run can take a digest through several.
        let rank = |name: &str| envs.names().iter().position(|n| *n == name);
        let mut found = found;
        found.sort_by_key(|a| rank(&a.environment));
        found
            .into_iter()
            .map(|a| (a.environment, a.build.or_else(|| args.build.clone())))
            .collect()
    } else {
        let env = args.environment.clone().unwrap_or_default();
        vec![(env, args.build.clone())]
    };

    let key = match &args.key {
        Some(k) => Some(public_key(cli, k).await?),
        None => None,
    };
    let policy = load_policy(args.policy.as_ref())?;
    let gate_wanted = args.gate || args.policy.is_some() || args.findings.is_some();
    let ecr = EcrRegistry::from_host(image.registry());
    let source = if gate_wanted {
        Some(
            findings_source(
                cli,
                args.findings.as_ref(),
                args.assume_scanned,
                ecr.as_ref().map(|e| e.region.clone()),
            )
            .await?,
        )
    } else {
        None
    };

    let mut outputs = Vec::new();
    for (env, build) in targets {
        let opts = RetagOptions {
            build,
            extra_tags: args.tags.clone(),
        };
        let value = match &key {
            Some(key) => {
                let check = source.as_deref().map(|s| GateCheck {
                    source: s,
                    rules: policy.rules(Some(&env)),
                    clock: &SystemClock,
                    account: ecr.as_ref().map(|e| e.account.clone()),
                });
                let done = environment::promote_to_environment(
                    &registry, &image, &envs, &env, &opts, key, check,
                )
                .await?;
                if !cli.json {
                    println!(
                        "signature verified ({} valid) for {}",
                        done.signature.valid, done.signature.digest
                    );
                    if let Some(v) = &done.gate {
                        println!("gate re-run for {env}: {}", v.message);
                    }
                    print_retag(&done.retag);
                }
                log_retag(&done.retag, started);
                serde_json::to_value(&done).map_err(|e| input(e.to_string()))?
            }
            None => {
                let r = environment::retag(&registry, &image, &envs, &env, &opts).await?;
                if !cli.json {
                    print_retag(&r);
                }
                log_retag(&r, started);
                serde_json::to_value(&r).map_err(|e| input(e.to_string()))?
            }
        };
        outputs.push(value);
    }
    if cli.json {
        if outputs.len() == 1 {
            print_json(&outputs[0])?;
        } else {
            print_json(&outputs)?;
        }
    }
    Ok(())
}

fn log_retag(r: &RetagReport, started: Instant) {
    tracing::info!(
        operation = "retag",
        repository = %r.repository,
        digest = %r.digest,
        environment = %r.environment,
        tags = %r.tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>().join(","),
        changed = r.changed,
        duration_ms = started.elapsed().as_millis() as u64,
        outcome = "ok",
        "done"
    );
}

/// Runs `promote approve`.
pub async fn approve(cli: &Cli, args: &ApproveArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let envs = args.envs.load()?;
    let image = parse_ref(&args.image)?;
    let registry = build_registry(cli, fixed_creds(&[(&image, &args.creds, "--creds")])?)?;
    let r = environment::push_approval(
        &registry,
        &image,
        &envs,
        &args.environment,
        args.build.as_deref(),
        args.by.as_deref(),
    )
    .await?;
    tracing::info!(
        operation = "approve",
        repository = %r.repository,
        subject = %r.approval.subject,
        approval = %r.approval.digest,
        environment = %r.approval.environment,
        created = r.created,
        duration_ms = started.elapsed().as_millis() as u64,
        outcome = "ok",
        "done"
    );
    if cli.json {
        print_json(&r)?;
    } else {
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
    }
    Ok(())
}

/// Runs `promote lifecycle`: prints the policy JSON (the same with or without --json).
pub fn lifecycle(args: &LifecycleArgs) -> Result<(), Failure> {
    let envs = if args.environments.is_empty() {
        if args.envs.environments_file.is_none() {
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
    print_json(&lifecycle::policy(&envs, args.expire_days))
}
