//! The whole pipeline on local stand-ins (docs/DESIGN.md, "Local stand-ins"):
//! - one `docker-registry` holding the ingress, quarantine, trusted and approvals repositories,
//!   behind the ECR-faithful front (`support/ecr_front.rs`) with every ECR behaviour on: the
//!   referrers API, the mount rule, dropped later `PATCH` bodies, no media type parameters,
//!   PutImage throttled at 10/s, the 4 MiB manifest limit, and HTTP basic `AWS:<token>` with the
//!   ~2,000-character token moto's ECR `GetAuthorizationToken` hands out (`scripts/moto_server.py`
//!   makes it ECR-shaped), so the Lambdas authenticate exactly as on AWS
//!   (`ECR_REGISTRY_ALIASES` names the front as ECR). Nothing reaches docker-registry but
//!   through the front, except the tests' own reads of what was stored;
//! - ECR's events: the front puts an `ECR Image Action` / `ECR Referrer Action` on moto's
//!   default bus for every manifest PUT and DELETE; the template's rules (their patterns read
//!   from `infra/template.yaml`) route matches to SQS queues, and the tests start executions
//!   only from what those queues received ([`Stack::triggered`]);
//! - Inspector: `ListCoverage` from the coverage stand-in (`support/inspector.rs`) for the images
//!   the front holds (quarantine and trusted under continuous scanning), findings from moto; the
//!   functions run without `INSPECTOR_ASSUME_SCANNED`, so the gate's wait and settle loop runs as
//!   deployed;
//! - `moto_server` for KMS (signing key; `MessageType=DIGEST` corrected, so the Sign function
//!   runs in its default DIGEST mode, as deployed), Inspector2 findings, ECR tokens, EventBridge,
//!   SQS and Secrets Manager;
//! - `cargo lambda watch` (PyPI `cargo-lambda`) serving the real Lambda binaries;
//! - `aws-local-stepfunctions` on Node 22 running the real `statemachine/promotion.asl.json`
//!   (`tests/sfn/run.mjs`).
//!
//! Every program is found under `.work/` (installed by `scripts/setup.sh`) and the start fails,
//! naming the program and the set-up component, when one is missing.

use super::ecr_front::{EcrFront, EventBridge, FrontConfig};
use super::images::RegistryClient;
use super::inspector::{CoverageConfig, InspectorStandIn};
use super::moto::Moto;
use super::registry::{TestRegistry, free_port};
use base64::Engine as _;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The five functions: package (= binary) name and the Task resource ARN used in tests.
pub const FUNCTIONS: [(&str, &str); 5] = [
    ("copy-to-quarantine", "CopyToQuarantineFunctionArn"),
    ("scan-gate", "ScanGateFunctionArn"),
    ("promote-and-annotate", "PromoteAndAnnotateFunctionArn"),
    ("sign", "SignFunctionArn"),
    ("retag-for-environment", "RetagForEnvironmentFunctionArn"),
];

/// The sync state machine's listing step (package = binary), beside the five.
pub const SYNC_PLAN: &str = "sync-plan";
/// The promotion state machine's ARN as the sync state machine names it in tests.
pub const PROMOTION_STATE_MACHINE: &str =
    "arn:aws:states:us-east-1:123456789012:stateMachine:promotion";

/// The cargo feature that compiles the stand-in switches (`ECR_REGISTRY_ALIASES`,
/// `INSECURE_REGISTRIES`, `INSPECTOR_ASSUME_SCANNED`) into the functions: the tests and the demo
/// build with it (`scripts/test.sh`, `scripts/demo.sh`), release and SAM builds without.
pub const STAND_INS_FEATURE: &str = "promotion-lambda/stand-ins";

