//! Registry access: the [`Registry`] port the copy engine (and every later step) talks to, and
//! its adapters.
//!
//! - [`http::HttpRegistry`]: the OCI distribution API over HTTP(S), authenticated through
//!   Basic and Bearer challenges, with retries, egress checks, streaming and redaction.
//! - [`auth`]: where credentials come from (static, Docker `config.json` content, ECR).
//! - [`memory::MemoryRegistry`] (feature `test-util`): an in-memory registry for handler tests.
//!
//! Methods take the repository as an [`ImageRef`] (its tag and digest are ignored) and name the
//! object separately, so one client serves every registry and repository of a copy.

pub mod auth;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod secrets;

pub use crate::retry::RetryPolicy;

use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::manifest::{Descriptor, ManifestError, RawManifest};
use crate::reference::ImageRef;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::time::Duration;

/// A blob's bytes as a stream. Never collected whole: layers can be gigabytes.
pub struct BlobStream {
    /// Announced length (`Content-Length`), when the registry sent one.
    pub size: Option<u64>,
    /// The bytes, in whatever chunks the transport delivers.
    pub stream: BoxStream<'static, Result<Bytes, RegistryError>>,
}

/// What a manifest PUT told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutManifest {
    /// The digest the registry stored (checked against the bytes we sent).
    pub digest: Digest,
    /// `OCI-Subject` was returned: the registry indexed the manifest's `subject` itself, so the
    /// client need not maintain the referrers fallback tag.
    pub subject_processed: bool,
}

/// The operations of the distribution API the pipeline uses.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Pull a manifest by tag or digest, exactly as served. Fails with `NotFound` when absent.
    async fn get_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
    ) -> Result<RawManifest, RegistryError>;

    /// The digest a tag or digest currently names, or `None` when it does not exist.
    async fn head_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError>;

    /// Push manifest bytes under a tag or their digest.
    async fn put_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<PutManifest, RegistryError>;

    /// The size of a blob if the repository has it.
    async fn head_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError>;

    /// Stream a blob. The bytes are *not* verified here: the caller hashes them on the way.
    /// One attempt: a transfer that fails is retried whole by the caller (the copy engine),
    /// so that retries do not nest.
    async fn get_blob(&self, repo: &ImageRef, digest: &Digest)
    -> Result<BlobStream, RegistryError>;

    /// Ask the registry to mount `digest` from `from` (same registry). `Ok(false)` when the
    /// registry declined (202: it opened an upload instead), so the caller must upload.
    async fn mount_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
        from: &ImageRef,
    ) -> Result<bool, RegistryError>;

    /// Upload a blob as one stream (POST, then a single PUT carrying the whole body): ECR loses
    /// data on multi-part chunked uploads. `size` must be the exact length of `body`. One
    /// attempt, like [`Registry::get_blob`].
    async fn put_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
        size: u64,
        body: BlobStream,
    ) -> Result<(), RegistryError>;

    /// The referrers of `digest` from the OCI 1.1 referrers API, or `None` when the registry
    /// has no such API (404), in which case callers use the `sha256-<hex>` fallback tag.
    async fn referrers(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError>;

    /// Every tag of the repository (`tags/list`, all pages). An absent repository has none.
    async fn list_tags(&self, repo: &ImageRef) -> Result<Vec<String>, RegistryError>;
}

/// Registry failures, each naming what was being done. Messages never carry credentials,
/// tokens or upload-session URLs.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 401/403 after authenticating, or credentials that were refused.
    #[error("unauthorized: {what}: {detail}")]
    Unauthorized {
        /// The operation and object.
        what: String,
        /// Why.
        detail: String,
    },
    /// Credentials could not be obtained (ECR token call failed, bad Docker config entry).
    #[error("cannot get credentials for {registry}: {detail}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// Why.
        detail: String,
    },
    /// The object does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// The operation and object.
        what: String,
    },
    /// Worth retrying: 408, 429, 5xx, refused or dropped connections, timeouts.
    #[error("{what}: {detail}")]
    Transient {
        /// The operation and object.
        what: String,
        /// Why.
        detail: String,
        /// The registry's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// An answer the distribution spec does not allow, or another 4xx.
    #[error("{what}: {detail}")]
    Protocol {
        /// The operation and object.
        what: String,
        /// Why.
        detail: String,
    },
    /// Bytes that do not hash to their digest, or are not their announced size.
    #[error("{what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The object.
        what: String,
        /// What the descriptor says.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// A manifest we cannot handle.
    #[error("{what}: {source}")]
    Manifest {
        /// The object.
        what: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// Invalid client configuration (for example an unusable upload location).
    #[error("{0}")]
    Config(String),
    /// A host the client must not reach: an internal address (loopback, private, link-local,
    /// …) not allowed by the configuration, named or resolved to. Refused before connecting.
    #[error("{what}: {detail}")]
    Refused {
        /// The operation and object.
        what: String,
        /// Which host and address, and what to configure if it is meant.
        detail: String,
    },
}

impl RegistryError {
    /// The registry's `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.error_type().is_retryable()
    }
}

impl Classify for RegistryError {
    fn error_type(&self) -> ErrorType {
        match self {
            RegistryError::Unauthorized { .. } | RegistryError::Credentials { .. } => {
                ErrorType::RegistryUnauthorized
            }
            RegistryError::NotFound { .. } => ErrorType::RegistryNotFound,
            RegistryError::Transient { .. } => ErrorType::RegistryTransient,
            RegistryError::Protocol { .. } => ErrorType::RegistryProtocol,
            RegistryError::DigestMismatch { .. } => ErrorType::ImageDigestMismatch,
            RegistryError::Manifest { .. } => ErrorType::ImageInvalid,
            RegistryError::Config(_) | RegistryError::Refused { .. } => ErrorType::InputInvalid,
        }
    }
}
