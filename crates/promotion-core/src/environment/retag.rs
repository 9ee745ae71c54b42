//! Retag for an environment: put the exact manifest bytes of a digest under `<env>-<build>` (and
//! any extra tags) through the registry API, which works the same on ECR and any OCI registry.
//!
//! Order of work, so that a refusal writes nothing:
//! 1. resolve the image to a digest once and read its manifest bytes;
//! 2. read which environment tags already name this digest (`tags/list`, then a HEAD per tag
//!    made by an environment's template);
//! 3. check the environment order: every environment in `after` must have a tag on the digest
//!    (unless the target environment already has one: a re-run);
//! 4. choose the build id: the one asked for; else the one this digest already carries in an
//!    environment tag (so `staging-1234` follows `dev-1234`); else the first 12 hex digits of the
//!    digest;
//! 5. check every tag: absent → to write; already this digest → unchanged; another digest →
//!    `Tag.Conflict` unless the environment allows moving its tags;
//! 6. only then write.
//!
//! An "already exists" answer from the registry (ECR's immutable tags, a concurrent run) is
//! re-checked with a HEAD: the same digest is success.

use super::EnvError;
use super::config::{Environment, Environments};
use crate::digest::Digest;
use crate::reference::{ImageRef, is_valid_tag};
use crate::registry::Registry;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::BTreeMap;

/// HEADs in flight while reading which tags name a digest.
const HEAD_CONCURRENCY: usize = 8;

/// What to tag, besides the environment's own templates.
#[derive(Debug, Clone, Default)]
pub struct RetagOptions {
    /// The build id; see the module docs for the default.
    pub build: Option<String>,
    /// Extra literal tags, with the environment's rules.
    pub extra_tags: Vec<String>,
}

/// What happened to one tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome")]
pub enum TagOutcome {
    /// Written now.
    Created,
    /// Already named the digest.
    Unchanged,
    /// Named another digest and was moved (the environment allows it).
    Moved {
        /// The digest it named before.
        previous: Digest,
    },
}

/// One tag and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagResult {
    /// The tag.
    pub tag: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: TagOutcome,
}

/// The result of a retag.
#[derive(Debug, Clone, Serialize)]
pub struct RetagReport {
    /// Always `retag`.
    pub operation: &'static str,
    /// The repository.
    pub repository: String,
    /// The tagged digest.
    pub digest: Digest,
    /// The environment.
    pub environment: String,
    /// The build id used.
    pub build: String,
    /// Every tag, the environment tag first.
    pub tags: Vec<TagResult>,
    /// Whether anything was written.
    pub changed: bool,
}

/// The environment tags that name `digest`, by environment name.
async fn environment_tags_of<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
    envs: &Environments,
) -> Result<BTreeMap<String, Vec<(String, String)>>, EnvError> {
    let tags = reg.list_tags(repo).await?;
    let candidates: Vec<(String, String, String)> = tags
        .iter()
        .filter_map(|t| {
            envs.owner_of(t)
                .map(|(e, b)| (e.name.clone(), t.clone(), b.to_owned()))
        })
        .collect();
    let named: Vec<Option<(String, String, String)>> = futures_util::stream::iter(candidates)
        .map(|(env, tag, build)| async move {
            let d = reg.head_manifest(repo, &tag).await?;
            Ok::<_, EnvError>((d.as_ref() == Some(digest)).then_some((env, tag, build)))
        })
        .buffered(HEAD_CONCURRENCY)
        .try_collect()
        .await?;
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (env, tag, build) in named.into_iter().flatten() {
        out.entry(env).or_default().push((tag, build));
    }
    Ok(out)
}