/// The approval artifact type (the environments default).
pub const APPROVAL_TYPE: &str = "application/vnd.ecr-promotion.approval.v1+json";
/// Where copy-to-quarantine finds source credentials (`SOURCE_CREDENTIALS_SECRET_PREFIX`, the
/// template's default): the secret `<prefix><host>` in moto's Secrets Manager.
pub const SECRET_PREFIX: &str = "ecr-pullthroughcache/ecr-promotion/";
/// Annotations every promoted image must carry (the deployment's `ANNOTATIONS`).
pub const MANDATORY_ANNOTATION: (&str, &str) = ("org.opencontainers.image.vendor", "Example Corp");

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn work_program(rel: &str, component: &str) -> PathBuf {
    let p = root().join(".work").join(rel);
    assert!(
        p.is_file(),
        "{} is missing: the end-to-end tests need it. Run `scripts/setup.sh {component}` (or \
         scripts/test.sh, which installs everything).",
        p.display()
    );
    p
}

/// What the deployment is configured with.
pub struct StackConfig {
    /// `GATE_POLICY` (YAML).
    pub policy: String,
    /// `SCAN_POLL_SECONDS`.
    pub poll_seconds: u64,
    /// `SCAN_MAX_WAIT_SECONDS`.
    pub max_wait_seconds: u64,
    /// github-webhook's `WEBHOOK_REGISTRY` (its secret is [`WEBHOOK_SECRET_ID`] in moto's
    /// Secrets Manager, its bus [`EVENT_BUS`]).
    pub webhook_registry: String,
    /// How long Inspector keeps a pushed image `PENDING_INITIAL_SCAN`.
    pub scan_pending: Duration,
    /// ECR's behaviours (default: all, [`FrontConfig::ecr`]); the stack sets the password
    /// (moto's token) and the events (moto's bus) itself.
    pub front: FrontConfig,
}

/// The template's rules the stack routes (name, bus): each to its own SQS queue.
pub const RULES: [(&str, &str); 3] = [
    ("IngressPushRule", "default"),
    ("ApprovalReferrerRule", "default"),
    ("PromotionRequestedRule", EVENT_BUS),
];

/// github-webhook's secret (`WEBHOOK_SECRET_ID`), to be created by the test that needs it.
pub const WEBHOOK_SECRET_ID: &str = "github-webhook";
/// The pipeline's bus (`EVENT_BUS_NAME`, the state machine's `EventBusName`).
pub const EVENT_BUS: &str = "promotion-events";

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            policy: "block_severities: [CRITICAL, HIGH]\nsettle_seconds: 0\n".into(),
            poll_seconds: 30,
            max_wait_seconds: 1800,
            webhook_registry: "ghcr.io".into(),
            scan_pending: Duration::ZERO,
            front: FrontConfig::ecr(),
        }
    }
}

/// A running deployment on stand-ins; everything is stopped on drop.
pub struct Stack {
    /// The ECR-faithful front: the registry the functions, the CLI and [`Stack::client`] see.
    pub front: EcrFront,
    /// Inspector's coverage stand-in (findings are moto's).
    pub inspector: InspectorStandIn,
    /// The docker-registry behind the front (its own short credentials), kept running.
    _registry: TestRegistry,
    /// moto.
    pub moto: Moto,
    /// The signing key id in moto's KMS.
    pub key_id: String,
    /// The staging and prod approver's key in moto's KMS (`awskms:///<id>`), named
    /// `release-manager` in the deployment's environments document.
    pub approver_key: String,
    /// The deployment's environments document (`ENVIRONMENTS`), as a file for the CLI.
    pub environments_file: tempfile::NamedTempFile,
    /// The registry password (moto's ECR token, ~2,000 characters).
    pub password: String,
    /// The template's rules in moto's EventBridge.
    pub rules: Rules,
    watch: Child,
    watch_port: u16,
    watch_log: tempfile::NamedTempFile,
    extra_insecure: Vec<String>,
}

/// moto's ECR token, decoded: (user, password).
fn ecr_token(moto: &Moto) -> (String, String) {
    let v = moto.json_call(
        "ecr",
        "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
        "1.1",
        json!({}),
    );
    let b64 = v["authorizationData"][0]["authorizationToken"]
        .as_str()
        .expect("authorizationToken");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("token is base64");
    let text = String::from_utf8(raw).expect("token is UTF-8");
    let (u, p) = text.split_once(':').expect("token is user:password");
    (u.to_owned(), p.to_owned())
}

