//! retag-for-environment: verify the approval (for an environment that requires one), the
//! pipeline's signature and attestation, re-run the gate with the environment's rules, check
//! the environment order, then record the approval and add the environment tag.
//!
//! The gate always runs here, whatever the request says, with one exception that needs no
//! trust in the request: the pipeline's own promotion attestation (verified with its key)
//! records that this very policy passed the digest within [`GATE_REUSE_MAX_AGE`], and the
//! target environment's rules are the base rules the promotion was gated with — the tag for the
//! first environment at the end of a promotion, when the trusted digest has not been scanned
//! yet. `regate: true` forces a re-run even then.

use super::{PipelineError, Repositories, account_of, build_from_source_tag, pinned};
use crate::clock::Clock;
use crate::environment::{
    self, ApprovalCheck, ApproverKeys, Environments, GateCheck, GateReuse, RetagOptions,
};
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
    /// Re-run the gate even where the pipeline's fresh promotion attestation would stand in
    /// for it. `false` never skips the gate otherwise.
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
    /// The verified approval's copy in trusted and its approver, when one was required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// How old the pipeline's promotion attestation may be to stand in for a gate re-run.
pub const GATE_REUSE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// What retag needs besides the registry.
pub struct RetagSettings<'a> {
    /// The environments.
    pub environments: &'a Environments,
    /// The policy (environment promotion).
    pub policy: &'a Policy,
    /// The pipeline's public key.
    pub key: &'a PublicKey,
    /// The approvers' keys.
    pub approvers: &'a ApproverKeys,
    /// The clock.
    pub clock: &'a dyn Clock,
}

/// Verify the approval, the signature and attestation, re-run the gate, check the order, then
/// record the approval and tag.
pub async fn retag_for_environment(
    reg: &dyn Registry,
    repos: &Repositories,
    findings: &dyn FindingsSource,
    settings: &RetagSettings<'_>,
    req: &RetagRequest,
) -> Result<RetagResult, PipelineError> {
    let image = pinned("image", &req.image)?;
    repos.in_trusted(&image, "image")?;
    let target = match &req.environment {
        Some(e) => settings.environments.get(e)?,
        None => settings.environments.first(),
    };
    let env = target.name.clone();
    let rules = settings.policy.rules(Some(&env));
    // The attestation records the base rules passing: it stands in only where the environment
    // adds nothing of its own (the rules resolved for it differ from the base in nothing but
    // the environment's name).
    let base = settings.policy.rules(None);
    let reusable = !req.regate
        && crate::gate::Rules {
            environment: None,
            ..rules.clone()
        } == base;
    let check = Some(GateCheck {
        source: findings,
        rules,
        clock: settings.clock,
        account: account_of(&image),
        limits: settings.policy.limits(),
        reuse: reusable.then(|| GateReuse {
            policy_digest: settings.policy.digest().clone(),
            max_age: GATE_REUSE_MAX_AGE,
        }),
    });
    let approvals = if target.approval_required {
        Some(repos.approvals_for(&image, "image")?)
    } else {
        None
    };
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
        approvals.as_ref().map(|a| ApprovalCheck {
            approvals: a,
            keys: settings.approvers,
        }),
    )
    .await?;
    Ok(RetagResult {
        image: image.to_string(),
        environment: done.retag.environment.clone(),
        tags: done.retag.tags.iter().map(|t| t.tag.clone()).collect(),
        changed: done.retag.changed,
        gate: done.gate.as_ref().map(Verdict::compact),
        approval: done
            .approval
            .as_ref()
            .map(|a| format!("{} by {}", a.recorded, a.approver)),
    })
}
