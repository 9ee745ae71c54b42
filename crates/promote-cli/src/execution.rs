//! `promote start` and `promote status`: the deployed pipeline, through the Step Functions API.
//!
//! `start` builds one of the state machine's manual requests (docs/DESIGN.md, "Triggers"),
//! validated here first so that a typo costs no execution: `{"source", "annotations",
//! "build"?, "application"?, "preserveDigest"?}`, or with `--environment` an environment
//! promotion `{"image": TRUSTED@DIGEST, "environment", "build"?}`. It starts an execution and
//! prints its ARN; with `--wait` it follows it, one line per finished state as it finishes, and
//! ends as the pipeline ended. `status` prints the same for any execution, finished or not.
//!
//! Exit codes are the pipeline's: 0 promoted (or, for `status`, still running); 3 the gate
//! denied; 2 the pipeline refused the request (`Input.Invalid`); 1 anything else, with the
//! execution's own error type where it is one of ours and `Execution.Failed` otherwise.

use crate::Cli;
use crate::args::entries;
use crate::inputs::aws_config;
use crate::output::{Failure, done, input, parse_ref, print_json};
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use clap::Args;
use promotion_core::ErrorType;
use promotion_core::reference::is_valid_tag;
use serde::Serialize;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::time::{Duration, Instant};

/// Arguments of `promote start`.
#[derive(Args)]
pub struct StartArgs {
    /// The image to promote (a source reference; a tag is resolved once, by the pipeline), or
    /// with --environment a trusted digest (REPO@sha256:…).
    image: String,
    /// The promotion state machine (the stack's `StateMachineArn` output).
    #[arg(long, env = "PROMOTE_STATE_MACHINE", value_name = "ARN")]
    state_machine: String,
    /// Promote the trusted digest IMAGE to this environment (its gate rules, order and
    /// approvals apply) instead of promoting a source.
    #[arg(long, short = 'e', value_name = "ENV")]
    environment: Option<String>,
    /// Annotation KEY=VALUE for the index and every manifest; repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<OsString>,
    /// Build id for the environment tag (default: the source tag, else the digest).
    #[arg(long, value_name = "ID")]
    build: Option<String>,
    /// The application whose repositories receive the image (default: the one the source
    /// repository names).
    #[arg(long, value_name = "NAME")]
    application: Option<String>,
    /// Keep the source digest: no annotations are written into the image (they go into the
    /// signed promotion attestation only).
    #[arg(long)]
    preserve_digest: bool,
    /// The execution's name (default: `promote-<unix time>-<8 random hex digits>`). While an
    /// execution runs, Step Functions answers a start with its name and input with it (a retried
    /// `start` starts nothing twice); a name already used otherwise is refused.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Follow the execution until it ends: print each state as it finishes, then exit as the
    /// pipeline ended (3 when the gate denied).
    #[arg(long)]
    wait: bool,
    /// How long --wait follows the execution before giving up (it keeps running).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    wait_timeout: u64,
}

/// Arguments of `promote status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The execution (the ARN `promote start` printed).
    execution: String,
}

/// The request `args` stands for, validated as far as the CLI can know it (the reference
/// grammar, a digest for an environment promotion, annotation keys, the build id as a tag);
/// the pipeline validates the rest (the application, the environment's name) and refuses with
/// `Input.Invalid`.
pub fn request(args: &StartArgs) -> Result<Value, Failure> {
    let image = parse_ref(&args.image)?;
    if let Some(build) = &args.build
        && !is_valid_tag(build)
    {
        return Err(input(format!(
            "--build: {build:?} cannot be part of a tag (letters, digits, '_', '.', '-', at \
             most 128, not starting with '.' or '-')"
        )));
    }
    let Some(environment) = &args.environment else {
        let annotations = entries("annotation", "--annotation", &args.annotations)?;
        let mut req = json!({
            "source": image.to_string(),
            "annotations": annotations.as_map(),
        });
        if let Some(b) = &args.build {
            req["build"] = json!(b);
        }
        if let Some(a) = &args.application {
            req["application"] = json!(a);
        }
        if args.preserve_digest {
            req["preserveDigest"] = json!(true);
        }
        return Ok(req);
    };
    if image.digest().is_none() {
        return Err(input(format!(
            "--environment promotes a trusted digest: name it as REPO@sha256:… (got {image})"
        )));
    }
    let source_only = [
        ("--annotation", !args.annotations.is_empty()),
        ("--application", args.application.is_some()),
        ("--preserve-digest", args.preserve_digest),
    ];
    if let Some((flag, _)) = source_only.iter().find(|(_, given)| *given) {
        return Err(input(format!(
            "{flag} applies to a promotion from a source, not to --environment (the trusted \
             digest is already annotated and signed)"
        )));
    }
    if environment.is_empty() {
        return Err(input("--environment: an environment name is needed".into()));
    }
    let mut req = json!({"image": image.to_string(), "environment": environment});
    if let Some(b) = &args.build {
        req["build"] = json!(b);
    }
    Ok(req)
}

