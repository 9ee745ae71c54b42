//! Core library of the ECR promotion pipeline.
//!
//! Everything the five Lambdas and the `promote` command do lives here, behind small traits at
//! the edges (registry, credentials, clock, findings) so that tests swap real services for stand-ins
//! without `cfg(test)` forks. The core never reads environment variables or files: the edges
//! (Lambda `main`, the CLI) parse configuration once and hand it in.

pub mod annotate;
pub mod clock;
pub mod copy;
pub mod digest;
pub mod ecr;
pub mod environment;
pub mod error;
pub mod gate;
pub mod manifest;
pub mod mutate;
pub mod pipeline;
pub mod platform;
pub mod poll;
pub mod reference;
pub mod referrers;
pub mod registry;
pub mod retry;
pub mod selection;
pub mod sign;
pub mod webhook;

pub use copy::{CopyError, CopyObserver, CopyOptions, CopyReport, TransferCounts, copy_image};
pub use digest::Digest;
pub use error::ErrorType;
pub use reference::{ImageRef, ReferenceError};
