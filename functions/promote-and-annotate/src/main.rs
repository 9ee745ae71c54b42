//! promote-and-annotate: re-check the gate (PASSED now, or nothing is written), then copy the
//! quarantined digest to the trusted repository with the mandatory annotations and labels.
//! Input: `promotion_core::pipeline::PromoteRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{PromoteRequest, promote_and_annotate};
use promotion_lambda::clients;

const STEP: &str = "promote-and-annotate";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let start = promotion_lambda::start(STEP, config::Config::parse, clients::with_findings);
    let (c, _, registry, findings) = start.await;
    let (settings, repos) = (c.settings(&SystemClock), &c.gating.deployment.repos);
    promotion_lambda::serve(STEP, async |req: PromoteRequest| {
        promote_and_annotate(&registry, repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
