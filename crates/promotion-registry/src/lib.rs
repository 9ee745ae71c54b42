//! The OCI registry adapter of the promotion pipeline: [`http::HttpRegistry`] implements
//! `promotion_core::registry::Registry` over the distribution API on reqwest: Basic and Bearer
//! challenges (credentials only to the registry's own origin), `Retry-After`, `OCI-Subject`, HEAD
//! sizes, 201/202 mounts, single-PUT streaming uploads, the 4 MiB manifest cap, deadlines and a
//! minimum throughput. [`egress`] decides which hosts it may connect to. Retries use the
//! domain's `promotion_core::retry::RetryPolicy`.

pub mod egress;
pub mod http;
#[cfg(test)]
mod testing;

pub use http::{HttpConfig, HttpRegistry, Throughput};
