//! Bulk sync (ghcr2ecr's job): which tags of an upstream repository to promote. The tags are
//! filtered ([`Filters`]), each is resolved to a digest with a HEAD request (Docker Hub does not
//! count them against its pull limit), and a tag is promoted unless the trusted repository
//! already holds a promotion of that digest under the tag's environment tag ([`held_under`]).
//! `promote sync` plans with [`plan_tag`] and promotes in process; the sync state machine's
//! listing step (functions/sync-plan) calls [`plan_sync`], whose items are manual promotion
//! requests pinned to the digests the plan saw, each started as its own execution.

use super::{PipelineError, Repositories, SourceRegistries, parse_repository};
use crate::digest::Digest;
use crate::environment::{Environment, Environments};
use crate::error::ErrorType;
use crate::manifest::ManifestDoc;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};
use crate::sign::CLAIM_SOURCE_DIGEST;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The environment tag a promotion of upstream `tag` gets in `env` (`dev-<tag>`), or `None`
/// when the tag cannot be a build id there (`latest`, or a tag the template cannot hold).
pub fn environment_tag(envs: &Environments, env: &Environment, tag: &str) -> Option<String> {
    super::build_from_source_tag(envs, Some(tag)).and_then(|build| env.template.render(&build).ok())
}

/// What the trusted repository holds under an environment tag, for one source digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Nothing: the tag is to be promoted.
    Nothing,
    /// A promotion of this source digest (the trusted digest, which records it in
    /// `io.ecr-promotion.source.digest`, or is it when promoted without mutation).
    Promotion(Digest),
    /// A promotion of another digest: the upstream tag moved since. Environment tags never
    /// move, so this is a conflict, not something to promote over.
    Other(Digest),
}

/// What `trusted:env_tag` holds, as far as `source` is concerned.
pub async fn held_under(
    registry: &dyn Registry,
    trusted: &ImageRef,
    env_tag: &str,
    source: &Digest,
) -> Result<Held, RegistryError> {
    let Some(held) = registry.head_manifest(trusted, env_tag).await? else {
        return Ok(Held::Nothing);
    };
    if &held == source {
        return Ok(Held::Promotion(held));
    }
    let raw = registry.get_manifest(trusted, held.as_str()).await?;
    let recorded = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
        .ok()
        .and_then(|(doc, _, _)| doc.annotations.get(CLAIM_SOURCE_DIGEST).cloned())
        .and_then(|d| d.parse::<Digest>().ok());
    Ok(if recorded.as_ref() == Some(source) {
        Held::Promotion(held)
    } else {
        Held::Other(held)
    })
}

/// Which tags a sync considers, compiled.
#[derive(Debug)]
pub struct Filters {
    tags: Option<regex::bytes::Regex>,
    exclude: Option<regex::bytes::Regex>,
    semver: Option<semver::VersionReq>,
    newest: Option<usize>,
    include_latest: bool,
}