/// `promote start`.
pub async fn start(cli: &Cli, args: &StartArgs) -> Result<(), Failure> {
    let request = request(args)?;
    // Named here, not by the service: the SDK retries a StartExecution whose answer it did not
    // get, and with the same name and input a retry finds the execution the first attempt
    // started instead of starting a second one.
    let name = args.name.clone().unwrap_or_else(execution_name);
    let client = client(cli).await;
    let started = client
        .start_execution()
        .state_machine_arn(&args.state_machine)
        .input(request.to_string())
        .name(&name)
        .send()
        .await
        .map_err(|e| {
            let exists = e
                .as_service_error()
                .is_some_and(|s| s.is_execution_already_exists());
            let mut f = api_failure(
                &format!("cannot start an execution of {}", args.state_machine),
                e,
            );
            if exists {
                let arn = args
                    .state_machine
                    .replacen(":stateMachine:", ":execution:", 1);
                f.message = format!(
                    "{} (the execution {name} ran already, or runs with another input:                      `promote status {arn}:{name}`)",
                    f.message
                );
            }
            f
        })?;
    let arn = started.execution_arn().to_owned();
    done!(
        operation = "start",
        state_machine = %args.state_machine,
        execution = %arn,
    );
    if !args.wait {
        if cli.json {
            print_json(&json!({"execution": arn, "request": request}))?;
        } else {
            println!("started {arn}");
        }
        return Ok(());
    }
    if !cli.json {
        println!("started {arn}, following it (Ctrl-C stops following, not the execution)");
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait_timeout);
    follow(cli, &client, &arn, Some(deadline)).await
}

/// `promote-<unix time>-<8 random hex digits>`: unique, sortable by time, within Step
/// Functions' 80 characters of `[A-Za-z0-9_-]`.
fn execution_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("promote-{secs}-{:08x}", rand::random::<u32>())
}

/// `promote status`.
pub async fn status(cli: &Cli, args: &StatusArgs) -> Result<(), Failure> {
    let client = client(cli).await;
    follow(cli, &client, &args.execution, None).await
}

async fn client(cli: &Cli) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(
        &aws_config(cli.aws_region.clone(), cli.aws_endpoint_url.clone()).await,
    )
}

/// Print the execution `arn`'s timeline; until `deadline` (if any) while it runs, each state as
/// it finishes. Ends as the execution did.
async fn follow(
    cli: &Cli,
    client: &aws_sdk_sfn::Client,
    arn: &str,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    let mut printed = 0;
    let mut pause = Duration::from_millis(500);
    loop {
        let described = client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| api_failure(&format!("cannot describe execution {arn}"), e))?;
        let events = history(client, arn).await?;
        let steps = timeline(&events);
        let running = described.status() == &ExecutionStatus::Running;
        if !cli.json {
            // Finished states in order; while the execution runs, a state still running holds
            // back those after it; once it ended, everything (a Fail state never exits, an
            // aborted one never finishes).
            while let Some(s) = steps.get(printed) {
                if running && s.ms.is_none() && s.kind != "Fail" {
                    break;
                }
                println!("{}", s.line());
                printed += 1;
            }
        }
        let waiting = deadline.is_some_and(|d| Instant::now() < d);
        if running && waiting {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            continue;
        }
        let report = Report::new(arn, &described, steps);
        if cli.json {
            print_json(&report)?;
        } else {
            println!("{}", report.summary());
        }
        return match report.failure(deadline.is_some()) {
            None => Ok(()),
            Some(mut f) => {
                f.printed = cli.json;
                Err(f)
            }
        };
    }
}

/// Every event of the execution's history, oldest first.
async fn history(client: &aws_sdk_sfn::Client, arn: &str) -> Result<Vec<Event>, Failure> {
    let mut pages = client
        .get_execution_history()
        .execution_arn(arn)
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| api_failure(&format!("cannot read the history of {arn}"), e))?;
        events.extend(page.events().iter().map(Event::from));
    }
    Ok(events)
}

