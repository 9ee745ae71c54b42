//! copy-to-quarantine: resolve the source once, copy that digest byte for byte into the
//! quarantine repository. Input: `promotion_core::pipeline::CopyRequest`.

mod config;

use promotion_core::pipeline::{CopyRequest, copy_to_quarantine};
use promotion_lambda::clients;

const STEP: &str = "copy-to-quarantine";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, registry) = promotion_lambda::start(STEP, config::Config::parse, |c| async {
        let registry = clients::source_registry(
            &clients::sdk().await,
            &c.deployment.registry,
            &c.ecr_roles,
            c.secret_prefix.as_deref(),
            "ecr-promotion-copy",
        )
        .await?;
        Ok((c, registry))
    })
    .await;
    let settings = config.settings();
    promotion_lambda::serve(STEP, async |req: CopyRequest| {
        copy_to_quarantine(&registry, &config.deployment.repos, &req, &settings).await
    })
    .await
}