/// The template's [`RULES`] put into moto's EventBridge, their patterns as the template writes
/// them (with this stack's parameters), each targeting its own SQS queue: moto cannot start a
/// Step Functions execution (its PutEvents answers 500 for such a target, test-infra.md §3), so
/// the queue stands for the target and the tests run what it receives. The template's targets
/// pass the whole event (no Input, InputPath or InputTransformer): checked here, since the
/// state machine is handed the event as the queue holds it.
pub struct Rules {
    /// Each rule of [`RULES`] and the URL of the SQS queue it delivers to.
    queues: Vec<(String, String)>,
}

impl Rules {
    /// Creates the pipeline's bus, the queues and the rules in `moto`.
    pub fn route(moto: &Moto) -> Rules {
        Rules {
            queues: route_rules(moto),
        }
    }

    /// The events the rules matched since the last call: (rule name, event as delivered).
    pub fn matched(&self, moto: &Moto) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (rule, queue) in &self.queues {
            for body in moto.receive_all(queue, 0) {
                let event: Value = serde_json::from_str(&body).expect("an event");
                out.push((rule.clone(), event));
            }
        }
        out
    }
}

fn route_rules(moto: &Moto) -> Vec<(String, String)> {
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("infra/template.yaml")).expect("template"),
    )
    .expect("template YAML");
    let parameters = json!({
        "IngressRepositoryPrefix": "incoming/",
        "ApprovalsRepositoryPrefix": "approvals/",
        "ApprovalArtifactType": APPROVAL_TYPE,
    });
    moto.events("CreateEventBus", json!({"Name": EVENT_BUS}));
    let mut queues = Vec::new();
    for (rule, bus) in RULES {
        let properties: Value =
            serde_json::to_value(&template["Resources"][rule]["Properties"]).expect("JSON");
        let pattern = resolve_refs(&properties["EventPattern"], &parameters);
        assert!(pattern.is_object(), "{rule} has no EventPattern");
        for target in properties["Targets"].as_array().expect("Targets") {
            for key in ["Input", "InputPath", "InputTransformer"] {
                assert!(
                    target[key].is_null(),
                    "{rule}'s target sets {key}: the harness hands the state machine the whole event"
                );
            }
        }
        let queue = moto.sqs("CreateQueue", json!({"QueueName": rule}))["QueueUrl"]
            .as_str()
            .expect("QueueUrl")
            .to_owned();
        moto.events(
            "PutRule",
            json!({"Name": rule, "EventBusName": bus, "EventPattern": pattern.to_string(),
                "State": "ENABLED"}),
        );
        moto.events(
            "PutTargets",
            json!({"Rule": rule, "EventBusName": bus, "Targets": [{"Id": "queue",
                "Arn": format!("arn:aws:sqs:{}:{}:{rule}", super::moto::REGION, super::moto::ACCOUNT)}]}),
        );
        queues.push((rule.to_owned(), queue));
    }
    queues
}

/// `value` with every `{"Ref": name}` replaced by `parameters[name]`; any other intrinsic, or a
/// parameter not given, fails the test (the pattern would not be the template's).
fn resolve_refs(value: &Value, parameters: &Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            let name = map["Ref"].as_str().expect("Ref names a parameter");
            let v = &parameters[name];
            assert!(
                !v.is_null(),
                "the rule refers to {name}: give the harness its value"
            );
            v.clone()
        }
        Value::Object(map) => {
            for k in map.keys() {
                assert!(
                    !k.starts_with("Fn::"),
                    "{k} in an event pattern: teach the harness to resolve it"
                );
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), resolve_refs(v, parameters)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve_refs(v, parameters)).collect())
        }
        other => other.clone(),
    }
}

