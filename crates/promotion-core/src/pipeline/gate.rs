//! scan-gate: gate every platform of a quarantined (or, for an environment promotion, trusted)
//! digest once; PENDING tells the state machine how long to wait.

use super::{PipelineError, Repositories, account_of, pinned};
use crate::clock::Clock;
use crate::digest::Digest;
use crate::environment::{ApproverKeys, Environments, approval, verify_approval};
use crate::gate::{self, Decision, FindingsSource, GateError, Observation, Policy, Verdict};
use crate::poll::{Next, Schedule};
use crate::reference::ImageRef;
use crate::registry::Registry;
use serde::{Deserialize, Serialize};

/// An approval event's repository and digest (environment promotion).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRef {
    /// The repository name: an approvals repository of the pipeline's registry.
    pub repository: String,
    /// The event's `image-digest`: the approval's or its subject's (AWS does not say which).
    pub digest: String,
}

/// Input of scan-gate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateRequest {
    /// The image to gate, pinned (quarantine, or trusted for an environment promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resolve this approval first (environment promotion from an event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
    /// The environment whose rules apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The build id to carry to retag (environment promotion), validated there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Polls so far (the state machine passes back the previous result's value).
    #[serde(default)]
    pub polls: u32,
    /// The previous read, for settling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
}

/// Result of scan-gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    /// The gated image, pinned.
    pub image: String,
    /// PASSED, FAILED or PENDING.
    pub decision: Decision,
    /// One sentence.
    pub message: String,
    /// `Verdict::compact`.
    pub summary: String,
    /// Distinct blocking ids (bounded).
    pub blocking_ids: Vec<String>,
    /// The environment whose rules applied (null: the base rules). Always present, like
    /// `build` and `observation`: the state machine passes them on by path.
    #[serde(default)]
    pub environment: Option<String>,
    /// The build id asked for (by an approval or the request).
    #[serde(default)]
    pub build: Option<String>,
    /// Polls so far, this one included.
    pub polls: u32,
    /// Seconds to wait before the next poll (PENDING).
    pub wait_seconds: u64,
    /// Carry into the next poll.
    #[serde(default)]
    pub observation: Option<Observation>,
}

/// How the gate step behaves.
pub struct GateSettings<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// The environments (approvals, environment names).
    pub environments: &'a Environments,
    /// The approvers' keys (approval events are verified before anything is gated).
    pub approvers: &'a ApproverKeys,
    /// Seconds between polls.
    pub poll_seconds: u64,
    /// After this many seconds of polling, PENDING becomes `Gate.Timeout`.
    pub max_wait_seconds: u64,
    /// The clock.
    pub clock: &'a dyn Clock,
}

/// Gate every platform of the image once; PENDING tells the state machine how long to wait,
/// and turns into `Gate.Timeout` once the polls add up to the maximum wait.
pub async fn scan_gate(
    reg: &dyn Registry,
    repos: &Repositories,
    findings: &dyn FindingsSource,
    settings: &GateSettings<'_>,
    req: &GateRequest,
) -> Result<GateResult, PipelineError> {
    let (image, environment, build) = target(reg, repos, settings, req).await?;
    let rules = settings.policy.rules(environment.as_deref());
    let account = account_of(&image);
    let limits = settings.policy.limits();
    let (_, platforms) = gate::resolve_platforms(reg, &image, account.as_deref(), &limits).await?;
    let verdict: Verdict = gate::evaluate(
        findings,
        &platforms,
        &rules,
        settings.clock,
        req.observation.as_ref(),
    )
    .await?;
    let schedule = Schedule {
        poll_seconds: settings.poll_seconds,
        max_wait_seconds: settings.max_wait_seconds,
    };
    if verdict.decision == Decision::Pending
        && let Next::GiveUp { waited_seconds } = schedule.after(req.polls)
    {
        return Err(GateError::Timeout {
            waited_seconds,
            message: format!("{image}: {}", verdict.message),
        }
        .into());
    }
    let polls = req.polls + 1;
    Ok(GateResult {
        image: image.to_string(),
        decision: verdict.decision,
        message: verdict.message.clone(),
        summary: verdict.compact(),
        blocking_ids: verdict.blocking_ids.clone(),
        environment,
        build,
        polls,
        wait_seconds: settings.poll_seconds,
        observation: verdict.observation.clone(),
    })
}

/// What to gate: the requested image, or the digest an approval event names, once a signed
/// approval by an approver verifies for it (the environment the approval artifact asks for, or,
/// when the event names the digest itself, the earliest environment with a valid approval).
/// With its environment and build id.
async fn target(
    reg: &dyn Registry,
    repos: &Repositories,
    settings: &GateSettings<'_>,
    req: &GateRequest,
) -> Result<(ImageRef, Option<String>, Option<String>), PipelineError> {
    match (&req.image, &req.approval) {
        (Some(i), None) => {
            let image = pinned("image", i)?;
            repos.in_pipeline(&image, "image")?;
            if let Some(e) = &req.environment {
                settings.environments.get(e)?;
            }
            Ok((image, req.environment.clone(), req.build.clone()))
        }
        (None, Some(a)) => {
            let (approvals, trusted) =
                repos.approvals_named(&a.repository, "approval.repository")?;
            let digest: Digest = a
                .digest
                .parse()
                .map_err(|e| PipelineError::Input(format!("approval.digest: {e}")))?;
            let envs = settings.environments;
            let (subject, hint) =
                approval::event_target(reg, &approvals, &trusted, &digest, envs).await?;
            let image = trusted.pinned(subject);
            let verified = match hint {
                Some(env) => {
                    let env = envs.get(&env)?;
                    verify_approval(reg, &approvals, &image, envs, env, settings.approvers).await?
                }
                None => {
                    approval::verified_approvals(reg, &approvals, &image, envs, settings.approvers)
                        .await?
                        .into_iter()
                        .next()
                        .ok_or_else(|| {
                            PipelineError::Input(format!(
                                "{image}: no approval for any environment"
                            ))
                        })?
                }
            };
            tracing::info!(
                image = %image,
                environment = %verified.predicate.environment,
                approver = %verified.approver,
                approval = %verified.manifest,
                "approval verified"
            );
            Ok((
                image,
                Some(verified.predicate.environment),
                verified.predicate.build,
            ))
        }
        _ => Err(PipelineError::Input(
            "scan-gate: give exactly one of image or approval".into(),
        )),
    }
}
