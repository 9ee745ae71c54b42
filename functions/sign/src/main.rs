//! sign: sign the trusted digest (and each platform) with the KMS key, cosign-compatible, stored
//! as an OCI 1.1 referrer and/or cosign's `.sig` tag. Input:
//! `promotion_core::pipeline::SignRequest`.

use promotion_core::pipeline::{SignRequest, parse_request, sign};

const STEP: &str = "sign";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, registry, signer) = promotion_lambda::start(STEP, |c| async {
        let sdk = c.sdk().await;
        let registry = c.registry(&sdk)?;
        let signer = c.signer(&sdk).await?;
        Ok((c, registry, signer))
    })
    .await;
    promotion_lambda::serve(STEP, |event| async {
        let req: SignRequest = parse_request(STEP, event)?;
        sign(&registry, &config.repos, &signer, config.sign_mode, &req).await
    })
    .await
}