impl Stack {
    /// Starts the registry, moto and `cargo lambda watch` configured with `config`, then invokes
    /// each function once with `{}` (which must be `Input.Invalid`: it also starts them).
    /// `extra_insecure` are more plain-HTTP hosts the functions may reach and copy from (an
    /// upstream registry: `INSECURE_REGISTRIES` and `SOURCE_REGISTRIES`).
    pub fn start(config: &StackConfig, extra_insecure: &[String]) -> Stack {
        let cargo_lambda = work_program("venv/bin/cargo-lambda", "cargo_lambda");
        let moto = Moto::start();
        let (user, password) = ecr_token(&moto);
        assert_eq!(user, "AWS");
        assert!(
            password.len() > 1000,
            "moto's ECR token is {} characters: start moto through scripts/moto_server.py, \
             which hands out ECR-shaped ones",
            password.len()
        );
        let registry = TestRegistry::start_with_basic_auth("registry", &super::images::nonce());
        let front = EcrFront::start(
            &registry,
            FrontConfig {
                password: Some(password.clone()),
                events: Some(EventBridge {
                    endpoint: moto.url(),
                    region: super::moto::REGION.into(),
                }),
                ..config.front.clone()
            },
        );
        let inspector = InspectorStandIn::start(
            &moto.url(),
            front.seen(),
            CoverageConfig {
                scanned_prefixes: vec!["quarantine/".into(), "trusted/".into()],
                pending_for: config.scan_pending,
                unsupported_prefixes: Vec::new(),
                account: super::moto::ACCOUNT.into(),
                region: super::moto::REGION.into(),
            },
        );
        let rules = Rules::route(&moto);
        let key_id = moto.create_signing_key("ECC_NIST_P256");
        let approver_key = format!("awskms:///{}", moto.create_signing_key("ECC_NIST_P256"));
        let approver = json!([{"name": "release-manager", "key": approver_key}]);
        let environments = json!({"environments": [
            {"name": "dev"},
            {"name": "staging", "approvers": approver},
            {"name": "prod", "approvers": approver},
        ]});

        let host = front.host();
        let mut insecure = vec![host.clone()];
        insecure.extend(extra_insecure.iter().cloned());
        let watch_port = free_port();
        let watch_log = tempfile::NamedTempFile::new().expect("watch log");
        let path = format!(
            "{}:{}",
            cargo_lambda.parent().expect("venv bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(&cargo_lambda);
        cmd.current_dir(root())
            .args([
                "lambda",
                "watch",
                // The stand-in switches set below exist only in builds with this feature
                // (functions/common/Cargo.toml); scripts/test.sh pre-builds with the same flags.
                "--features",
                STAND_INS_FEATURE,
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(watch_port.to_string())
            .env("PATH", path)
            .env("INGRESS_REGISTRY", &host)
            .env("PIPELINE_REGISTRY", &host)
            .env("INGRESS_PREFIX", "incoming/")
            .env("QUARANTINE_PREFIX", "quarantine/")
            .env("TRUSTED_PREFIX", "trusted/")
            .env("APPROVALS_PREFIX", "approvals/")
            .env("ENVIRONMENTS", environments.to_string())
            .env("GATE_POLICY", &config.policy)
            .env("SCAN_POLL_SECONDS", config.poll_seconds.to_string())
            .env("SCAN_MAX_WAIT_SECONDS", config.max_wait_seconds.to_string())
            .env("KMS_KEY_ID", &key_id)
            // No KMS_MESSAGE_MODE: the function's default, DIGEST, which the template deploys
            // (tests/it/infra.rs checks it) and moto signs correctly through the launcher.
            .env("SIGN_MODE", "both")
            .env("APPROVAL_ARTIFACT_TYPE", APPROVAL_TYPE)
            .env(
                "ANNOTATIONS",
                json!({MANDATORY_ANNOTATION.0: MANDATORY_ANNOTATION.1}).to_string(),
            )
            .env(
                "LABELS",
                json!({"org.example.promoted": "true"}).to_string(),
            )
            .env(
                "ECR_REGISTRY_ALIASES",
                format!(
                    "{host}={}.dkr.ecr.us-east-1.amazonaws.com",
                    super::moto::ACCOUNT
                ),
            )
            .env("INSECURE_REGISTRIES", insecure.join(","))
            // The upstream registries a test copies from; the stack's own is always allowed.
            .env("SOURCE_REGISTRIES", extra_insecure.join(","))
            .env("SOURCE_CREDENTIALS_SECRET_PREFIX", SECRET_PREFIX)
            .env("WEBHOOK_SECRET_ID", WEBHOOK_SECRET_ID)
            .env("EVENT_BUS_NAME", EVENT_BUS)
            .env("WEBHOOK_REGISTRY", &config.webhook_registry)
            .env("AWS_ENDPOINT_URL", moto.url())
            // The SDKs' service-specific endpoint: ListCoverage from the stand-in.
            .env("AWS_ENDPOINT_URL_INSPECTOR2", inspector.url())
            .env("AWS_REGION", super::moto::REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(watch_log.reopen().expect("log"))
            .stderr(watch_log.reopen().expect("log"));
        let watch = cmd.spawn().expect("start cargo lambda watch");
        let environments_file = tempfile::NamedTempFile::new().expect("environments file");
        std::fs::write(environments_file.path(), environments.to_string()).expect("write");
        let stack = Stack {
            front,
            inspector,
            _registry: registry,
            moto,
            key_id,
            approver_key,
            environments_file,
            password,
            rules,
            watch,
            watch_port,
            watch_log,
            extra_insecure: extra_insecure.to_vec(),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", watch_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cargo lambda watch did not listen within 60 s\n{}",
                stack.watch_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for function in FUNCTIONS.iter().map(|f| f.0).chain([SYNC_PLAN]) {
            let err = stack
                .invoke(function, &json!({}))
                .expect_err("an empty request must be refused");
            assert_eq!(err.0, "Input.Invalid", "{function}: {err:?}");
            assert!(!err.1.is_empty(), "{function}: the message names the field");
        }
        stack
    }

    /// Seeds Inspector findings: moto answers each distinct ListFindings request with the next
    /// queued list (then sticks to it), and the gate asks once per platform, so many copies are
    /// queued. The gate keeps only the findings of the digest it asked about.
    pub fn seed_findings(&self, findings: &[Value]) {
        self.moto
            .seed_inspector_findings(&vec![findings.to_vec(); 400]);
    }

    /// What the functions (and cargo lambda) logged.
    pub fn watch_log(&self) -> String {
        std::fs::read_to_string(self.watch_log.path()).unwrap_or_default()
    }

    /// The registry host the functions see (the front).
    pub fn host(&self) -> String {
        self.front.host()
    }

    /// A client of the front with the ECR token: what a `docker push` to ECR is.
    pub fn client(&self) -> RegistryClient {
        RegistryClient::with_basic_auth(&self.front.host(), "AWS", &self.password)
    }

    /// The events the template's rules matched since the last call, as the rules hand them to
    /// their target: (rule name, event). Fails when the front could not put an event.
    pub fn triggered(&self) -> Vec<(String, Value)> {
        let failed: Vec<_> = self
            .front
            .emitted()
            .into_iter()
            .filter(|e| e.put.is_err())
            .collect();
        assert!(failed.is_empty(), "PutEvents failed: {failed:?}");
        self.rules.matched(&self.moto)
    }

    /// The one event the rules matched since the last call, and which rule matched it.
    pub fn triggered_once(&self) -> (String, Value) {
        let mut all = self.triggered();
        assert_eq!(
            all.len(),
            1,
            "exactly one rule match expected: {all:#?}\nemitted: {:#?}",
            self.front.emitted()
        );
        all.remove(0)
    }

    /// The invoke URL of a function.
    pub fn invoke_url(&self, function: &str) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.watch_port
        )
    }

    /// Invokes one function directly: Ok(result) or Err((errorType, errorMessage)).
    pub fn invoke(&self, function: &str, payload: &Value) -> Result<Value, (String, String)> {
        let resp = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("client")
            .post(self.invoke_url(function))
            .json(payload)
            .send()
            .unwrap_or_else(|e| panic!("invoke {function}: {e}\n{}", self.watch_log()));
        let ok = resp.status().is_success();
        let v: Value = resp.json().expect("invoke answers JSON");
        if ok {
            Ok(v)
        } else {
            Err((
                v["errorType"].as_str().unwrap_or_default().to_owned(),
                v["errorMessage"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    }

    fn arn(name: &str) -> String {
        format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
    }

    /// The promotion state machine's `DefinitionSubstitutions` (the template's, with local ARNs).
    fn promotion_substitutions() -> serde_json::Map<String, Value> {
        let mut substitutions = serde_json::Map::new();
        for (name, sub) in FUNCTIONS {
            substitutions.insert(sub.into(), Self::arn(name).into());
        }
        substitutions.insert("EventBusName".into(), EVENT_BUS.into());
        substitutions.insert("ApprovalArtifactType".into(), APPROVAL_TYPE.into());
        substitutions
    }

    /// Runs the real state machine on `input`; waits and retry pauses named in `waits_ms` /
    /// `retries_ms` are shortened by the interpreter (the definition is unchanged).
    pub fn execute(
        &self,
        input: &Value,
        waits_ms: &[(&str, u64)],
        retries_ms: &[(&str, u64)],
    ) -> Execution {
        self.run_job(json!({
            "definition": root().join("statemachine/promotion.asl.json"),
            "substitutions": Self::promotion_substitutions(),
            "input": input,
            "waitOverridesMs": waits_ms.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "retryOverridesMs": retries_ms.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        }))
    }

    /// Runs the real sync state machine (`statemachine/sync.asl.json`) on `request` as the
    /// execution `name`: its Plan step is the real sync-plan function, and each promotion it
    /// starts runs the real promotion state machine (run.mjs says how the Distributed Map and
    /// `startExecution.sync:2` are run).
    pub fn execute_sync(&self, request: &Value, name: &str) -> Execution {
        self.run_job(json!({
            "definition": root().join("statemachine/sync.asl.json"),
            "substitutions": {
                "SyncPlanFunctionArn": Self::arn(SYNC_PLAN),
                "PromotionStateMachineArn": PROMOTION_STATE_MACHINE,
            },
            "stateMachines": {PROMOTION_STATE_MACHINE: {
                "definition": root().join("statemachine/promotion.asl.json"),
                "substitutions": Self::promotion_substitutions(),
            }},
            "executionName": name,
            "input": request,
        }))
    }

    fn run_job(&self, mut job: Value) -> Execution {
        let node = work_program("node/node_modules/.bin/node", "node");
        let mut functions = serde_json::Map::new();
        for name in FUNCTIONS.iter().map(|f| f.0).chain([SYNC_PLAN]) {
            functions.insert(Self::arn(name), self.invoke_url(name).into());
        }
        job["functions"] = functions.into();
        let file = tempfile::NamedTempFile::new().expect("job file");
        std::fs::write(file.path(), job.to_string()).expect("write job");
        let out = Command::new(node)
            .arg(root().join("tests/sfn/run.mjs"))
            .arg(file.path())
            .env("LOCAL_NODE_DIR", root().join(".work/node"))
            .output()
            .expect("run node");
        assert!(
            out.status.success(),
            "tests/sfn/run.mjs failed: {}\n{}\n--- functions ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.watch_log()
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run.mjs printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        Execution(v)
    }

    /// The `promote` command with this stack's registry credentials, plain HTTP and moto.
    /// `promote approve IMAGE --environment ENV --key KEY --to <registry>/approvals/app`: its
    /// JSON report.
    pub fn approve(&self, image: &str, environment: &str, key: &str) -> Value {
        self.promote()
            .arg("approve")
            .arg(image)
            .arg("--environment")
            .arg(environment)
            .arg("--key")
            .arg(key)
            .arg("--to")
            .arg(format!("{}/approvals/app", self.host()))
            .arg("--by")
            .arg("release-manager")
            .run()
            .assert_ok()
    }

    /// `promote verify IMAGE --key <the signing key> --require both --attestation`: both
    /// signature formats and the promotion attestation verify; its JSON report.
    pub fn verify(&self, image: &str) -> Value {
        self.promote()
            .arg("verify")
            .arg(image)
            .arg("--key")
            .arg(format!("awskms:///{}", self.key_id))
            .arg("--require")
            .arg("both")
            .arg("--attestation")
            .run()
            .assert_ok()
    }

    pub fn promote(&self) -> super::cli::Promote {
        let mut p = super::cli::Promote::default()
            .arg("--insecure-registry")
            .arg(self.host())
            .arg("--aws-endpoint-url")
            .arg(self.moto.url())
            .arg("--aws-region")
            .arg(super::moto::REGION)
            .arg("--json")
            .env("PROMOTE_SRC_CREDS", format!("AWS:{}", self.password))
            .env("PROMOTE_DST_CREDS", format!("AWS:{}", self.password))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        for h in &self.extra_insecure {
            p = p.arg("--insecure-registry").arg(h.clone());
        }
        p
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // cargo lambda starts the functions as its children; stop the whole group.
        let _ = Command::new("pkill")
            .arg("-P")
            .arg(self.watch.id().to_string())
            .status();
        let _ = self.watch.kill();
        let _ = self.watch.wait();
    }
}

/// One execution's result as run.mjs prints it.
pub struct Execution(pub Value);

impl Execution {
    /// `SUCCEEDED` or `FAILED`.
    pub fn status(&self) -> &str {
        self.0["status"].as_str().unwrap_or_default()
    }
    /// The execution's error name.
    pub fn error(&self) -> &str {
        self.0["error"].as_str().unwrap_or_default()
    }
    /// The names of the states entered, in order.
    pub fn path(&self) -> Vec<String> {
        self.0["states"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// The output a state produced (the last time it ran).
    pub fn state_output(&self, name: &str) -> Value {
        self.0["states"]
            .as_array()
            .and_then(|a| a.iter().rev().find(|s| s["name"] == name))
            .map(|s| s["output"].clone())
            .unwrap_or(Value::Null)
    }
    /// Emitted events of `detail_type`.
    pub fn events(&self, detail_type: &str) -> Vec<Value> {
        self.0["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["DetailType"] == detail_type)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Retries of `state`.
    pub fn retries(&self, state: &str) -> usize {
        self.0["retries"]
            .as_array()
            .map(|a| a.iter().filter(|r| r["name"] == state).count())
            .unwrap_or(0)
    }
    /// Pretty JSON for assertion messages.
    pub fn describe(&self) -> String {
        serde_json::to_string_pretty(&self.0).unwrap_or_default()
    }
}

/// A TCP proxy that answers the first `fail` connections with HTTP 503 and forwards the rest to
/// `target`. Hand-written on purpose: no local registry can be told to fail on demand.
pub struct FlakyProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Connections answered with 503 so far.
    pub failed: Arc<AtomicUsize>,
}

impl FlakyProxy {
    /// Starts the proxy on a random port.
    pub fn start(target: String, fail: usize) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let host = listener.local_addr().expect("addr").to_string();
        let failed = Arc::new(AtomicUsize::new(0));
        let counter = failed.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { return };
                if counter.load(Ordering::SeqCst) < fail {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut buf = [0u8; 4096];
                    let _ = client.read(&mut buf);
                    let _ = client.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    );
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(&target) else {
                    continue;
                };
                let (mut c2, mut u2) = (
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                let mut upstream = upstream;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut upstream);
                    let _ = upstream.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        FlakyProxy { host, failed }
    }
}
