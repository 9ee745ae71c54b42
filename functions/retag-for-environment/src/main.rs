//! retag-for-environment: verify the pipeline's signature, re-run the gate with the target
//! environment's rules when asked (environment promotion), enforce the environment order, then
//! add `<env>-<build>` to the trusted digest. Input: `promotion_core::pipeline::RetagRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{RetagRequest, retag_for_environment};
use promotion_lambda::clients;

const STEP: &str = "retag-for-environment";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (c, registry, findings, key) =
        promotion_lambda::start(STEP, config::Config::parse, async |c| {
            let (c, sdk, registry, findings) = clients::with_findings(c).await?;
            let key = clients::public_key(&sdk, &c.kms_key_id).await?;
            Ok((c, registry, findings, key))
        })
        .await;
    let (settings, repos) = (c.settings(&key, &SystemClock), &c.gating.deployment.repos);
    promotion_lambda::serve(STEP, async |req: RetagRequest| {
        retag_for_environment(&registry, repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
