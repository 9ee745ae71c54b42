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
use promotion_core::pipeline;
use promotion_core::pipeline::sync::{self, Held};
use promotion_core::registry::Registry as _;
use promotion_core::{ErrorType, ImageRef};
use serde::Serialize;
use serde_json::{Value, json};

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

/// The tag filters, compiled.
pub struct Filters {
    tags: Option<regex::Regex>,
    exclude: Option<regex::Regex>,
    semver: Option<semver::VersionReq>,
    newest: Option<usize>,
    include_latest: bool,
}

impl Filters {
    /// From the flags; a bad expression or range is `Input.Invalid`.
    pub fn new(
        tags: Option<&str>,
        exclude: Option<&str>,
        semver: Option<&str>,
        newest: Option<usize>,
        include_latest: bool,
    ) -> Result<Filters, Failure> {
        let whole = |flag: &str, re: Option<&str>| {
            re.map(|r| {
                regex::Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| input(format!("{flag}: {r:?} is not a regular expression: {e}")))
            })
            .transpose()
        };
        let semver = semver
            .map(|r| {
                semver::VersionReq::parse(r)
                    .map_err(|e| input(format!("--semver: {r:?} is not a version range: {e}")))
            })
            .transpose()?;
        if newest == Some(0) {
            return Err(input("--newest: at least 1".into()));
        }
        Ok(Filters {
            tags: whole("--tags", tags)?,
            exclude: whole("--exclude", exclude)?,
            semver,
            newest,
            include_latest,
        })
    }

    /// The tags to consider, in the order they are promoted: highest version first where the
    /// tags are versions, then the others by name.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut kept: Vec<(Option<semver::Version>, String)> = tags
            .iter()
            .filter(|t| self.include_latest || t.as_str() != "latest")
            .filter(|t| self.tags.as_ref().is_none_or(|re| re.is_match(t)))
            .filter(|t| !self.exclude.as_ref().is_some_and(|re| re.is_match(t)))
            .map(|t| (version(t), t.clone()))
            .filter(|(v, _)| match &self.semver {
                None => true,
                Some(req) => v.as_ref().is_some_and(|v| req.matches(v)),
            })
            .collect();
        kept.sort_by(|(va, a), (vb, b)| match (va, vb) {
            (Some(x), Some(y)) => y.cmp(x).then_with(|| a.cmp(b)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        });
        if let Some(n) = self.newest {
            // Pre-releases count only where the range admitted them.
            let ranged = self.semver.is_some();
            kept.retain(|(v, _)| v.as_ref().is_some_and(|v| ranged || v.pre.is_empty()));
            kept.truncate(n);
        }
        kept.into_iter().map(|(_, t)| t).collect()
    }
}

