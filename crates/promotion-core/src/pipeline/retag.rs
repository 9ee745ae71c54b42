//! retag-for-environment: verify the pipeline's signature, re-run the gate when asked, check
//! the environment order, then add the environment tag.

use super::{PipelineError, Repositories, account_of, build_from_source_tag, pinned};
use crate::clock::Clock;
use crate::environment::{self, Environments, GateCheck, RetagOptions};
use crate::gate::{FindingsSource, Policy, Verdict};
use crate::registry::Registry;
use crate::sign::PublicKey;
use serde::{Deserialize, Serialize};

/// Input of retag-for-environment.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetagRequest {
    /// The trusted image, pinned.
    pub image: String,
    /// The target environment; default: the first environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The build id; default: see `environment::retag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The source tag of the promotion: the build id when `build` is absent and the tag makes
    /// a valid environment tag (never `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tag: Option<String>,
    /// Re-run the gate with the environment's rules first (environment promotion).
    #[serde(default)]
    pub regate: bool,
}

/// Result of retag-for-environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetagResult {
    /// The tagged image, pinned.
    pub image: String,
    /// The environment.
    pub environment: String,
    /// Every tag.
    pub tags: Vec<String>,
    /// Whether a tag was written.
    pub changed: bool,
    /// The gate re-run, compact, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
}

/// What retag needs besides the registry.
pub struct RetagSettings<'a> {
    /// The environments.
    pub environments: &'a Environments,
    /// The policy (environment promotion).
    pub policy: &'a Policy,
    /// The pipeline's public key.
    pub key: &'a PublicKey,
    /// The clock.
    pub clock: &'a dyn Clock,
}

/// Verify the pipeline's signature, re-run the gate when asked, check the order, then tag.
pub async fn retag_for_environment(
    reg: &dyn Registry,
    repos: &Repositories,
    findings: &dyn FindingsSource,
    settings: &RetagSettings<'_>,
    req: &RetagRequest,
) -> Result<RetagResult, PipelineError> {
    let image = pinned("image", &req.image)?;
    repos.in_trusted(&image, "image")?;
    let env = match &req.environment {
        Some(e) => settings.environments.get(e)?.name.clone(),
        None => settings.environments.first().name.clone(),
    };
    let check = req.regate.then(|| GateCheck {
        source: findings,
        rules: settings.policy.rules(Some(&env)),
        clock: settings.clock,
        account: account_of(&image),
        limits: settings.policy.limits(),
    });
    let opts = RetagOptions {
        build: req
            .build
            .clone()
            .or_else(|| build_from_source_tag(settings.environments, req.source_tag.as_deref())),
        extra_tags: Vec::new(),
    };
    let done = environment::promote_to_environment(
        reg,
        &image,
        settings.environments,
        &env,
        &opts,
        settings.key,
        check,
    )
    .await?;
    Ok(RetagResult {
        image: image.to_string(),
        environment: done.retag.environment.clone(),
        tags: done.retag.tags.iter().map(|t| t.tag.clone()).collect(),
        changed: done.retag.changed,
        gate: done.gate.as_ref().map(Verdict::compact),
    })
}
