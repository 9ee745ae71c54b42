//! AWS adapters of the promotion pipeline, each implementing a port of `promotion_core`:
//!
//! - [`ecr::SdkTokenSource`]: ECR `GetAuthorizationToken` (`promotion_core::ecr::EcrTokenSource`);
//! - [`inspector::InspectorSource`]: Amazon Inspector findings and scan coverage
//!   (`promotion_core::gate::FindingsSource`);
//! - [`kms::KmsSigner`]: AWS KMS signatures and public keys (`promotion_core::sign::Signer`);
//! - [`events::EventBusRequests`]: EventBridge `PutEvents`, promotion requests
//!   (`promotion_core::webhook::PromotionRequests`);
//! - [`secrets::SecretsManagerStore`]: AWS Secrets Manager secrets
//!   (`promotion_core::registry::secrets::SecretStore`), source registry credentials.
//!
//! Clients are built at the edge (Lambda `main`, the CLI) from an SDK configuration and handed in;
//! nothing here reads the environment.

pub mod ecr;
pub mod events;
pub mod inspector;
pub mod kms;
pub mod secrets;
#[cfg(test)]
mod testing;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// An SDK failure as its service code (when the service answered) and one bounded line: the
/// service's code and message, or when nothing answered the SDK's context (timeout, connection).
/// Never the raw response, which can carry what was asked for (a secret's value).
pub fn sdk_failure<E, R>(e: &SdkError<E, R>) -> (Option<String>, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, mut detail) = match e.as_service_error() {
        Some(s) => {
            let code = s.code().unwrap_or("unknown").to_owned();
            let detail = match s.message() {
                Some(m) => format!("{code}: {m}"),
                None => code.clone(),
            };
            (Some(code), detail)
        }
        None => (None, DisplayErrorContext(e).to_string()),
    };
    if detail.len() > 400 {
        detail.truncate(detail.floor_char_boundary(400));
        detail.push('…');
    }
    (code, detail)
}
