//! scan-gate: gate every platform of a quarantined (or, for an environment promotion, trusted)
//! digest once; PENDING tells the state machine how long to wait.

use super::{PipelineError, Repositories, account_of, pinned};
use crate::clock::Clock;
use crate::digest::Digest;
use crate::environment::{Environments, resolve_approvals};
use crate::gate::{self, Decision, FindingsSource, GateError, Observation, Policy, Verdict};
use crate::poll::{Next, Schedule};
use crate::reference::ImageRef;
use crate::registry::Registry;
use serde::{Deserialize, Serialize};

/// An `ECR Referrer Action` event's repository and digest (environment promotion).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRef {
    /// The repository name (in the trusted registry).
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

/// What to gate: the requested image, or the subject of the earliest-environment approval
/// among the referrers of `approval` (in the trusted repository). With its environment and
/// build id.
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
            let repo = repos.trusted_named(&a.repository, "approval.repository")?;
            let digest: Digest = a
                .digest
                .parse()
                .map_err(|e| PipelineError::Input(format!("approval.digest: {e}")))?;
            let found = resolve_approvals(reg, &repo, &digest, settings.environments).await?;
            // Earliest environment first; a done one is a no-op for retag.
            let rank = |n: &str| settings.environments.names().iter().position(|x| *x == n);
            let Some(first) = found.into_iter().min_by_key(|a| rank(&a.environment)) else {
                return Err(PipelineError::Input(format!(
                    "approval: {} has no approval ({}) among its referrers",
                    repo.pinned(digest),
                    settings.environments.approval_artifact_type
                )));
            };
            Ok((
                repo.pinned(first.subject),
                Some(first.environment),
                first.build,
            ))
        }
        _ => Err(PipelineError::Input(
            "scan-gate: give exactly one of image or approval".into(),
        )),
    }
}
