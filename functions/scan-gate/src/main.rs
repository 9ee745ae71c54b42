//! scan-gate: gate every platform of a digest on its Inspector findings (or resolve an approval
//! first); answers PASSED, FAILED or PENDING with a compact summary. Writes nothing. Input:
//! `promotion_core::pipeline::GateRequest`.

use promotion_core::clock::SystemClock;
use promotion_core::pipeline::{GateRequest, GateSettings, parse_request, scan_gate};

const STEP: &str = "scan-gate";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, registry, findings) = promotion_lambda::start(STEP, |c| async {
        let sdk = c.sdk().await;
        let registry = c.registry(&sdk)?;
        let findings = c.findings(&sdk);
        Ok((c, registry, findings))
    })
    .await;
    let settings = GateSettings {
        policy: &config.policy,
        environments: &config.environments,
        poll_seconds: config.poll_seconds,
        max_wait_seconds: config.max_wait_seconds,
        clock: &SystemClock,
    };
    promotion_lambda::serve(STEP, |event| async {
        let req: GateRequest = parse_request(STEP, event)?;
        scan_gate(&registry, &config.repos, findings.as_ref(), &settings, &req).await
    })
    .await
}