impl Filters {
    /// `tags` / `exclude`: regular expressions matching whole tags; `semver`: a range as Cargo
    /// writes them (`>=1.2, <2`, `^1.4`); `newest`: only the N highest released versions
    /// (pre-releases only where the range admits them); `latest` only with `include_latest`
    /// (it moves, and a build id must not). A bad expression or range is `Input.Invalid`,
    /// named with `names`' spelling of the field (`--tags` for the CLI, `tags` in a request).
    pub fn new(
        names: [&str; 4],
        tags: Option<&str>,
        exclude: Option<&str>,
        semver: Option<&str>,
        newest: Option<usize>,
        include_latest: bool,
    ) -> Result<Filters, PipelineError> {
        let [tags_name, exclude_name, semver_name, newest_name] = names;
        let whole = |field: &str, re: Option<&str>| {
            re.map(|r| {
                // ASCII mode over bytes: tags are ASCII, and no Unicode tables are linked.
                regex::bytes::Regex::new(&format!("(?-u)^(?:{r})$")).map_err(|e| {
                    PipelineError::Input(format!("{field}: {r:?} is not a regular expression: {e}"))
                })
            })
            .transpose()
        };
        let semver = semver
            .map(|r| {
                semver::VersionReq::parse(r).map_err(|e| {
                    PipelineError::Input(format!(
                        "{semver_name}: {r:?} is not a version range: {e}"
                    ))
                })
            })
            .transpose()?;
        if newest == Some(0) {
            return Err(PipelineError::Input(format!("{newest_name}: at least 1")));
        }
        Ok(Filters {
            tags: whole(tags_name, tags)?,
            exclude: whole(exclude_name, exclude)?,
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
            .filter(|t| {
                self.tags
                    .as_ref()
                    .is_none_or(|re| re.is_match(t.as_bytes()))
            })
            .filter(|t| {
                !self
                    .exclude
                    .as_ref()
                    .is_some_and(|re| re.is_match(t.as_bytes()))
            })
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

/// What a sync does with one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Promote it: trusted holds nothing under its environment tag.
    Promote,
    /// Already promoted: trusted holds a promotion of its digest there.
    Present,
    /// Trusted holds a promotion of another digest there: the upstream tag moved since
    /// (`Tag.Conflict`; environment tags never move).
    Moved,
    /// The tag vanished between the listing and its HEAD request.
    Gone,
    /// The tag cannot be a build id (`Input.Invalid`).
    Invalid,
}

/// One tag's line in a plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedTag {
    /// The upstream tag.
    pub tag: String,
    /// Its digest when the plan resolved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The environment tag a promotion gets (`dev-<tag>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_tag: Option<String>,
    /// What is to be done.
    pub plan: Plan,
    /// What trusted holds there (present, moved), or after a promotion its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted: Option<String>,
    /// Why it is not promoted (moved, invalid), or after a promotion why it failed:
    /// `{"type", "message"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

fn problem(kind: ErrorType, message: String) -> Option<serde_json::Value> {
    Some(serde_json::json!({"type": kind.as_str(), "message": message}))
}

/// What to do with upstream `repo:tag`, promoted into `trusted` with `env`'s tag template.
pub async fn plan_tag(
    registry: &dyn Registry,
    repo: &ImageRef,
    trusted: &ImageRef,
    envs: &Environments,
    env: &Environment,
    tag: &str,
) -> Result<PlannedTag, RegistryError> {
    let mut item = PlannedTag {
        tag: tag.to_owned(),
        digest: None,
        trusted_tag: None,
        plan: Plan::Promote,
        trusted: None,
        error: None,
    };
    let Some(digest) = registry.head_manifest(repo, tag).await? else {
        item.plan = Plan::Gone;
        return Ok(item);
    };
    item.digest = Some(digest.clone());
    let Some(trusted_tag) = environment_tag(envs, env, tag) else {
        item.plan = Plan::Invalid;
        item.error = problem(
            ErrorType::InputInvalid,
            format!(
                "{tag:?} cannot be a build id in {:?}'s tag template",
                env.name
            ),
        );
        return Ok(item);
    };
    item.trusted_tag = Some(trusted_tag.clone());
    match held_under(registry, trusted, &trusted_tag, &digest).await? {
        Held::Nothing => {}
        Held::Promotion(held) => {
            item.plan = Plan::Present;
            item.trusted = Some(trusted.pinned(held).to_string());
        }
        Held::Other(held) => {
            item.plan = Plan::Moved;
            item.trusted = Some(trusted.pinned(held).to_string());
            item.error = problem(
                ErrorType::TagConflict,
                format!(
                    "{trusted_tag} in {trusted} holds a promotion of another digest; the \
                     upstream tag {tag} moved since (environment tags never move: promote it \
                     under another build id)"
                ),
            );
        }
    }
    Ok(item)
}

/// A sync request (the sync state machine's input: a schedule's or a person's).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// The upstream repository (`host/path`, no tag).
    pub repository: String,
    /// Only tags this regular expression matches (the whole tag).
    #[serde(default)]
    pub tags: Option<String>,
    /// Leave out tags this regular expression matches (the whole tag).
    #[serde(default)]
    pub exclude: Option<String>,
    /// Only versions in this range (`>=1.2, <2`).
    #[serde(default)]
    pub semver: Option<String>,
    /// Only the N highest versions.
    #[serde(default)]
    pub newest: Option<usize>,
    /// Consider `latest` too.
    #[serde(default)]
    pub include_latest: bool,
    /// The application the tags are promoted as (default: derived from the repository, as
    /// copy-to-quarantine derives it).
    #[serde(default)]
    pub application: Option<String>,
}

/// The listing step's input: the request, and the sync execution's name (the promotions'
/// execution names are derived from it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncPlanRequest {
    /// What to sync.
    pub request: SyncRequest,
    /// The sync execution's name (`$$.Execution.Name`).
    pub execution: String,
}

/// The deployment's sync settings.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings<'a> {
    /// The environments (the first one's tag template names the environment tag).
    pub environments: &'a Environments,
    /// Where a source may be.
    pub sources: &'a SourceRegistries,
    /// Promotions at once (the Distributed Map's `MaxConcurrency`).
    pub max_concurrency: u32,
    /// The share of failed promotions the Map Run tolerates (0-100).
    pub tolerated_failure_percentage: u32,
    /// At most this many promotions per sync; the rest wait for the next one.
    pub max_promotions: usize,
}

