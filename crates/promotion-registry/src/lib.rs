//! The OCI registry adapter of the promotion pipeline: [`http::HttpRegistry`] implements
//! `promotion_core::registry::Registry` over the distribution API, on `oci-client`'s token flow
//! (Basic and Bearer challenges) and a reqwest data plane for what oci-client does not expose
//! (`Retry-After`, `OCI-Subject`, HEAD sizes, 201/202 mounts, single-PUT streaming uploads, the
//! 4 MiB manifest cap). Retries use the domain's `promotion_core::retry::RetryPolicy`.

pub mod http;
#[cfg(test)]
mod testing;

pub use http::{HttpConfig, HttpRegistry};
