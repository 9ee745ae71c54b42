//! What every verb shares on the way out: the failure type and its exit code, `--json` printing,
//! the canonical log line, and the registry client built from the credentials flags.

use crate::{Cli, creds};
use promotion_core::error::Classify;
use promotion_core::registry::auth::Credentials;
use promotion_core::{ErrorType, ImageRef};
use promotion_registry::{HttpConfig, HttpRegistry};
use std::process::ExitCode;
use std::sync::Arc;

/// A failure with its stable name; the exit code follows from the name.
pub struct Failure {
    /// The stable error type (`Registry.NotFound`, …).
    pub kind: ErrorType,
    /// What went wrong; the first line is the error line.
    pub message: String,
    /// The verb already printed its `--json` result (which says what failed): no error object
    /// follows it.
    pub printed: bool,
}

impl<E: Classify + std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            kind: e.error_type(),
            message: e.to_string(),
            printed: false,
        }
    }
}

impl Failure {
    /// A failure of this type.
    pub fn new(kind: ErrorType, message: String) -> Self {
        Failure {
            kind,
            message,
            printed: false,
        }
    }

    /// `0` is success; `2` bad input, `3` a denied gate, `1` anything else.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorType::InputInvalid => 2,
            ErrorType::GateDenied => 3,
            _ => 1,
        }
    }

    /// One error line on stderr ending in the error type; with `--json` also the error object
    /// on stdout, unless the verb already printed its verdict (`verdict_printed`).
    pub fn report(&self, json: bool, verdict_printed: bool) -> ExitCode {
        let line = self.message.lines().next().unwrap_or_default();
        eprintln!("error: {line} [{}]", self.kind);
        if json && !self.printed && !(verdict_printed && self.kind == ErrorType::GateDenied) {
            println!(
                "{}",
                serde_json::json!({"error": {"type": self.kind.as_str(), "message": self.message}})
            );
        }
        ExitCode::from(self.exit_code())
    }
}

/// Invalid input (`Input.Invalid`, exit 2).
pub fn input(message: String) -> Failure {
    Failure::new(ErrorType::InputInvalid, message)
}

/// An image reference from the command line.
pub fn parse_ref(s: &str) -> Result<ImageRef, Failure> {
    s.parse::<ImageRef>().map_err(Failure::from)
}

/// `v` as a JSON value (for `--json` outputs assembled from several results).
pub fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(v).map_err(|e| input(e.to_string()))
}

/// Print `v` as one JSON line on stdout (`--json`).
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string(v).map_err(|e| input(e.to_string()))?
    );
    Ok(())
}

/// One credentials flag as given: the registry it is for, its value, and its name for errors.
pub type GivenCreds<'a> = (&'a ImageRef, &'a Option<String>, &'static str);

/// The registry client: `--insecure-registry`, `--allow-internal-registry`, `--redirect-host`,
/// the credentials given on the command line (by registry host), then Docker's config, ECR
/// tokens and anonymous access.
pub fn registry(cli: &Cli, given: &[GivenCreds<'_>]) -> Result<HttpRegistry, Failure> {
    paced_registry(cli, given, None)
}

/// As [`registry`], at most `puts_per_second` manifest PUTs per second (`promote sync`).
pub fn paced_registry(
    cli: &Cli,
    given: &[GivenCreds<'_>],
    puts_per_second: Option<f64>,
) -> Result<HttpRegistry, Failure> {
    let mut fixed: Vec<(String, Credentials)> = Vec::new();
    for (r, c, flag) in given {
        if let Some(c) = c {
            let creds =
                Credentials::parse_user_pass(c).map_err(|e| input(format!("{flag}: {e}")))?;
            fixed.push((r.api_host().to_owned(), creds));
        }
    }
    let config = HttpConfig {
        insecure_hosts: cli.insecure_registry.clone(),
        internal_hosts: cli.allow_internal_registry.clone(),
        redirect_hosts: cli.redirect_host.clone(),
        manifest_puts_per_second: puts_per_second,
        ..HttpConfig::default()
    };
    let provider = creds::chain(fixed, cli.aws_region.clone(), cli.aws_endpoint_url.clone());
    HttpRegistry::new(config, Arc::new(provider)).map_err(Failure::from)
}

/// The canonical line: one per operation at info, every figure an operator greps for, ending
/// in `outcome="ok"` and the message `done`. Fields as for `tracing::info!`, comma-terminated.
macro_rules! done {
    ($($field:tt)*) => {
        tracing::info!($($field)* outcome = "ok", "done")
    };
}
pub(crate) use done;

/// The canonical line of a copy-like operation (`copy`, `annotate`): the transfer figures of
/// report `$r`, the operation's own fields, then its duration.
macro_rules! transfer_done {
    ($op:literal, $r:expr, $($extra:tt)*) => {
        $crate::output::done!(
            operation = $op,
            source = %$r.source,
            destination = %$r.destination,
            source_digest = %$r.source_digest,
            digest = %$r.digest,
            bytes_streamed = $r.counts.bytes_streamed,
            blobs_streamed = $r.counts.blobs_streamed,
            blobs_mounted = $r.counts.blobs_mounted,
            blobs_skipped = $r.counts.blobs_skipped,
            manifests_pushed = $r.counts.manifests_pushed,
            $($extra)*
            duration_ms = $r.duration_ms,
        )
    };
}
pub(crate) use transfer_done;

/// The structured line of a failed operation, at debug (on failure the error line is the
/// canonical line; this one is there with `-v`): `{ fields before }` `outcome="failed"`, the
/// error type of `$e`, then `{ fields after }`.
macro_rules! failed {
    ($e:expr, { $($before:tt)* } $(, { $($after:tt)* })?) => {
        tracing::debug!(
            $($before)*
            outcome = "failed",
            error_type = %promotion_core::error::Classify::error_type(&$e),
            $($($after)*)?
            "done"
        )
    };
}
pub(crate) use failed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_error_type() {
        let code = |kind| Failure::new(kind, String::new()).exit_code();
        assert_eq!(code(ErrorType::InputInvalid), 2);
        assert_eq!(code(ErrorType::GateDenied), 3);
        assert_eq!(code(ErrorType::GateTimeout), 1);
    }
}