/// An SDK failure as `Execution.Failed`, with the service's code and message (bounded).
fn api_failure<E, R>(what: &str, e: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (_, detail) = promotion_aws::sdk_failure(&e);
    Failure::new(ErrorType::ExecutionFailed, format!("{what}: {detail}"))
}

/// What the timeline needs of a history event.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// The event type (`TaskStateEntered`, `LambdaFunctionFailed`, …).
    pub kind: String,
    /// The state entered or exited.
    pub state: Option<String>,
    /// A state's output, as exited.
    pub output: Option<String>,
}

impl From<&HistoryEvent> for Event {
    fn from(e: &HistoryEvent) -> Self {
        let exited = e.state_exited_event_details();
        Event {
            at_ms: e.timestamp().to_millis().unwrap_or_default(),
            kind: e.r#type().as_str().to_owned(),
            state: e
                .state_entered_event_details()
                .map(|d| d.name().to_owned())
                .or_else(|| exited.map(|d| d.name().to_owned())),
            output: exited.and_then(|d| d.output()).map(str::to_owned),
        }
    }
}

/// One state as it ran.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The state's name.
    pub name: String,
    /// Its type (`Task`, `Pass`, `Choice`, `Wait`, `Fail`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// How long it ran; `None` while it runs (and for a `Fail` state, which never exits).
    pub ms: Option<i64>,
    /// Failed attempts inside it (a Task's retries; the last one, if it failed for good).
    pub failed_attempts: u32,
    /// What it did, in one line (the pipeline's steps, by name).
    pub detail: String,
    /// Its output, for Tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip)]
    entered_ms: i64,
}

impl Step {
    fn line(&self) -> String {
        let ms = self.ms.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
        let mut line = format!("  {:<24} {:>7} ms  {}", self.name, ms, self.detail);
        if self.failed_attempts > 0 {
            line.push_str(&format!(" ({} failed attempts)", self.failed_attempts));
        }
        line.trim_end().to_owned()
    }
}

/// The states of an execution in the order they were entered, each paired with its exit.
pub fn timeline(events: &[Event]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for e in events {
        if let Some(kind) = e.kind.strip_suffix("StateEntered") {
            open.push(steps.len());
            steps.push(Step {
                name: e.state.clone().unwrap_or_default(),
                kind: kind.to_owned(),
                ms: None,
                failed_attempts: 0,
                detail: String::new(),
                output: None,
                entered_ms: e.at_ms,
            });
        } else if e.kind.ends_with("StateExited") {
            let Some(pos) = open
                .iter()
                .rposition(|&i| Some(&steps[i].name) == e.state.as_ref())
            else {
                continue;
            };
            let step = &mut steps[open.remove(pos)];
            step.ms = Some(e.at_ms - step.entered_ms);
            let output: Option<Value> = e
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok());
            step.detail = output
                .as_ref()
                .map(|o| detail(&step.name, o))
                .unwrap_or_default();
            if step.kind == "Task" {
                step.output = output;
            }
        } else if (e.kind.ends_with("Failed") || e.kind.ends_with("TimedOut"))
            && !e.kind.starts_with("Execution")
            && let Some(&i) = open.last()
        {
            steps[i].failed_attempts += 1;
        }
    }
    steps
}

/// What a step of this pipeline did, from the state's output (the state document with the
/// step's result at its `ResultPath`); empty for the states that only route.
fn detail(state: &str, o: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let gate = |g: &Value| {
        let mut d = s(&g["summary"]);
        if let Some(n) = g["polls"].as_u64().filter(|n| *n > 0) {
            d.push_str(&format!(" (poll {n})"));
        }
        d
    };
    let retag = |r: &Value| {
        let tags: Vec<String> = r["tags"].as_array().into_iter().flatten().map(s).collect();
        format!(
            "{} tagged {} (changed: {})",
            s(&r["image"]),
            tags.join(", "),
            r["changed"]
        )
    };
    match state {
        "Copy" => format!(
            "{} -> {} ({} manifests pushed, {} bytes streamed)",
            s(&o["copy"]["source"]),
            s(&o["copy"]["quarantine"]),
            o["copy"]["manifestsPushed"],
            o["copy"]["bytesStreamed"]
        ),
        "Gate" | "ApprovalGate" | "EnvironmentGate" => gate(&o["gate"]),
        "PromoteAndAnnotate" => format!(
            "{} ({} manifests pushed, {} layer bytes streamed)",
            s(&o["promote"]["trusted"]),
            o["promote"]["manifestsPushed"],
            o["promote"]["bytesStreamed"]
        ),
        "Sign" => format!(
            "{} digests signed, {} new signatures, attestation {}",
            o["sign"]["digestsSigned"],
            o["sign"]["signaturesCreated"],
            if o["sign"]["attestationCreated"] == true {
                "written"
            } else {
                "already there"
            }
        ),
        "Retag" | "EnvironmentRetag" => retag(&o["retag"]),
        "EmitPromoted" | "EmitEnvironmentPromoted" | "EmitRejected" => "event emitted".into(),
        _ => String::new(),
    }
}