/// HEAD requests in flight while planning.
const PLAN_CONCURRENCY: usize = 8;

/// One promotion the sync starts: a manual request for the promotion state machine.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPromotion {
    /// The promotion execution's name: `sync-<tag>-<hash of the sync execution, tag and
    /// digest>`, so a retried start finds the execution it started (and a later sync starts
    /// its own).
    pub name: String,
    /// The upstream tag.
    pub tag: String,
    /// The digest the plan saw.
    pub digest: Digest,
    /// The promotion request: the source pinned to that digest (a tag moved meanwhile is
    /// refused, not promoted in its new state), the tag as build id, the application.
    pub request: PromotionRequest,
}

/// A manual promotion request (the promotion state machine's input).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRequest {
    /// `repo:tag@digest`.
    pub source: String,
    /// The upstream tag.
    pub build: String,
    /// The application (the same for every item of a sync).
    pub application: String,
}

/// A sync's plan: the Distributed Map's items and settings, and what was left out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPlan {
    /// The upstream repository.
    pub repository: String,
    /// The application.
    pub application: String,
    /// Its trusted repository.
    pub trusted: String,
    /// Tags the repository lists.
    pub tags_listed: usize,
    /// Tags the filters kept.
    pub considered: usize,
    /// Tags already promoted.
    pub present: usize,
    /// The promotions to start (at most `SYNC_MAX_PROMOTIONS`, highest versions first).
    pub promotions: Vec<PlannedPromotion>,
    /// Tags to promote beyond that bound: the next sync plans them.
    pub deferred: usize,
    /// Tags that are neither promoted nor to be (moved, gone, invalid), with the reason.
    pub skipped: Vec<PlannedTag>,
    /// The Map's `MaxConcurrencyPath`.
    pub max_concurrency: u32,
    /// The Map's `ToleratedFailurePercentagePath`.
    pub tolerated_failure_percentage: u32,
}

