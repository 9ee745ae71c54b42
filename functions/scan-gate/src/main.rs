//! scan-gate: gate every platform of a digest on its Inspector findings (or resolve an approval
//! first); answers PASSED, FAILED or PENDING with a compact summary. Writes nothing. Input:
//! `promotion_core::pipeline::GateRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{GateRequest, scan_gate};
use promotion_lambda::clients;

const STEP: &str = "scan-gate";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let start = promotion_lambda::start(STEP, config::Config::parse, clients::with_findings);
    let (c, _, registry, findings) = start.await;
    let (settings, repos) = (c.settings(&SystemClock), &c.gating.deployment.repos);
    promotion_lambda::serve(STEP, async |req: GateRequest| {
        scan_gate(&registry, repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
