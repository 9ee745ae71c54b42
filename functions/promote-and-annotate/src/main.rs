//! promote-and-annotate: re-check the gate itself (forged input gets nothing in), then copy the
//! quarantined digest to the trusted repository with the mandatory annotations and labels.
//! Input: `promotion_core::pipeline::PromoteRequest`.

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{
    PromoteRequest, PromoteSettings, parse_request, promote_and_annotate,
};

const STEP: &str = "promote-and-annotate";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, registry, findings) = promotion_lambda::start(STEP, |c| async {
        let sdk = c.sdk().await;
        let registry = c.registry(&sdk)?;
        let findings = c.findings(&sdk);
        Ok((c, registry, findings))
    })
    .await;
    let settings = PromoteSettings {
        policy: &config.policy,
        annotations: &config.annotations,
        labels: &config.labels,
        clock: &SystemClock,
        copy: config.copy_options(),
    };
    promotion_lambda::serve(STEP, |event| async {
        let req: PromoteRequest = parse_request(STEP, event)?;
        promote_and_annotate(&registry, &config.repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
