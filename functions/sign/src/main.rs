//! sign: sign the trusted digest (and each platform) with the KMS key, cosign-compatible, as a
//! Sigstore bundle referrer and/or cosign's legacy `.sig` tag, then attest the promotion (a
//! signed SLSA Verification Summary). Input: `promotion_core::pipeline::SignRequest`.

mod config;

use promotion_core::pipeline::{SignRequest, sign};
use promotion_lambda::clients;

const STEP: &str = "sign";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (c, registry, signer) = promotion_lambda::start(STEP, config::Config::parse, |c| async {
        let sdk = clients::sdk().await;
        let registry = clients::registry(&sdk, &c.deployment.registry)?;
        let signer = clients::signer(&sdk, &c.kms_key_id, c.kms_message_mode).await?;
        Ok((c, registry, signer))
    })
    .await;
    promotion_lambda::serve(STEP, async |req: SignRequest| {
        let clock = promotion_core::clock::SystemClock;
        sign(
            &registry,
            &c.deployment.repos,
            &signer,
            c.sign_mode,
            &clock,
            &req,
        )
        .await
    })
    .await
}