/// The sync state machine's listing step: check the request, list and filter the tags, and
/// plan each (HEAD requests, a few at once). Nothing is written.
pub async fn plan_sync(
    registry: &dyn Registry,
    repos: &Repositories,
    input: &SyncPlanRequest,
    settings: &SyncSettings<'_>,
) -> Result<SyncPlan, PipelineError> {
    let req = &input.request;
    let execution = input.execution.trim();
    if execution.is_empty() || execution.len() > 80 {
        return Err(PipelineError::Input(
            "execution: the sync execution's name (1 to 80 characters)".into(),
        ));
    }
    let repo = parse_repository("repository", &req.repository)?;
    // Before anything is fetched: a request must not point the function at any host it likes.
    settings.sources.check(&repo, repos)?;
    if repos.in_pipeline(&repo, "repository").is_ok() {
        return Err(PipelineError::Input(format!(
            "repository: {repo} is one of the pipeline's own quarantine or trusted \
             repositories; a sync reads where images come from"
        )));
    }
    let app = repos.application_of_source(&repo, req.application.as_deref())?;
    let trusted = repos.trusted_of(&app)?;
    let filters = Filters::new(
        ["tags", "exclude", "semver", "newest"],
        req.tags.as_deref(),
        req.exclude.as_deref(),
        req.semver.as_deref(),
        req.newest,
        req.include_latest,
    )?;
    let listed = registry.list_tags(&repo).await?;
    let tags = filters.apply(&listed);
    let envs = settings.environments;
    let env = envs.first();
    let planned: Vec<PlannedTag> = futures_util::stream::iter(tags.iter())
        .map(|tag| plan_tag(registry, &repo, &trusted, envs, env, tag))
        .buffered(PLAN_CONCURRENCY)
        .try_collect()
        .await?;
    let present = planned.iter().filter(|p| p.plan == Plan::Present).count();
    let mut promotions = Vec::new();
    let mut skipped = Vec::new();
    for p in planned {
        match (p.plan, &p.digest) {
            (Plan::Promote, Some(digest)) => promotions.push(PlannedPromotion {
                name: execution_name(execution, &p.tag, digest),
                request: PromotionRequest {
                    source: format!("{repo}:{}@{digest}", p.tag),
                    build: p.tag.clone(),
                    application: app.to_string(),
                },
                tag: p.tag,
                digest: digest.clone(),
            }),
            (Plan::Present, _) => {}
            _ => skipped.push(p),
        }
    }
    let deferred = promotions.len().saturating_sub(settings.max_promotions);
    promotions.truncate(settings.max_promotions);
    Ok(SyncPlan {
        repository: repo.to_string(),
        application: app.to_string(),
        trusted: trusted.to_string(),
        tags_listed: listed.len(),
        considered: tags.len(),
        present,
        promotions,
        deferred,
        skipped,
        max_concurrency: settings.max_concurrency,
        tolerated_failure_percentage: settings.tolerated_failure_percentage,
    })
}

