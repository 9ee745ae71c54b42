//! retag-for-environment: verify the pipeline's signature, re-run the gate with the target
//! environment's rules when asked (environment promotion), enforce the environment order, then
//! add `<env>-<build>` to the trusted digest. Input: `promotion_core::pipeline::RetagRequest`.

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{RetagRequest, RetagSettings, parse_request, retag_for_environment};

const STEP: &str = "retag-for-environment";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, registry, findings, key) = promotion_lambda::start(STEP, |c| async {
        let sdk = c.sdk().await;
        let registry = c.registry(&sdk)?;
        let findings = c.findings(&sdk);
        let key = c.public_key(&sdk).await?;
        Ok((c, registry, findings, key))
    })
    .await;
    let settings = RetagSettings {
        environments: &config.environments,
        policy: &config.policy,
        key: &key,
        clock: &SystemClock,
    };
    promotion_lambda::serve(STEP, |event| async {
        let req: RetagRequest = parse_request(STEP, event)?;
        retag_for_environment(&registry, &config.repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