/// An execution as `--json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    execution: String,
    state_machine: String,
    status: String,
    duration_ms: Option<i64>,
    input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    states: Vec<Step>,
}

impl Report {
    fn new(
        arn: &str,
        d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput,
        states: Vec<Step>,
    ) -> Self {
        let json = |s: Option<&str>| s.and_then(|s| serde_json::from_str(s).ok());
        let start = d.start_date().to_millis().ok();
        let stop = d.stop_date().and_then(|t| t.to_millis().ok());
        Report {
            execution: arn.to_owned(),
            state_machine: d.state_machine_arn().to_owned(),
            status: d.status().as_str().to_owned(),
            duration_ms: start.zip(stop).map(|(a, b)| b - a),
            input: json(d.input()),
            output: json(d.output()),
            error: d.error().map(str::to_owned),
            cause: d.cause().map(str::to_owned),
            states,
        }
    }

    fn summary(&self) -> String {
        let mut line = match self.duration_ms {
            Some(ms) => format!("{}: {} in {ms} ms", self.execution, self.status),
            None => format!("{}: {}", self.execution, self.status),
        };
        if let Some(e) = &self.error {
            line.push_str(&format!("\n  error: {e}"));
            if let Some(c) = &self.cause {
                line.push_str(&format!(" - {c}"));
            }
        }
        line
    }

