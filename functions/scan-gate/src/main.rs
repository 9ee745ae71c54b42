//! scan-gate: gate every platform of a digest on its Inspector findings (or resolve an approval
//! first); answers PASSED, FAILED or PENDING with a compact summary. Writes nothing. Input:
//! `promotion_core::pipeline::GateRequest`.

mod config;

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{GateRequest, GateSettings, parse_request, scan_gate};
use promotion_lambda::clients;

const STEP: &str = "scan-gate";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (c, registry, findings) = promotion_lambda::start(STEP, config::Config::parse, |c| async {
        let sdk = clients::sdk().await;
        let registry = clients::registry(&sdk, &c.registry)?;
        let findings = clients::findings(&sdk, c.assume_scanned);
        Ok((c, registry, findings))
    })
    .await;
    let settings = GateSettings {
        policy: &c.policy,
        environments: &c.environments,
        poll_seconds: c.poll_seconds,
        max_wait_seconds: c.max_wait_seconds,
        clock: &SystemClock,
    };
    promotion_lambda::serve(STEP, |event| async {
        let req: GateRequest = parse_request(STEP, event)?;
        scan_gate(&registry, &c.repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
