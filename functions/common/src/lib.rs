//! What the five pipeline Lambdas share: reading configuration ([`config`]: each function
//! composes its own typed config from these parsers, reading only its variables), building
//! clients once per container ([`clients`]), the stable `errorType` names, and one canonical JSON
//! log line per invocation.
//!
//! Each Lambda's `main` is a few lines: [`start`] parses its config and builds its clients, and
//! [`serve`] takes a closure that parses the request and calls `promotion_core::pipeline`.
//!
//! Errors: lambda_runtime names an error by its Rust type unless told otherwise; the state
//! machine matches on names, so every failure leaves here as a [`Diagnostic`] whose `errorType`
//! is one of `promotion_core::ErrorType::ALL`. The event is taken as raw JSON and parsed here, so
//! even a malformed event is `Input.Invalid` with a message naming the field (lambda_runtime's own
//! deserialisation would report a type name).

pub mod clients;
pub mod config;

pub use config::{ConfigError, Vars};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use promotion_core::ErrorType;
use promotion_core::error::Classify;
use serde::Serialize;
use std::future::Future;
use std::time::Instant;

/// JSON logs on stdout (what CloudWatch ingests), level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .init();
}

/// A failure as the state machine sees it: a stable `errorType` and a message.
pub fn diagnostic<E: Classify + std::fmt::Display>(e: &E) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().as_str().to_owned(),
        error_message: e.to_string(),
    }
}

/// Start-up: parse the function's configuration from the environment with `parse`, build its
/// clients with `build`, or log why not and exit non-zero (Lambda reports an init error; the
/// state machine's Catch records it).
pub async fn start<C, T, P, F, Fut>(step: &'static str, parse: P, build: F) -> T
where
    P: FnOnce(&Vars) -> Result<C, ConfigError>,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<T, ConfigError>>,
{
    init_tracing();
    let started = Instant::now();
    let env = |name: &str| std::env::var(name).ok();
    let built = match parse(&Vars(&env)) {
        Ok(c) => build(c).await,
        Err(e) => Err(e),
    };
    match built {
        Ok(t) => {
            tracing::info!(
                step,
                init_ms = started.elapsed().as_millis() as u64,
                "ready"
            );
            t
        }
        Err(e) => {
            tracing::error!(step, error = %e, "configuration");
            std::process::exit(1);
        }
    }
}

/// Serve invocations of `step` with `handler` until the runtime stops. Each invocation ends with
/// one canonical log line: step, request id, X-Ray trace id, outcome, error type, duration.
/// The event is parsed into the step's request type first (`Input.Invalid` naming the step
/// and the field when it does not fit).
pub async fn serve<Req, Res, E, F>(
    step: &'static str,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    Req: serde::de::DeserializeOwned,
    Res: Serialize,
    E: Classify + std::fmt::Display,
    F: AsyncFn(Req) -> Result<Res, E>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let started = Instant::now();
            let (payload, ctx) = event.into_parts();
            let result = match promotion_core::pipeline::parse_request::<Req>(step, payload) {
                Ok(req) => handler(req).await.map_err(|e| diagnostic(&e)),
                Err(e) => Err(diagnostic(&e)),
            };
            let duration_ms = started.elapsed().as_millis() as u64;
            let trace = ctx.xray_trace_id.as_deref().unwrap_or("");
            match result {
                Ok(out) => {
                    tracing::info!(step, request_id = %ctx.request_id, xray_trace_id = trace,
                    outcome = "ok", duration_ms, "done");
                    serde_json::to_value(&out).map_err(|e| Diagnostic {
                        error_type: ErrorType::ImageInvalid.as_str().to_owned(),
                        error_message: format!("cannot serialise the result: {e}"),
                    })
                }
                Err(d) => {
                    tracing::warn!(step, request_id = %ctx.request_id, xray_trace_id = trace,
                    outcome = "failed", error_type = %d.error_type, error = %d.error_message,
                    duration_ms, "done");
                    Err(d)
                }
            }
        },
    ))
    .await
}