/// `sync-<tag, as far as a name allows, at most 40>-<16 hex of SHA-256(execution, tag,
/// digest)>`: at most 62 characters, all of them ones Step Functions logs to CloudWatch
/// (`A-Za-z0-9-_`).
fn execution_name(execution: &str, tag: &str, digest: &Digest) -> String {
    let readable: String = tag
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = Sha256::digest(format!("{execution}\n{tag}\n{digest}").as_bytes());
    format!("sync-{readable}-{}", &hex::encode(hash)[..16])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::Classify as _;
    use crate::manifest::RawManifest;
    use crate::registry::memory::MemoryRegistry;
    use bytes::Bytes;

    fn manifest(annotations: serde_json::Value) -> RawManifest {
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
            "annotations": annotations,
        });
        RawManifest::new(
            Bytes::from(doc.to_string()),
            "application/vnd.oci.image.index.v1+json".into(),
        )
    }

    #[tokio::test]
    async fn a_tag_is_held_by_a_promotion_of_its_digest_another_or_nothing() {
        let reg = MemoryRegistry::new();
        let trusted: ImageRef = "reg.test/trusted/app".parse().unwrap();
        let upstream = manifest(serde_json::json!({"upstream": "1"})).digest;
        let promoted = manifest(serde_json::json!({CLAIM_SOURCE_DIGEST: upstream.to_string()}));
        reg.put_manifest_bytes(&trusted, Some("dev-1.0"), promoted.clone());
        let other =
            manifest(serde_json::json!({CLAIM_SOURCE_DIGEST: Digest::of(b"x").to_string()}));
        reg.put_manifest_bytes(&trusted, Some("dev-0.9"), other.clone());
        let preserved = manifest(serde_json::json!({}));
        reg.put_manifest_bytes(&trusted, Some("dev-0.8"), preserved.clone());

        let held = |tag: &'static str, source: Digest| {
            let (reg, trusted) = (&reg, &trusted);
            async move { held_under(reg, trusted, tag, &source).await.unwrap() }
        };
        assert_eq!(
            held("dev-1.0", upstream.clone()).await,
            Held::Promotion(promoted.digest)
        );
        assert_eq!(
            held("dev-0.9", upstream.clone()).await,
            Held::Other(other.digest)
        );
        // Promoted without mutation: the trusted digest is the upstream one.
        assert_eq!(
            held("dev-0.8", preserved.digest.clone()).await,
            Held::Promotion(preserved.digest.clone())
        );
        // No record and another digest: not a promotion of this source.
        assert_eq!(
            held("dev-0.8", upstream.clone()).await,
            Held::Other(preserved.digest)
        );
        assert_eq!(held("dev-2.0", upstream).await, Held::Nothing);
    }

    #[test]
    fn environment_tags_come_from_the_template_and_latest_is_none() {
        let envs = Environments::default();
        let dev = envs.first();
        assert_eq!(
            environment_tag(&envs, dev, "1.4.2").as_deref(),
            Some("dev-1.4.2")
        );
        assert_eq!(environment_tag(&envs, dev, "latest"), None);
    }

    const NAMES: [&str; 4] = ["tags", "exclude", "semver", "newest"];

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
        match Filters::new(NAMES, tags_re, exclude, range, newest, false) {
            Ok(f) => f.apply(&tags(list)),
            Err(e) => panic!("{e}"),
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
        // Perl classes work (ASCII): `\d`, `\w`.
        assert_eq!(
            apply(
                Some(r"v?\d+\.\d+\.\d+"),
                Some(r"\w+-rc\.\d"),
                None,
                None,
                &all
            ),
            ["v1.10.0", "1.9.3", "1.2.0"]
        );
        // Whole tags only: `1.2` does not match `1.2.0`.
        assert!(apply(Some("1.2"), None, None, None, &all).is_empty());
        let with_latest = Filters::new(NAMES, None, None, None, None, true).ok();
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
            match Filters::new(NAMES, t, e, r, n, false) {
                Ok(_) => panic!("accepted {t:?} {e:?} {r:?} {n:?}"),
                Err(f) => {
                    assert_eq!(f.error_type(), ErrorType::InputInvalid);
                    assert!(NAMES.iter().any(|n| f.to_string().starts_with(n)), "{f}");
                }
            }
        }
    }

    fn repositories() -> Repositories {
        Repositories::per_application("pipe.test", "incoming/", "quarantine/", "trusted/", None)
            .unwrap()
    }

    /// The deployment's defaults; sources `up.test` only.
    fn settings<'a>(envs: &'a Environments, sources: &'a SourceRegistries) -> SyncSettings<'a> {
        SyncSettings {
            environments: envs,
            sources,
            max_concurrency: 3,
            tolerated_failure_percentage: 20,
            max_promotions: 200,
        }
    }

    fn sync_request(request: serde_json::Value) -> SyncPlanRequest {
        serde_json::from_value(serde_json::json!({"request": request, "execution": "nightly-1"}))
            .unwrap()
    }

    #[tokio::test]
    async fn a_sync_plans_exactly_the_missing_tags_pinned_and_named_and_bounded() {
        let reg = MemoryRegistry::new();
        let repos = repositories();
        let upstream: ImageRef = "up.test/org/app".parse().unwrap();
        let trusted: ImageRef = "pipe.test/trusted/org/app".parse().unwrap();
        let mut digests = std::collections::BTreeMap::new();
        for tag in ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "latest", "nightly"] {
            let m = manifest(serde_json::json!({"tag": tag}));
            reg.put_manifest_bytes(&upstream, Some(tag), m.clone());
            digests.insert(tag, m.digest);
        }
        // 1.0.0 is promoted; 1.1.0's environment tag holds a promotion of another digest.
        reg.put_manifest_bytes(
            &trusted,
            Some("dev-1.0.0"),
            manifest(serde_json::json!({CLAIM_SOURCE_DIGEST: digests["1.0.0"].to_string()})),
        );
        reg.put_manifest_bytes(
            &trusted,
            Some("dev-1.1.0"),
            manifest(serde_json::json!({CLAIM_SOURCE_DIGEST: Digest::of(b"old").to_string()})),
        );
        let (envs, sources) = (
            Environments::default(),
            SourceRegistries::only(["up.test"]).unwrap(),
        );
        let settings = settings(&envs, &sources);
        let req = sync_request(serde_json::json!({"repository": "up.test/org/app"}));
        let plan = plan_sync(&reg, &repos, &req, &settings).await.unwrap();
        assert_eq!((plan.tags_listed, plan.considered, plan.present), (6, 5, 1));
        assert_eq!(plan.trusted, "pipe.test/trusted/org/app");
        let tags: Vec<&str> = plan.promotions.iter().map(|p| p.tag.as_str()).collect();
        // Highest versions first, then the other tags; never latest; 1.1.0 moved.
        assert_eq!(tags, ["2.0.0", "1.2.0", "nightly"]);
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(
            (plan.skipped[0].tag.as_str(), plan.skipped[0].plan),
            ("1.1.0", Plan::Moved)
        );
        let first = &plan.promotions[0];
        assert_eq!(
            first.request.source,
            format!("up.test/org/app:2.0.0@{}", digests["2.0.0"])
        );
        assert_eq!(
            (
                first.request.build.as_str(),
                first.request.application.as_str()
            ),
            ("2.0.0", "org/app")
        );
        // The same sync execution names its promotions the same; another names them anew.
        let again = plan_sync(&reg, &repos, &req, &settings).await.unwrap();
        assert_eq!(again.promotions[0].name, first.name);
        assert!(first.name.starts_with("sync-2-0-0-") && first.name.len() <= 80);
        let mut other = req.clone();
        other.execution = "nightly-2".into();
        let other = plan_sync(&reg, &repos, &other, &settings).await.unwrap();
        assert_ne!(other.promotions[0].name, first.name);

        // The bound defers the rest; the filters apply.
        let bounded = SyncSettings {
            max_promotions: 1,
            ..settings
        };
        let plan = plan_sync(&reg, &repos, &req, &bounded).await.unwrap();
        assert_eq!((plan.promotions.len(), plan.deferred), (1, 2));
        let req = sync_request(serde_json::json!({"repository": "up.test/org/app",
            "semver": "^1", "application": "mirror"}));
        let plan = plan_sync(&reg, &repos, &req, &settings).await.unwrap();
        assert_eq!(plan.trusted, "pipe.test/trusted/mirror");
        let tags: Vec<&str> = plan.promotions.iter().map(|p| p.tag.as_str()).collect();
        assert_eq!(tags, ["1.2.0", "1.1.0", "1.0.0"]);
    }

    #[tokio::test]
    async fn a_sync_refuses_other_registries_its_own_repositories_and_bad_requests() {
        let reg = MemoryRegistry::new();
        let repos = repositories();
        let (envs, sources) = (
            Environments::default(),
            SourceRegistries::only(["up.test"]).unwrap(),
        );
        let settings = settings(&envs, &sources);
        for (request, says) in [
            (
                serde_json::json!({"repository": "evil.test/org/app"}),
                "SOURCE_REGISTRIES",
            ),
            (
                serde_json::json!({"repository": "pipe.test/trusted/app"}),
                "own",
            ),
            (
                serde_json::json!({"repository": "up.test/org/app:1.0"}),
                "repository",
            ),
            (
                serde_json::json!({"repository": "up.test/app", "tags": "("}),
                "tags",
            ),
            (
                serde_json::json!({"repository": "up.test/app", "newest": 0}),
                "newest",
            ),
        ] {
            let req = sync_request(request.clone());
            let e = plan_sync(&reg, &repos, &req, &settings).await.unwrap_err();
            assert_eq!(e.error_type(), ErrorType::InputInvalid, "{request}");
            assert!(e.to_string().contains(says), "{request}: {e}");
        }
        let forged = serde_json::json!({"request": {"repository": "up.test/app",
            "gate": "PASSED"}, "execution": "x"});
        assert!(serde_json::from_value::<SyncPlanRequest>(forged).is_err());
        let mut req = sync_request(serde_json::json!({"repository": "up.test/app"}));
        req.execution = String::new();
        let e = plan_sync(&reg, &repos, &req, &settings).await.unwrap_err();
        assert!(e.to_string().starts_with("execution"), "{e}");
    }
}
