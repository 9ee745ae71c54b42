//! retag-for-environment: verify the approval (where the environment requires one) and the
//! pipeline's signature, re-run the gate with the target environment's rules (unless the
//! pipeline's fresh attestation covers it), enforce the environment order, record the approval
//! in trusted, then add `<env>-<build>` to the trusted digest. Input: `promotion_core::pipeline::RetagRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{RetagRequest, retag_for_environment};
use promotion_lambda::clients;

const STEP: &str = "retag-for-environment";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (c, registry, findings, key, approvers) =
        promotion_lambda::start(STEP, config::Config::parse, async |c| {
            let (c, sdk, registry, findings) = clients::with_findings(c).await?;
            let key = clients::public_key(&sdk, &c.kms_key_id).await?;
            let approvers = clients::approver_keys(&sdk, &c.environments).await?;
            Ok((c, registry, findings, key, approvers))
        })
        .await;
    let settings = c.settings(&key, &approvers, &SystemClock);
    let repos = &c.gating.deployment.repos;
    promotion_lambda::serve(STEP, async |req: RetagRequest| {
        retag_for_environment(&registry, repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
