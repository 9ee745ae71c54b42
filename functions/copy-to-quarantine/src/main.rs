//! copy-to-quarantine: resolve the source once and copy that digest, byte for byte, into the
//! quarantine repository. Input: `promotion_core::pipeline::CopyRequest`.

use promotion_core::pipeline::{CopyRequest, copy_to_quarantine, parse_request};

const STEP: &str = "copy-to-quarantine";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, registry) = promotion_lambda::start(STEP, |c| async {
        let sdk = c.sdk().await;
        let registry = c.registry(&sdk)?;
        Ok((c, registry))
    })
    .await;
    let opts = config.copy_options();
    promotion_lambda::serve(STEP, |event| async {
        let req: CopyRequest = parse_request(STEP, event)?;
        copy_to_quarantine(&registry, &config.repos, &req, &opts).await
    })
    .await
}