/// A tag as a semantic version, a leading `v` allowed.
fn version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// One tag's line in the plan and the result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    /// The environment tag the promotion gets (`dev-<tag>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted_tag: Option<String>,
    /// `promote`, `present` (already promoted), `moved` (the environment tag holds a
    /// promotion of another digest), `gone` (the tag vanished while planning), `invalid`.
    plan: &'static str,
    /// After the run: `PROMOTED`, `REJECTED`, `FAILED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
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
        args.tags.as_deref(),
        args.exclude.as_deref(),
        args.semver.as_deref(),
        args.newest,
        args.include_latest,
    )?;
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
        items.push(plan(&p, &repo, env, tag).await?);
    }
    if !cli.json {
        println!(
            "{}: {} tags, {} considered, {} to promote",
            repo,
            listed.len(),
            tags.len(),
            items.iter().filter(|i| i.plan == "promote").count()
        );
    }
    for item in &mut items {
        if args.dry_run || item.plan != "promote" {
            if !cli.json {
                println!("  {:<9} {}", item.plan, describe(item));
            }
            continue;
        }
        let src = format!(
            "{repo}:{}@{}",
            item.tag,
            item.digest.as_deref().unwrap_or_default()
        );
        let outcome = p.promote(&src, Some(&item.tag)).await;
        match outcome {
            Ok(Outcome::Promoted(promotion)) => {
                item.outcome = Some("PROMOTED");
                item.trusted = Some(promotion.promote.trusted.clone());
            }
            Ok(Outcome::Rejected(v, f)) => {
                item.outcome = Some("REJECTED");
                item.error = Some(json!({"type": f.kind.as_str(), "message": f.message,
                    "gate": v["gate"]["summary"]}));
            }
            Err(f) => {
                item.outcome = Some("FAILED");
                item.error = Some(json!({"type": f.kind.as_str(), "message": f.message}));
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
    let failed = count(&|i| i.outcome == Some("FAILED") || matches!(i.plan, "moved" | "invalid"));
    let present = count(&|i| i.plan == "present");
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

/// What to do with `tag`: its digest (HEAD), its environment tag in trusted, and whether that
/// already holds a promotion of this digest.
async fn plan(
    p: &Pipeline<'_>,
    repo: &ImageRef,
    env: &promotion_core::environment::Environment,
    tag: &str,
) -> Result<Item, Failure> {
    let mut item = Item {
        tag: tag.to_owned(),
        digest: None,
        trusted_tag: None,
        plan: "promote",
        outcome: None,
        trusted: None,
        error: None,
    };
    let Some(digest) = p.registry().head_manifest(repo, tag).await? else {
        item.plan = "gone";
        return Ok(item);
    };
    item.digest = Some(digest.to_string());
    let Some(trusted_tag) = sync::environment_tag(p.environments(), env, tag) else {
        item.plan = "invalid";
        item.error = Some(json!({"type": ErrorType::InputInvalid.as_str(),
            "message": format!("{tag:?} cannot be a build id in {:?}'s tag template", env.name)}));
        return Ok(item);
    };
    item.trusted_tag = Some(trusted_tag.clone());
    let trusted = p.trusted();
    match sync::held_under(p.registry(), trusted, &trusted_tag, &digest).await? {
        Held::Nothing => {}
        Held::Promotion(held) => {
            item.plan = "present";
            item.trusted = Some(trusted.pinned(held).to_string());
        }
        Held::Other(held) => {
            item.plan = "moved";
            item.trusted = Some(trusted.pinned(held).to_string());
            item.error = Some(json!({"type": ErrorType::TagConflict.as_str(),
                "message": format!("{trusted_tag} in {trusted} holds a promotion of another \
                    digest; the upstream tag {tag} moved since (environment tags never move: \
                    promote it under another build id)")}));
        }
    }
    Ok(item)
}

fn describe(i: &Item) -> String {
    let mut s = i.tag.clone();
    if let Some(d) = &i.digest {
        s.push_str(&format!(" @{}", d.chars().take(19).collect::<String>()));
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
        .filter_map(|i| i.error.as_ref()?["type"].as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn apply(
        tags_re: Option<&str>,
        exclude: Option<&str>,
        range: Option<&str>,
        newest: Option<usize>,
        list: &[&str],
    ) -> Vec<String> {
        match Filters::new(tags_re, exclude, range, newest, false) {
            Ok(f) => f.apply(&tags(list)),
            Err(e) => panic!("{}", e.message),
        }
    }

    #[test]
    fn filters_keep_versions_newest_first_and_never_latest_unless_asked() {
        let all = [
            "latest",
            "1.2.0",
            "v1.10.0",
            "1.9.3",
            "2.0.0-rc.1",
            "nightly",
            "1.2.0-alpine",
        ];
        // Versions highest first (a suffix is a pre-release: 1.2.0-alpine < 1.2.0), then the
        // other tags by name; never `latest`.
        assert_eq!(
            apply(None, None, None, None, &all),
            [
                "2.0.0-rc.1",
                "v1.10.0",
                "1.9.3",
                "1.2.0",
                "1.2.0-alpine",
                "nightly"
            ]
        );
        assert_eq!(
            apply(None, None, Some(">=1.2, <2"), None, &all),
            ["v1.10.0", "1.9.3", "1.2.0"]
        );
        // --newest counts released versions only, unless --semver admits pre-releases.
        assert_eq!(apply(None, None, None, Some(2), &all), ["v1.10.0", "1.9.3"]);
        assert_eq!(
            apply(None, None, Some(">=2.0.0-rc.1"), Some(2), &all),
            ["2.0.0-rc.1"]
        );
        assert_eq!(
            apply(Some(r"1\..*"), Some(".*-alpine"), None, None, &all),
            ["1.9.3", "1.2.0"]
        );
        // Whole tags only: `1.2` does not match `1.2.0`.
        assert!(apply(Some("1.2"), None, None, None, &all).is_empty());
        let with_latest = Filters::new(None, None, None, None, true).ok();
        assert!(with_latest.is_some_and(|f| f.apply(&tags(&all)).contains(&"latest".to_owned())));
    }

    #[test]
    fn bad_filters_are_usage_errors() {
        for (t, e, r, n) in [
            (Some("("), None, None, None),
            (None, Some("[z-a]"), None, None),
            (None, None, Some("one point two"), None),
            (None, None, None, Some(0)),
        ] {
            match Filters::new(t, e, r, n, false) {
                Ok(_) => panic!("accepted {t:?} {e:?} {r:?} {n:?}"),
                Err(f) => assert_eq!(f.kind, ErrorType::InputInvalid),
            }
        }
    }
}
