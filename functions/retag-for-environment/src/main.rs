//! retag-for-environment: verify the pipeline's signature, re-run the gate with the target
//! environment's rules when asked (environment promotion), enforce the environment order, then
//! add `<env>-<build>` to the trusted digest. Input: `promotion_core::pipeline::RetagRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{RetagRequest, RetagSettings, parse_request, retag_for_environment};
use promotion_lambda::clients;

const STEP: &str = "retag-for-environment";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (c, registry, findings, key) =
        promotion_lambda::start(STEP, config::Config::parse, |c| async {
            let sdk = clients::sdk().await;
            let registry = clients::registry(&sdk, &c.registry)?;
            let findings = clients::findings(&sdk, c.assume_scanned);
            let key = clients::public_key(&sdk, &c.kms_key_id).await?;
            Ok((c, registry, findings, key))
        })
        .await;
    let settings = RetagSettings {
        environments: &c.environments,
        policy: &c.policy,
        key: &key,
        clock: &SystemClock,
    };
    promotion_lambda::serve(STEP, |event| async {
        let req: RetagRequest = parse_request(STEP, event)?;
        retag_for_environment(&registry, &c.repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
