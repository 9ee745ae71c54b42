//! promote-and-annotate: re-check the gate (PASSED now, or nothing is written), then copy the
//! quarantined digest to the trusted repository with the mandatory annotations and labels.
//! Input: `promotion_core::pipeline::PromoteRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{
    PromoteRequest, PromoteSettings, parse_request, promote_and_annotate,
};
use promotion_lambda::clients;

const STEP: &str = "promote-and-annotate";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (c, registry, findings) = promotion_lambda::start(STEP, config::Config::parse, |c| async {
        let sdk = clients::sdk().await;
        let registry = clients::registry(&sdk, &c.registry)?;
        let findings = clients::findings(&sdk, c.assume_scanned);
        Ok((c, registry, findings))
    })
    .await;
    let settings = PromoteSettings {
        policy: &c.policy,
        annotations: &c.annotations,
        labels: &c.labels,
        clock: &SystemClock,
        copy: c.copy.clone(),
    };
    promotion_lambda::serve(STEP, |event| async {
        let req: PromoteRequest = parse_request(STEP, event)?;
        promote_and_annotate(&registry, &c.repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
