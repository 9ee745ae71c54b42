//! scan-gate: gate every platform of a digest on its Inspector findings (or verify a signed
//! approval first); answers PASSED, FAILED or PENDING with a compact summary. Writes nothing. Input:
//! `promotion_core::pipeline::GateRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{GateRequest, scan_gate};
use promotion_lambda::clients;

const STEP: &str = "scan-gate";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (c, registry, findings, approvers) =
        promotion_lambda::start(STEP, config::Config::parse, async |c| {
            let (c, sdk, registry, findings) = clients::with_findings(c).await?;
            let approvers = clients::approver_keys(&sdk, &c.environments).await?;
            Ok((c, registry, findings, approvers))
        })
        .await;
    let settings = c.settings(&approvers, &SystemClock);
    let repos = &c.gating.deployment.repos;
    promotion_lambda::serve(STEP, async |req: GateRequest| {
        scan_gate(&registry, repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