    /// How the command ends: `None` for success (and for a running execution when not
    /// waiting); the execution's error type where it is one of ours.
    fn failure(&self, waited: bool) -> Option<Failure> {
        let what = format!("execution {}", self.execution);
        match self.status.as_str() {
            "SUCCEEDED" => None,
            "RUNNING" if !waited => None,
            "RUNNING" => Some(Failure::new(
                ErrorType::ExecutionFailed,
                format!(
                    "{what} is still running after --wait-timeout; `promote status {}` \
                     follows it",
                    self.execution
                ),
            )),
            status => {
                let error = self.error.as_deref().unwrap_or(status);
                let kind = ErrorType::ALL
                    .iter()
                    .copied()
                    .find(|t| t.as_str() == error)
                    .unwrap_or(ErrorType::ExecutionFailed);
                let cause = self.cause.as_deref().unwrap_or("no cause given");
                Some(Failure::new(
                    kind,
                    format!("{what} {status}: {error}: {cause}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: StartArgs,
    }

    fn req(argv: &[&str]) -> Result<Value, Failure> {
        let mut all = vec![
            "t",
            "--state-machine",
            "arn:aws:states:us-east-1:1:stateMachine:p",
        ];
        all.extend(argv);
        request(
            &T::try_parse_from(all)
                .map_err(|e| input(e.to_string()))?
                .args,
        )
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn requests_take_the_state_machines_manual_shapes() {
        let r = req(&[
            "ghcr.io/acme/api:1.2",
            "-a",
            "team=shop",
            "--build",
            "1.2-7",
        ])
        .ok();
        assert_eq!(
            r,
            Some(
                json!({"source": "ghcr.io/acme/api:1.2", "annotations": {"team": "shop"},
                "build": "1.2-7"})
            )
        );
        let r = req(&["x.io/a:1", "--application", "shop", "--preserve-digest"]).ok();
        assert_eq!(
            r,
            Some(
                json!({"source": "x.io/a:1", "annotations": {}, "application": "shop",
                "preserveDigest": true})
            )
        );
        let pinned = format!("1.dkr.ecr.us-east-1.amazonaws.com/trusted/shop@{DIGEST}");
        let r = req(&[&pinned, "--environment", "staging"]).ok();
        assert_eq!(r, Some(json!({"image": pinned, "environment": "staging"})));
    }

    #[test]
    fn bad_requests_are_refused_before_starting_anything() {
        let refused = |argv: &[&str], why: &str| match req(argv) {
            Ok(v) => panic!("{argv:?} accepted: {v}"),
            Err(f) => {
                assert_eq!(f.kind, ErrorType::InputInvalid, "{argv:?}: {}", f.message);
                assert!(f.message.contains(why), "{argv:?}: {}", f.message);
            }
        };
        refused(&["not a reference"], "");
        refused(
            &["x.io/trusted/a:1", "--environment", "prod"],
            "REPO@sha256",
        );
        let pinned = format!("x.io/trusted/a@{DIGEST}");
        refused(&[&pinned, "-e", "prod", "-a", "k=v"], "--annotation");
        refused(
            &[&pinned, "-e", "prod", "--preserve-digest"],
            "--preserve-digest",
        );
        refused(&[&pinned, "-e", ""], "environment name");
        refused(&["x.io/a:1", "--build", "has space"], "--build");
        refused(&["x.io/a:1", "-a", "novalue"], "--annotation");
    }

    fn ev(at_ms: i64, kind: &str, state: &str, output: Option<Value>) -> Event {
        Event {
            at_ms,
            kind: kind.into(),
            state: (!state.is_empty()).then(|| state.into()),
            output: output.map(|o| o.to_string()),
        }
    }

    #[test]
    fn the_timeline_pairs_states_counts_failed_attempts_and_describes_tasks() {
        let copy = json!({"copy": {"source": "x.io/a:1@sha256:aa", "quarantine": "q/a@sha256:aa",
            "manifestsPushed": 4, "bytesStreamed": 1000}});
        let events = [
            ev(0, "ExecutionStarted", "", None),
            ev(1, "ChoiceStateEntered", "Normalise", None),
            ev(2, "ChoiceStateExited", "Normalise", Some(json!({}))),
            ev(10, "TaskStateEntered", "Copy", None),
            ev(11, "LambdaFunctionScheduled", "", None),
            ev(20, "LambdaFunctionFailed", "", None),
            ev(30, "LambdaFunctionSucceeded", "", None),
            ev(40, "TaskStateExited", "Copy", Some(copy)),
            ev(41, "TaskStateEntered", "Gate", None),
            ev(
                50,
                "TaskStateExited",
                "Gate",
                Some(json!({"gate": {"summary": "FAILED: 1 CRITICAL", "polls": 2}})),
            ),
            ev(51, "FailStateEntered", "Rejected", None),
            ev(52, "ExecutionFailed", "", None),
        ];
        let steps = timeline(&events);
        let names: Vec<_> = steps
            .iter()
            .map(|s| (s.name.as_str(), s.kind.as_str(), s.ms))
            .collect();
        assert_eq!(
            names,
            [
                ("Normalise", "Choice", Some(1)),
                ("Copy", "Task", Some(30)),
                ("Gate", "Task", Some(9)),
                ("Rejected", "Fail", None)
            ]
        );
        assert_eq!(steps[1].failed_attempts, 1);
        assert_eq!(
            steps[2].failed_attempts, 0,
            "ExecutionFailed is not the Gate's"
        );
        assert_eq!(
            steps[1].detail,
            "x.io/a:1@sha256:aa -> q/a@sha256:aa (4 manifests pushed, 1000 bytes streamed)"
        );
        assert_eq!(steps[2].detail, "FAILED: 1 CRITICAL (poll 2)");
        assert!(
            steps[1].line().ends_with("(1 failed attempts)"),
            "{}",
            steps[1].line()
        );
        assert!(steps[0].output.is_none(), "only Tasks carry their output");
    }

    #[test]
    fn a_loop_pairs_each_entry_with_its_own_exit() {
        let events = [
            ev(0, "TaskStateEntered", "Gate", None),
            ev(
                5,
                "TaskStateExited",
                "Gate",
                Some(json!({"gate": {"summary": "PENDING"}})),
            ),
            ev(6, "WaitStateEntered", "GateWait", None),
            ev(106, "WaitStateExited", "GateWait", Some(json!({}))),
            ev(107, "TaskStateEntered", "Gate", None),
            ev(
                117,
                "TaskStateExited",
                "Gate",
                Some(json!({"gate": {"summary": "PASSED"}})),
            ),
        ];
        let ms: Vec<_> = timeline(&events)
            .iter()
            .map(|s| (s.ms, s.detail.clone()))
            .collect();
        assert_eq!(
            ms,
            [
                (Some(5), "PENDING".to_owned()),
                (Some(100), String::new()),
                (Some(10), "PASSED".to_owned())
            ]
        );
    }
}
