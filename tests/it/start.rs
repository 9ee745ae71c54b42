//! `promote start` and `promote status` against moto's Step Functions API, with moto's ASL
//! interpreter running the executions (`Moto::execute_state_machines`).
//!
//! moto cannot invoke the pipeline's Lambdas (its Lambda needs Docker), so the state machine
//! here is the pipeline's shape in Pass, Choice, Wait, Succeed and Fail states: the same state
//! names, outputs at the same paths, `Gate.Denied` and `Input.Invalid` as the pipeline's Fail
//! states end. The real definition runs end to end in `pipeline::` (aws-local-stepfunctions);
//! what this proves is the CLI's side: the request it sends, following an execution through
//! `DescribeExecution` and `GetExecutionHistory`, the timeline and the exit codes.

use crate::support::cli::Promote;
use crate::support::moto::{ACCOUNT, Moto, REGION};
use serde_json::{Value, json};

const QUARANTINE: &str = "q.example/quarantine/shop@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const TRUSTED_DIGEST: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The pipeline's shape: a source containing "denied" is denied by the gate, a source is
/// copied, gated (after a one-second wait, so that `--wait` sees it running) and promoted; an
/// `image` with an `environment` is retagged; the application `nobody`, and anything else, is
/// `Input.Invalid` (the pipeline's answer to an application it does not know).
fn definition() -> Value {
    json!({
        "StartAt": "Normalise",
        "States": {
            "Normalise": {"Type": "Choice", "Choices": [
                {"And": [{"Variable": "$.application", "IsPresent": true},
                         {"Variable": "$.application", "StringEquals": "nobody"}],
                 "Next": "InvalidRequest"},
                {"Variable": "$.source", "IsPresent": true, "Next": "Copy"},
                {"And": [{"Variable": "$.image", "IsPresent": true},
                         {"Variable": "$.environment", "IsPresent": true}],
                 "Next": "EnvironmentRetag"}],
             "Default": "InvalidRequest"},
            "Copy": {"Type": "Pass", "ResultPath": "$.copy", "Next": "GateWait",
                "Parameters": {"source.$": "$.source", "quarantine": QUARANTINE,
                    "manifestsPushed": 4, "bytesStreamed": 2048}},
            "GateWait": {"Type": "Wait", "Seconds": 1, "Next": "GateDecision"},
            "GateDecision": {"Type": "Choice", "Choices": [
                {"Variable": "$.source", "StringMatches": "*denied*", "Next": "GateDenied"}],
             "Default": "Gate"},
            "Gate": {"Type": "Pass", "ResultPath": "$.gate", "Next": "Promoted",
                "Result": {"summary": "PASSED: 0 blocking (1 MEDIUM)", "polls": 2}},
            "Promoted": {"Type": "Succeed"},
            "GateDenied": {"Type": "Pass", "Next": "Rejected"},
            "Rejected": {"Type": "Fail", "Error": "Gate.Denied",
                "Cause": "1 CRITICAL finding blocks linux/amd64"},
            "EnvironmentRetag": {"Type": "Pass", "ResultPath": "$.retag", "End": true,
                "Parameters": {"image.$": "$.image", "tags": ["staging-7"], "changed": true}},
            "InvalidRequest": {"Type": "Fail", "Error": "Input.Invalid",
                "Cause": "not a request this pipeline knows"}
        }
    })
}

struct Sfn {
    moto: Moto,
    arn: String,
    aws: tempfile::TempDir,
}

