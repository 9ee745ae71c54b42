//! `promote sync REPOSITORY`: promote the tags of an upstream repository that the trusted
//! repository lacks (ghcr2ecr's job), each exactly as `promote run` would.
//!
//! The tags are listed (every page), filtered (`--tags`, `--exclude`, `--semver`, `--newest`;
//! `latest` only with `--include-latest`: it moves), and resolved to digests with HEAD requests
//! (Docker Hub does not count them against its pull limit). A tag is promoted unless the
//! trusted repository already holds a promotion of that digest under the tag's environment tag
//! (`dev-<tag>` by default): the trusted image names its source digest
//! (`io.ecr-promotion.source.digest`), or is that digest (`--preserve-digest`). Each promotion
//! is pinned to the digest the plan saw (`repo:tag@digest`): a tag that moves meanwhile is
//! refused, not promoted in its new state. One tag's failure is reported and the others go on.
//! Manifest PUTs are paced (`--max-put-rate`, default 10 per second, ECR's PutImage quota): a
//! bulk sync must not spend the account's quota on throttled retries, nor starve the pipeline.
//!
//! Exit codes: 0 when every planned tag was promoted (or none was needed); 1 when one failed
//! (or its environment tag names another source digest: the upstream tag moved after it was
//! promoted, and environment tags never move); 3 when one was denied by the gate and none
//! failed.

use crate::Cli;
use crate::output::{Failure, done, input, print_json};
use crate::run::{Outcome, Pipeline, RunOptions};
use clap::Args;
use promotion_core::ErrorType;
use promotion_core::pipeline;
use promotion_core::pipeline::sync::{self, Filters, Plan, PlannedTag};
use promotion_core::registry::Registry as _;
use serde::Serialize;
use serde_json::json;

/// Arguments of `promote sync`.
#[derive(Args)]
pub struct SyncArgs {
    /// The upstream repository (REGISTRY/PATH, no tag).
    repository: String,
    /// Only tags this regular expression matches (the whole tag).
    #[arg(long, value_name = "REGEX")]
    tags: Option<String>,
    /// Leave out tags this regular expression matches (the whole tag).
    #[arg(long, value_name = "REGEX")]
    exclude: Option<String>,
    /// Only tags that are semantic versions (a leading `v` allowed) in this range, as Cargo
    /// writes them: `>=1.2, <2`, `^1.4`, `~2.0`.
    #[arg(long, value_name = "RANGE")]
    semver: Option<String>,
    /// Only the N highest semantic versions among the tags left (tags that are not versions
    /// are left out, and pre-releases unless --semver admits them; a suffix such as `-alpine`
    /// makes a pre-release).
    #[arg(long, value_name = "N")]
    newest: Option<usize>,
    /// Consider `latest` too (left out by default: it moves, and a build id must not).
    #[arg(long)]
    include_latest: bool,
    /// Print the plan (each tag, its digest, what would be done) and promote nothing.
    #[arg(long)]
    dry_run: bool,
    /// At most this many manifest PUTs per second, every push counted (a promotion makes about
    /// 8: quarantine, trusted, signatures, attestation, tags). ECR allows 10 PutImage calls per
    /// second per region by default; 0: unpaced.
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    max_put_rate: f64,
    #[command(flatten)]
    opts: RunOptions,
}

/// One tag's line in the plan and the result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(flatten)]
    planned: PlannedTag,
    /// After the run: `PROMOTED`, `REJECTED`, `FAILED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
}

