//! `promote retag IMAGE --environment ENV`: `<env>-<build>` (and `--tag`s) added to a trusted
//! digest by re-putting its exact manifest bytes; tags never move unless the environment allows.
//!
//! The environments document (`--environments-file`, or `PROMOTE_ENVIRONMENTS_FILE`) says which
//! environments exist, their order, tag templates and whether their tags may move; without one
//! the built-in `dev` → `staging` → `prod` applies.
//!
//! With `--key` it is a full environment promotion: for an environment that requires one, a
//! signed approval by one of its approvers (keys from the environments document) must verify in
//! the approvals repository (`--approvals`, default the image's repository); the pipeline's
//! signature must verify; with `--policy`/`--findings` (or `--gate`, for Inspector) the gate is
//! re-run with ENV's rules against current findings first. With `--from-approvals` the
//! environments and build ids come from the image's verified approvals.

use crate::Cli;
use crate::args::{Creds, EnvFileArg};
use crate::inputs::{approver_keys, findings_source, load_policy, public_key};
use crate::output::{Failure, done, input, parse_ref, print_json, to_json};
use clap::Args;
use promotion_core::clock::SystemClock;
use promotion_core::ecr::EcrRegistry;
use promotion_core::environment::{
    self, ApprovalCheck, ApproverKeys, GateCheck, RetagOptions, RetagReport, TagOutcome,
};
use promotion_core::reference::ImageRef;
use std::path::PathBuf;
use std::time::Instant;

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
    /// Act on the image's verified approvals instead of --environment.
    #[arg(long, conflicts_with = "environment", requires = "key")]
    from_approvals: bool,
    /// The approvals repository (default: the image's repository).
    #[arg(long, value_name = "REPOSITORY")]
    approvals: Option<String>,
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
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote retag`.
pub async fn run(cli: &Cli, args: &RetagArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let envs = args.envs.load()?;
    let image = parse_ref(&args.image)?;
    let registry = args.creds.registry(cli, &image)?;

    let approvals = match &args.approvals {
        Some(a) => {
            let a = parse_ref(a)?;
            ImageRef::from_parts(a.registry(), a.repository(), None, None)
        }
        None => ImageRef::from_parts(image.registry(), image.repository(), None, None),
    };
    let approvers = match &args.key {
        Some(_) => approver_keys(cli, &envs).await?,
        None => ApproverKeys::default(),
    };

    // What to do: one environment, or every verified approval (earliest environment first, so
    // that one run can take a digest through several).
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
        let pinned = image.pinned(digest);
        environment::verified_approvals(&registry, &approvals, &pinned, &envs, &approvers)
            .await?
            .into_iter()
            .map(|a| {
                (
                    a.predicate.environment,
                    a.predicate.build.or_else(|| args.build.clone()),
                )
            })
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
                    limits: policy.limits(),
                    reuse: None,
                });
                let approval = ApprovalCheck {
                    approvals: &approvals,
                    keys: &approvers,
                };
                let done = environment::promote_to_environment(
                    &registry,
                    &image,
                    &envs,
                    &env,
                    &opts,
                    key,
                    check,
                    Some(approval),
                )
                .await?;
                if !cli.json
                    && let Some(a) = &done.approval
                {
                    println!(
                        "approval by {} verified ({}), recorded as {}",
                        a.approver, a.manifest, a.recorded
                    );
                }
                if !cli.json {
                    println!(
                        "signature verified ({} valid) for {}",
                        done.signature.valid, done.signature.digest
                    );
                    if let Some(v) = &done.gate {
                        println!("gate re-run for {env}: {}", v.message);
                    }
                }
                finish(cli.json, &done.retag, started);
                to_json(&done)?
            }
            None => {
                let r = environment::retag(&registry, &image, &envs, &env, &opts).await?;
                finish(cli.json, &r, started);
                to_json(&r)?
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

/// One environment done: its tags on stdout (unless `--json`), and the canonical line.
fn finish(json: bool, r: &RetagReport, started: Instant) {
    if !json {
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
    done!(
        operation = "retag",
        repository = %r.repository,
        digest = %r.digest,
        environment = %r.environment,
        tags = %r.tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>().join(","),
        changed = r.changed,
        duration_ms = started.elapsed().as_millis() as u64,
    );
}
