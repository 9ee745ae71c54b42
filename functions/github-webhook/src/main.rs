//! github-webhook: GitHub `registry_package` / `package` deliveries, received on a function URL,
//! become `Promotion Requested` events on the pipeline's own bus (ghcr2ecr's trigger). The
//! delivery's signature is checked first; see [`webhook`].

mod config;
mod webhook;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use promotion_aws::events::EventBusRequests;
use promotion_aws::secrets::SecretsManagerStore;
use promotion_lambda::clients;
use std::sync::Arc;
use std::time::Duration;

const STEP: &str = "github-webhook";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let hook = promotion_lambda::start(STEP, config::Config::parse, |c| async move {
        let sdk = clients::sdk().await;
        Ok(webhook::Webhook::new(
            Arc::new(SecretsManagerStore(aws_sdk_secretsmanager::Client::new(
                &sdk,
            ))),
            c.secret_id,
            Box::new(EventBusRequests::new(
                aws_sdk_eventbridge::Client::new(&sdk),
                &c.event_bus,
            )),
            c.registry,
            // Re-read the secret after a bad signature at most this often: a caller with bad
            // signatures must not turn into a GetSecretValue per request.
            Duration::from_secs(300),
        ))
    })
    .await;
    let hook = &hook;
    lambda_runtime::run(service_fn(
        async |event: LambdaEvent<LambdaFunctionUrlRequest>| {
            Ok::<_, std::convert::Infallible>(hook.handle(&event.payload).await)
        },
    ))
    .await
}