impl Sfn {
    fn start() -> Sfn {
        let moto = Moto::start();
        moto.execute_state_machines();
        let created = moto.sfn(
            "CreateStateMachine",
            json!({"name": "promotion", "definition": definition().to_string(),
                "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/promotion")}),
        );
        let arn = created["stateMachineArn"]
            .as_str()
            .expect("stateMachineArn")
            .to_owned();
        Sfn {
            moto,
            arn,
            aws: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `promote` with moto as every AWS endpoint and throwaway credentials.
    fn promote(&self) -> Promote {
        Promote::new([
            "--aws-region",
            REGION,
            "--aws-endpoint-url",
            &self.moto.url(),
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "AWS_CONFIG_FILE",
            self.aws.path().join("none").display().to_string(),
        )
    }

    fn executions(&self) -> Vec<Value> {
        let listed = self
            .moto
            .sfn("ListExecutions", json!({"stateMachineArn": self.arn}));
        listed["executions"].as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn start_wait_follows_the_execution_prints_its_timeline_and_status_prints_it_again() {
    let sfn = Sfn::start();
    let run = sfn
        .promote()
        .arg("start")
        .arg("ghcr.io/acme/shop:1.4.2")
        .arg("--state-machine")
        .arg(&sfn.arn)
        .arg("--annotation")
        .arg("team=payments")
        .arg("--build")
        .arg("1.4.2-7")
        .arg("--wait")
        .run();
    assert_eq!(run.code, 0, "{}", run.describe());
    let out = &run.stdout;
    assert!(
        out.contains("started arn:aws:states:"),
        "{}",
        run.describe()
    );
    // Each state on its own line in order, the Tasks' stand-ins described from their output.
    let order: Vec<usize> = [
        "Normalise",
        "Copy",
        "GateWait",
        "GateDecision",
        "Gate ",
        "Promoted",
    ]
    .iter()
    .map(|s| {
        out.find(&format!("  {s}"))
            .unwrap_or_else(|| panic!("no line for {s}\n{}", run.describe()))
    })
    .collect();
    assert!(order.is_sorted(), "states out of order\n{}", run.describe());
    assert!(
        out.contains(&format!(
            "ghcr.io/acme/shop:1.4.2 -> {QUARANTINE} (4 manifests pushed, 2048 bytes streamed)"
        )),
        "{}",
        run.describe()
    );
    assert!(
        out.contains("PASSED: 0 blocking (1 MEDIUM) (poll 2)"),
        "{}",
        run.describe()
    );
    let wait_line = out
        .lines()
        .find(|l| l.contains("  GateWait"))
        .unwrap_or_default();
    let wait_ms: u64 = wait_line
        .split_whitespace()
        .nth(1)
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no duration on {wait_line:?}\n{}", run.describe()));
    assert!(
        wait_ms >= 900,
        "the Wait state took {wait_ms} ms\n{}",
        run.describe()
    );
    assert!(
        out.lines().last().unwrap_or_default().ends_with(" ms") && out.contains(": SUCCEEDED in "),
        "{}",
        run.describe()
    );

    // The request the pipeline received: the manual shape, validated fields only.
    let executions = sfn.executions();
    assert_eq!(executions.len(), 1, "{executions:?}");
    let arn = executions[0]["executionArn"].as_str().unwrap_or_default();
    let status = sfn.promote().arg("--json").arg("status").arg(arn).run();
    let report = status.assert_ok();
    assert_eq!(report["status"], "SUCCEEDED", "{}", status.describe());
    assert_eq!(
        report["input"],
        json!({"source": "ghcr.io/acme/shop:1.4.2", "annotations": {"team": "payments"},
            "build": "1.4.2-7"}),
        "{}",
        status.describe()
    );
    let names: Vec<&str> = report["states"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Normalise",
            "Copy",
            "GateWait",
            "GateDecision",
            "Gate",
            "Promoted"
        ],
        "{}",
        status.describe()
    );
    assert!(report["durationMs"].as_i64().unwrap_or_default() >= 900);

    // Without --json, the same timeline as `start --wait` printed.
    let human = sfn.promote().arg("status").arg(arn).run();
    assert_eq!(human.code, 0, "{}", human.describe());
    let tail = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("  "))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(tail(&human.stdout), tail(out), "{}", human.describe());
}

#[test]
fn a_denied_gate_exits_3_a_refused_request_2_and_an_environment_promotion_0() {
    let sfn = Sfn::start();
    let run = sfn
        .promote()
        .arg("--json")
        .arg("start")
        .arg("ghcr.io/acme/denied:1.0")
        .arg("--state-machine")
        .arg(&sfn.arn)
        .arg("--wait")
        .run();
    assert_eq!(run.code, 3, "{}", run.describe());
    assert!(
        run.error_line().ends_with("[Gate.Denied]")
            && run
                .error_line()
                .contains("1 CRITICAL finding blocks linux/amd64"),
        "{}",
        run.describe()
    );
    // One JSON object: the execution, which says what failed (no second error object).
    let report = run.json();
    assert_eq!(report["status"], "FAILED", "{}", run.describe());
    assert_eq!(report["error"], "Gate.Denied", "{}", run.describe());
    let last = report["states"]
        .as_array()
        .and_then(|s| s.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["name"].as_str(), last["type"].as_str()),
        (Some("Rejected"), Some("Fail")),
        "{}",
        run.describe()
    );

    // A request the pipeline refuses ends as the pipeline's Input.Invalid: exit 2.
    let refused = sfn
        .promote()
        .arg("start")
        .arg("ghcr.io/acme/shop:1.0")
        .arg("--application")
        .arg("nobody")
        .arg("--state-machine")
        .arg(&sfn.arn)
        .arg("--wait")
        .run();
    assert_eq!(refused.code, 2, "{}", refused.describe());
    assert!(
        refused.error_line().ends_with("[Input.Invalid]")
            && refused
                .stdout
                .contains("error: Input.Invalid - not a request this pipeline knows"),
        "{}",
        refused.describe()
    );

    // An environment promotion: the trusted digest and the environment.
    let env = sfn
        .promote()
        .arg("start")
        .arg(format!("q.example/trusted/shop@{TRUSTED_DIGEST}"))
        .arg("--state-machine")
        .arg(&sfn.arn)
        .arg("--environment")
        .arg("staging")
        .arg("--wait")
        .run();
    assert_eq!(env.code, 0, "{}", env.describe());
    assert!(
        env.stdout.contains("tagged staging-7 (changed: true)"),
        "{}",
        env.describe()
    );
    assert_eq!(sfn.executions().len(), 3);
}

#[test]
fn bad_requests_start_nothing_names_are_idempotent_and_unknown_arns_are_clear_errors() {
    let sfn = Sfn::start();
    // Refused by the CLI before any execution: no digest for an environment promotion,
    // annotations with it, a build id that cannot be a tag.
    for (args, why) in [
        (
            vec!["q.example/trusted/shop:1.0", "--environment", "prod"],
            "REPO@sha256",
        ),
        (
            vec!["ghcr.io/acme/shop:1", "--build", "no spaces"],
            "--build",
        ),
        (
            vec!["ghcr.io/acme/shop:1", "--annotation", "novalue"],
            "--annotation",
        ),
    ] {
        let mut promote = sfn.promote().arg("start");
        for a in &args {
            promote = promote.arg(*a);
        }
        let run = promote.arg("--state-machine").arg(&sfn.arn).run();
        assert_eq!(run.code, 2, "{args:?}\n{}", run.describe());
        assert!(
            run.error_line().contains(why) && run.error_line().ends_with("[Input.Invalid]"),
            "{args:?}\n{}",
            run.describe()
        );
    }
    assert!(sfn.executions().is_empty(), "{:?}", sfn.executions());

    // A name makes a start idempotent while its execution runs; once it ended, the name is
    // refused and the error says where the execution is.
    let named = || {
        sfn.promote()
            .arg("start")
            .arg("ghcr.io/acme/shop:2")
            .arg("--state-machine")
            .arg(&sfn.arn)
            .arg("--name")
            .arg("shop-2")
    };
    let first = named().run();
    let again = named().run();
    assert_eq!(
        (first.code, again.code),
        (0, 0),
        "{}\n{}",
        first.describe(),
        again.describe()
    );
    assert_eq!(first.stdout, again.stdout, "the same execution");
    assert_eq!(sfn.executions().len(), 1, "{:?}", sfn.executions());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let late = named().run();
    late.assert_failed("Execution.Failed");
    assert!(
        late.error_line().contains("ExecutionAlreadyExists")
            && late.error_line().contains(":execution:promotion:shop-2`"),
        "{}",
        late.describe()
    );
    assert_eq!(sfn.executions().len(), 1);

    let missing = format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:no-such-machine");
    let run = sfn
        .promote()
        .arg("--json")
        .arg("start")
        .arg("ghcr.io/acme/shop:1")
        .arg("--state-machine")
        .arg(&missing)
        .run();
    run.assert_failed("Execution.Failed");
    assert!(
        run.error_line().contains(&missing)
            && run.error_line().contains("StateMachineDoesNotExist"),
        "{}",
        run.describe()
    );

    let run = sfn
        .promote()
        .arg("status")
        .arg(format!(
            "arn:aws:states:{REGION}:{ACCOUNT}:execution:promotion:nope"
        ))
        .run();
    run.assert_failed("Execution.Failed");
    assert!(
        run.error_line().contains("ExecutionDoesNotExist"),
        "{}",
        run.describe()
    );
}