/// Runs `promote sync`.
pub async fn run(cli: &Cli, args: &SyncArgs) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let repo = pipeline::parse_repository("REPOSITORY", &args.repository)?;
    if !args.dry_run {
        args.opts.key()?;
    }
    if args.opts.build_given() {
        return Err(input(
            "--build: each tag is its own build id in a sync (it names the environment tag)".into(),
        ));
    }
    let filters = Filters::new(
        ["--tags", "--exclude", "--semver", "--newest"],
        args.tags.as_deref(),
        args.exclude.as_deref(),
        args.semver.as_deref(),
        args.newest,
        args.include_latest,
    )
    .map_err(Failure::from)?;
    if !(args.max_put_rate.is_finite() && args.max_put_rate >= 0.0) {
        return Err(input(
            "--max-put-rate: a number of manifest PUTs per second, 0 for unpaced".into(),
        ));
    }
    let rate = (args.max_put_rate > 0.0).then_some(args.max_put_rate);
    let p = Pipeline::prepare(cli, &args.opts, &repo, rate).await?;
    let listed = p.registry().list_tags(&repo).await?;
    let tags = filters.apply(&listed);
    let env = match args.opts.environment() {
        Some(e) => p.environments().get(e)?,
        None => p.environments().first(),
    };
    let mut items = Vec::new();
    for tag in &tags {
        let planned =
            sync::plan_tag(p.registry(), &repo, p.trusted(), p.environments(), env, tag).await?;
        items.push(Item {
            planned,
            outcome: None,
        });
    }
    if !cli.json {
        println!(
            "{}: {} tags, {} considered, {} to promote",
            repo,
            listed.len(),
            tags.len(),
            items
                .iter()
                .filter(|i| i.planned.plan == Plan::Promote)
                .count()
        );
    }
    for item in &mut items {
        if args.dry_run || item.planned.plan != Plan::Promote {
            if !cli.json {
                println!("  {:<9} {}", plan_word(item.planned.plan), describe(item));
            }
            continue;
        }
        let src = format!(
            "{repo}:{}@{}",
            item.planned.tag,
            item.planned
                .digest
                .as_ref()
                .map(|d| d.as_str())
                .unwrap_or_default()
        );
        let outcome = p.promote(&src, Some(&item.planned.tag)).await;
        match outcome {
            Ok(Outcome::Promoted(promotion)) => {
                item.outcome = Some("PROMOTED");
                item.planned.trusted = Some(promotion.promote.trusted.clone());
            }
            Ok(Outcome::Rejected(v, f)) => {
                item.outcome = Some("REJECTED");
                item.planned.error = Some(json!({"type": f.kind.as_str(), "message": f.message,
                    "gate": v["gate"]["summary"]}));
            }
            Err(f) => {
                item.outcome = Some("FAILED");
                item.planned.error = Some(json!({"type": f.kind.as_str(), "message": f.message}));
            }
        }
        if !cli.json {
            println!(
                "  {:<9} {}",
                item.outcome.unwrap_or_default(),
                describe(item)
            );
        }
    }
    let count = |f: &dyn Fn(&Item) -> bool| items.iter().filter(|i| f(i)).count();
    let promoted = count(&|i| i.outcome == Some("PROMOTED"));
    let denied = count(&|i| i.outcome == Some("REJECTED"));
    let failed = count(&|i| {
        i.outcome == Some("FAILED") || matches!(i.planned.plan, Plan::Moved | Plan::Invalid)
    });
    let present = count(&|i| i.planned.plan == Plan::Present);
    done!(
        operation = "sync",
        repository = %repo,
        tags_listed = listed.len(),
        tags_considered = tags.len(),
        promoted,
        present,
        denied,
        failed,
        dry_run = args.dry_run,
        duration_ms = started.elapsed().as_millis() as u64,
    );
    if cli.json {
        print_json(&json!({
            "operation": "sync", "repository": repo.to_string(), "dryRun": args.dry_run,
            "tagsListed": listed.len(), "promoted": promoted, "present": present,
            "denied": denied, "failed": failed, "items": items,
        }))?;
    } else {
        println!("{promoted} promoted, {present} already there, {denied} denied, {failed} failed");
    }
    let failure = |kind, what: &str, n| {
        let mut f = Failure::new(kind, format!("sync of {repo}: {n} {what}"));
        f.printed = cli.json;
        f
    };
    if failed > 0 {
        return Err(failure(failed_kind(&items), "tags failed", failed));
    }
    if denied > 0 {
        return Err(failure(
            ErrorType::GateDenied,
            "tags denied by the gate",
            denied,
        ));
    }
    Ok(())
}

fn plan_word(p: Plan) -> &'static str {
    match p {
        Plan::Promote => "promote",
        Plan::Present => "present",
        Plan::Moved => "moved",
        Plan::Gone => "gone",
        Plan::Invalid => "invalid",
    }
}

fn describe(item: &Item) -> String {
    let i = &item.planned;
    let mut s = i.tag.clone();
    if let Some(d) = &i.digest {
        s.push_str(&format!(
            " @{}",
            d.as_str().chars().take(19).collect::<String>()
        ));
    }
    if let Some(t) = &i.trusted {
        s.push_str(&format!(" -> {t}"));
    } else if let Some(t) = &i.trusted_tag {
        s.push_str(&format!(" -> {t}"));
    }
    if let Some(e) = &i.error {
        s.push_str(&format!(
            ": {} [{}]",
            e["message"].as_str().unwrap_or_default(),
            e["type"].as_str().unwrap_or_default()
        ));
    }
    s
}

/// What a sync with failed tags fails as: the tags' one error type when they share one,
/// else `Execution.Failed` (and for `Input.Invalid`, a tag that cannot be a build id: exit 2
/// means the command line).
fn failed_kind(items: &[Item]) -> ErrorType {
    let mut types: Vec<&str> = items
        .iter()
        .filter_map(|i| i.planned.error.as_ref()?["type"].as_str())
        .filter(|t| *t != ErrorType::GateDenied.as_str())
        .collect();
    types.sort_unstable();
    types.dedup();
    match types.as_slice() {
        [only] if *only != ErrorType::InputInvalid.as_str() => ErrorType::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == *only)
            .unwrap_or(ErrorType::ExecutionFailed),
        _ => ErrorType::ExecutionFailed,
    }
}
