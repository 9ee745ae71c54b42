//! sync-plan: the sync state machine's listing step. Lists an upstream repository's tags,
//! filters them, resolves each with a HEAD request and returns a manual promotion request for
//! each tag the trusted repository lacks. Writes nothing. Input:
//! `promotion_core::pipeline::sync::SyncPlanRequest`.

mod config;

use promotion_core::pipeline::sync::{SyncPlanRequest, plan_sync};
use promotion_lambda::clients;

const STEP: &str = "sync-plan";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, registry) = promotion_lambda::start(STEP, config::Config::parse, |c| async {
        let registry = clients::source_registry(
            &clients::sdk().await,
            &c.deployment.registry,
            &c.ecr_roles,
            c.secret_prefix.as_deref(),
            "ecr-promotion-sync",
        )
        .await?;
        Ok((c, registry))
    })
    .await;
    let settings = config.settings();
    promotion_lambda::serve(STEP, async |req: SyncPlanRequest| {
        plan_sync(&registry, &config.deployment.repos, &req, &settings).await
    })
    .await
}
