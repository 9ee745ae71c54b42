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