/// Check the order and choose the build id; see the module docs.
fn plan(
    env: &Environment,
    digest: &Digest,
    existing: &BTreeMap<String, Vec<(String, String)>>,
    asked: Option<&str>,
) -> Result<String, EnvError> {
    let here = existing.get(&env.name);
    if here.is_none() {
        let missing: Vec<&str> = env
            .after
            .iter()
            .filter(|a| !existing.contains_key(*a))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(EnvError::OutOfOrder(format!(
                "{digest} cannot enter {:?} before {}: no {} tag names it",
                env.name,
                missing.join(" and "),
                missing
                    .iter()
                    .map(|m| format!("{m}-*"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
    }
    if let Some(b) = asked {
        return Ok(b.to_owned());
    }
    let reuse = here
        .into_iter()
        .chain(env.after.iter().filter_map(|a| existing.get(a)))
        .chain(existing.values())
        .flatten()
        .map(|(_, b)| b.clone())
        .next();
    Ok(reuse.unwrap_or_else(|| digest.hex()[..12].to_owned()))
}

/// The tags environment `env` gives build `build`: its template's, then its extra tags'.
pub fn env_tags(env: &Environment, build: &str) -> Result<Vec<String>, EnvError> {
    std::iter::once(&env.template)
        .chain(&env.extra)
        .map(|t| t.render(build))
        .collect()
}

/// What writing `wanted` for `digest` would do to each tag (steps 5 of the module docs), or
/// `Tag.Conflict` naming every tag that names another digest when `env` does not allow moves.
/// Reads only: promote-and-annotate asks it before it writes anything to trusted.
pub async fn plan_tags<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    env: &Environment,
    digest: &Digest,
    wanted: Vec<String>,
) -> Result<Vec<(String, TagOutcome)>, EnvError> {
    let mut plan = Vec::with_capacity(wanted.len());
    let mut conflicts = Vec::new();
    for tag in wanted {
        match reg.head_manifest(image, &tag).await? {
            None => plan.push((tag, TagOutcome::Created)),
            Some(d) if d == *digest => plan.push((tag, TagOutcome::Unchanged)),
            Some(previous) if env.allow_move => plan.push((tag, TagOutcome::Moved { previous })),
            Some(previous) => conflicts.push(format!("{tag} names {previous}")),
        }
    }
    if !conflicts.is_empty() {
        return Err(EnvError::Conflict(format!(
            "{} already: environment {:?} does not allow moving its tags to {digest} \
             (set allow_move to permit it); nothing was tagged",
            conflicts.join(", "),
            env.name
        )));
    }
    Ok(plan)
}

/// What `retag` will write, checked: the manifest, its digest, the build id and each tag's
/// outcome.
struct Prepared {
    raw: crate::manifest::RawManifest,
    digest: Digest,
    build: String,
    plan: Vec<(String, TagOutcome)>,
}

/// Every check `retag` makes before its first write (grammar, order, conflicts), without
/// writing: environment promotion runs it before recording an approval.
pub(crate) async fn check_retag<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    envs: &Environments,
    target: &str,
    opts: &RetagOptions,
) -> Result<(), EnvError> {
    prepare(reg, image, envs, target, opts).await.map(drop)
}

async fn prepare<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    envs: &Environments,
    target: &str,
    opts: &RetagOptions,
) -> Result<Prepared, EnvError> {
    let env = envs.get(target)?;
    if let Some(b) = &opts.build {
        env.template.render(b)?;
    }
    for t in &opts.extra_tags {
        if !is_valid_tag(t) {
            return Err(EnvError::Input(format!(
                "tag {t:?} breaks the tag grammar [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
            )));
        }
    }
    let raw = super::manifest_of(reg, image).await?;
    let digest = raw.digest.clone();
    let existing = environment_tags_of(reg, image, &digest, envs).await?;
    let build = plan(env, &digest, &existing, opts.build.as_deref())?;

    let mut wanted = env_tags(env, &build)?;
    wanted.extend(opts.extra_tags.iter().cloned());
    wanted.dedup();
    let plan = plan_tags(reg, image, env, &digest, wanted).await?;
    Ok(Prepared {
        raw,
        digest,
        build,
        plan,
    })
}

/// Tag `image` for environment `target`. See the module docs.
#[tracing::instrument(level = "debug", skip(reg, envs, opts), fields(image = %image, environment = target))]
pub async fn retag<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    envs: &Environments,
    target: &str,
    opts: &RetagOptions,
) -> Result<RetagReport, EnvError> {
    let env = envs.get(target)?;
    let Prepared {
        raw,
        digest,
        build,
        plan,
    } = prepare(reg, image, envs, target, opts).await?;

    let mut tags = Vec::with_capacity(plan.len());
    for (tag, outcome) in plan {
        let outcome = match outcome {
            TagOutcome::Unchanged => TagOutcome::Unchanged,
            o => match reg.put_manifest(image, &tag, &raw).await {
                Ok(_) => o,
                // "Already exists" (immutable tags, a concurrent run): fine if it is ours.
                Err(e) => match reg.head_manifest(image, &tag).await? {
                    Some(d) if d == digest => TagOutcome::Unchanged,
                    Some(other) => {
                        return Err(EnvError::Conflict(format!(
                            "{tag} was set to {other} concurrently; {digest} was not tagged"
                        )));
                    }
                    None => return Err(e.into()),
                },
            },
        };
        tracing::info!(tag = %tag, digest = %digest, outcome = ?outcome, "environment tag");
        tags.push(TagResult { tag, outcome });
    }
    let changed = tags.iter().any(|t| t.outcome != TagOutcome::Unchanged);
    Ok(RetagReport {
        operation: "retag",
        repository: image.repo_path(),
        digest,
        environment: env.name.clone(),
        build,
        tags,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorType};
    use crate::manifest::{OCI_MANIFEST, RawManifest};
    use crate::registry::memory::MemoryRegistry;
    use bytes::Bytes;

    fn repo() -> ImageRef {
        "registry.test/trusted/app".parse().unwrap()
    }

    fn image(reg: &MemoryRegistry, n: u8) -> Digest {
        let m = RawManifest::new(
            Bytes::from(format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"annotations":{{"n":"{n}"}}}}"#
            )),
            OCI_MANIFEST.into(),
        );
        let d = m.digest.clone();
        reg.put_blob_bytes(&repo(), Bytes::from_static(b"{}"));
        reg.put_manifest_bytes(&repo(), None, m);
        d
    }

    fn opts(build: &str) -> RetagOptions {
        RetagOptions {
            build: Some(build.into()),
            extra_tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn tags_the_exact_manifest_and_a_rerun_is_a_no_op() {
        let reg = MemoryRegistry::new();
        let d = image(&reg, 1);
        let envs = Environments::default();
        let img = repo().pinned(d.clone());
        let mut o = opts("1234");
        o.extra_tags.push("1.4.2".into());
        let r = retag(&reg, &img, &envs, "dev", &o).await.unwrap();
        assert!(r.changed);
        assert_eq!(r.tags[0].tag, "dev-1234");
        assert_eq!(r.tags[1].tag, "1.4.2");
        assert_eq!(reg.tag(&repo(), "dev-1234"), Some(d.clone()));
        assert_eq!(reg.tag(&repo(), "1.4.2"), Some(d.clone()));
        let puts = reg.calls().manifest_puts;
        let again = retag(&reg, &img, &envs, "dev", &o).await.unwrap();
        assert!(!again.changed);
        assert!(
            again
                .tags
                .iter()
                .all(|t| t.outcome == TagOutcome::Unchanged)
        );
        assert_eq!(reg.calls().manifest_puts, puts, "no write on a re-run");
    }

    #[tokio::test]
    async fn order_is_enforced_and_the_build_id_follows_the_previous_environment() {
        let reg = MemoryRegistry::new();
        let d = image(&reg, 1);
        let envs = Environments::default();
        let img = repo().pinned(d.clone());
        let err = retag(&reg, &img, &envs, "prod", &RetagOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::EnvironmentOutOfOrder, "{err}");
        assert!(err.to_string().contains("before staging"), "{err}");
        retag(&reg, &img, &envs, "dev", &opts("77")).await.unwrap();
        let err = retag(&reg, &img, &envs, "prod", &RetagOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::EnvironmentOutOfOrder);
        let staging = retag(&reg, &img, &envs, "staging", &RetagOptions::default())
            .await
            .unwrap();
        assert_eq!(staging.build, "77");
        assert_eq!(staging.tags[0].tag, "staging-77");
        let prod = retag(&reg, &img, &envs, "prod", &RetagOptions::default())
            .await
            .unwrap();
        assert_eq!(prod.tags[0].tag, "prod-77");
        // Without any environment tag and no build id: the digest's first 12 hex digits.
        let d2 = image(&reg, 2);
        let r = retag(
            &reg,
            &repo().pinned(d2.clone()),
            &envs,
            "dev",
            &RetagOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.tags[0].tag, format!("dev-{}", &d2.hex()[..12]));
    }

    #[tokio::test]
    async fn a_tag_naming_another_digest_is_a_conflict_unless_moves_are_allowed() {
        let reg = MemoryRegistry::new();
        let a = image(&reg, 1);
        let b = image(&reg, 2);
        let envs = Environments::default();
        retag(&reg, &repo().pinned(a.clone()), &envs, "dev", &opts("1"))
            .await
            .unwrap();
        let mut o = opts("1");
        o.extra_tags.push("fresh".into());
        let err = retag(&reg, &repo().pinned(b.clone()), &envs, "dev", &o)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::TagConflict, "{err}");
        assert!(
            err.to_string().contains(&format!("dev-1 names {a}")),
            "{err}"
        );
        assert_eq!(reg.tag(&repo(), "dev-1"), Some(a.clone()));
        assert_eq!(
            reg.tag(&repo(), "fresh"),
            None,
            "nothing written on a conflict"
        );

        let moving = Environments::parse("environments: [{name: dev, allow_move: true}]").unwrap();
        let r = retag(&reg, &repo().pinned(b.clone()), &moving, "dev", &opts("1"))
            .await
            .unwrap();
        assert_eq!(r.tags[0].outcome, TagOutcome::Moved { previous: a });
        assert_eq!(reg.tag(&repo(), "dev-1"), Some(b));
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_anything_is_written() {
        let reg = MemoryRegistry::new();
        let d = image(&reg, 1);
        let envs = Environments::default();
        let img = repo().pinned(d);
        let long = "9".repeat(200);
        let cases: Vec<(&str, RetagOptions, &str)> = vec![
            ("qa", RetagOptions::default(), "unknown environment"),
            ("dev", opts("a b"), "tag grammar"),
            ("dev", opts(&long), "characters"),
            (
                "dev",
                RetagOptions {
                    build: Some("1".into()),
                    extra_tags: vec![".bad".into()],
                },
                "\".bad\"",
            ),
        ];
        for (env, o, needle) in cases {
            let err = retag(&reg, &img, &envs, env, &o).await.unwrap_err();
            assert_eq!(err.error_type(), ErrorType::InputInvalid, "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
        let missing = repo().pinned(Digest::of(b"elsewhere"));
        let err = retag(&reg, &missing, &envs, "dev", &opts("1"))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::RegistryNotFound, "{err}");
        assert!(err.to_string().contains("nothing was tagged"), "{err}");
        assert!(reg.tags(&repo()).is_empty());
    }
}
