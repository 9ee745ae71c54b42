//! One `moto_server` per test on 127.0.0.1 with a random port (../shared/reference/test-infra.md §3): the
//! stand-in for Inspector2's ListFindings. Findings are seeded through moto's own API; moto
//! ignores filters and pagination and has no ListCoverage. Also KMS for the signing tests: keys
//! are created with plain KMS JSON calls, not with the code under test. And EventBridge with SQS
//! targets: the real event-pattern matcher for the template's rules (tests/it/infra.rs).
//!
//! moto is started through `scripts/moto_server.py`: moto_server with KMS
//! `MessageType=DIGEST` corrected (moto 5.2.5 signs SHA-256 of the digest), so the signing tests
//! run in the mode the template deploys, and ECR tokens shaped like ECR's (~2,000 characters,
//! valid 12 hours).

use super::registry::free_port;
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto usually answers within ~1.2 s; a loaded machine gets more.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The account moto always reports.
pub const ACCOUNT: &str = "123456789012";
/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`; killed and reaped on drop.
pub struct Moto {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

/// What starts moto: the venv's python (`.work/venv`, where `scripts/install-moto.sh` installs
/// PyPI `moto[server]`) running `scripts/moto_server.py`, which is `moto_server` with
/// KMS `MessageType=DIGEST` corrected (moto hashes the digest again), ECR-shaped tokens, and the
/// same arguments.
/// Panics naming what is missing and the install script.
pub fn moto_program() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let launcher = root.join("scripts/moto_server.py");
    assert!(launcher.is_file(), "{} is missing", launcher.display());
    let venv = root.join(".work/venv/bin");
    let (python, moto_server) = (venv.join("python"), venv.join("moto_server"));
    assert!(
        python.is_file() && moto_server.is_file(),
        "`moto_server` is not installed in {}; the Inspector, KMS and EventBridge integration \
         tests need it. Run `scripts/test.sh` (or `scripts/install-moto.sh`), which installs PyPI \
         `moto[server]` into .work/venv.",
        venv.display()
    );
    (python, launcher)
}

/// The `moto_server` script itself (no DIGEST correction): only for showing what a KMS that signs
/// the wrong bytes leads to.
fn uncorrected_moto_program() -> PathBuf {
    let (python, _) = moto_program();
    python.with_file_name("moto_server")
}

impl Moto {
    /// Starts moto_server (KMS DIGEST corrected, see [`moto_program`]) and waits until it
    /// answers.
    pub fn start() -> Moto {
        let (python, launcher) = moto_program();
        Moto::start_with(|| {
            let mut cmd = Command::new(&python);
            cmd.arg(&launcher);
            cmd
        })
    }

    /// Starts moto_server as installed, whose KMS signs SHA-256(digest) for `MessageType=DIGEST`:
    /// a KMS whose signatures do not verify over the payload.
    pub fn start_uncorrected() -> Moto {
        let program = uncorrected_moto_program();
        Moto::start_with(|| Command::new(&program))
    }

    /// Starts moto_server like [`Moto::start`] with `env` added to its environment, e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT` (moto's `settings`: after that many requests every request
    /// is authenticated and checked against the caller's IAM policies).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let (_, launcher) = moto_program();
        Moto::start_launcher_with_env(&launcher, env)
    }

    /// Starts `launcher`, a Python script that runs moto_server with the same command line (as
    /// `scripts/moto_server.py` does, e.g. one that applies further corrections first), with the
    /// venv's python and `env` added to its environment.
    pub fn start_launcher_with_env(launcher: &Path, env: &[(&str, &str)]) -> Moto {
        let (python, _) = moto_program();
        assert!(launcher.is_file(), "{} is missing", launcher.display());
        Moto::start_with(|| {
            let mut cmd = Command::new(&python);
            cmd.arg(launcher);
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd
        })
    }

    fn start_with(command: impl Fn() -> Command) -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("moto log file");
            let mut cmd = command();
            let child = cmd
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("log handle"))
                .stderr(log.reopen().expect("log handle"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
            let mut moto = Moto { child, port, log };
            match moto.wait_ready() {
                Ok(()) => return moto,
                Err(why) => last = format!("{why}\n--- moto log ---\n{}", moto.log()),
            }
        }
        panic!("moto_server did not start: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited early with {status}"));
            }
            if let Ok(resp) = client
                .get(format!("{}/moto-api/data.json", self.url()))
                .send()
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no answer within {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`, for `--aws-endpoint-url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What moto printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Queues ListFindings answers: each distinct request (filters, page size, token) pops the
    /// next list, which then sticks to that request.
    pub fn seed_inspector_findings(&self, results: &[Vec<Value>]) {
        let resp = reqwest::blocking::Client::new()
            .post(format!(
                "{}/moto-api/static/inspector2/findings-results",
                self.url()
            ))
            .json(&json!({"results": results, "account_id": ACCOUNT, "region": REGION}))
            .send()
            .expect("seed inspector2 findings");
        assert!(
            resp.status().is_success(),
            "seeding findings answered {}: {}",
            resp.status(),
            resp.text().unwrap_or_default()
        );
    }

    /// One call to an AWS JSON-protocol API (`X-Amz-Target: <target>`), e.g. KMS
    /// (`TrentService.Sign`, JSON 1.1), EventBridge (`AWSEvents.PutRule`, JSON 1.1) or SQS
    /// (`AmazonSQS.ReceiveMessage`, JSON 1.0). `service` is the signing name moto routes on.
    /// Panics on a non-2xx answer.
    pub fn json_call(&self, service: &str, target: &str, json_version: &str, body: Value) -> Value {
        let resp = reqwest::blocking::Client::new()
            .post(self.url())
            .header("X-Amz-Target", target)
            .header(
                "Content-Type",
                format!("application/x-amz-json-{json_version}"),
            )
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(body.to_string())
            .send()
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        assert!(status.is_success(), "{target}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{target}: not JSON ({e}): {text}"))
    }

    /// One KMS JSON call.
    pub fn kms(&self, action: &str, body: Value) -> Value {
        self.json_call("kms", &format!("TrentService.{action}"), "1.1", body)
    }

    /// One EventBridge JSON call (`PutRule`, `PutTargets`, `PutEvents`, ...).
    pub fn events(&self, action: &str, body: Value) -> Value {
        self.json_call("events", &format!("AWSEvents.{action}"), "1.1", body)
    }

    /// One Secrets Manager JSON call (`CreateSecret`, `DeleteSecret`, ...).
    pub fn secretsmanager(&self, action: &str, body: Value) -> Value {
        self.json_call(
            "secretsmanager",
            &format!("secretsmanager.{action}"),
            "1.1",
            body,
        )
    }

    /// One SQS call in the JSON protocol that botocore and moto speak today.
    pub fn sqs(&self, action: &str, body: Value) -> Value {
        self.json_call("sqs", &format!("AmazonSQS.{action}"), "1.0", body)
    }

    /// One Step Functions JSON call (`CreateStateMachine`, `ListExecutions`, ...).
    pub fn sfn(&self, action: &str, body: Value) -> Value {
        self.json_call("states", &format!("AWSStepFunctions.{action}"), "1.0", body)
    }

    /// Makes moto's Step Functions run executions (its ASL interpreter, ported from LocalStack:
    /// Pass, Choice, Wait, Succeed and Fail states, with a real event history) instead of
    /// answering every execution with a canned history.
    pub fn execute_state_machines(&self) {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/moto-api/config", self.url()))
            .json(&json!({"stepfunctions": {"execute_state_machine": true}}))
            .send()
            .expect("configure moto's Step Functions");
        assert!(
            resp.status().is_success(),
            "moto-api/config answered {}",
            resp.status()
        );
    }

    /// Receives (and deletes) every message now in SQS queue `url`, waiting up to
    /// `wait_seconds` for the first one.
    pub fn receive_all(&self, url: &str, wait_seconds: u64) -> Vec<String> {
        let mut bodies = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(wait_seconds);
        loop {
            let answer = self.sqs(
                "ReceiveMessage",
                json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}),
            );
            let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
            for m in &messages {
                bodies.push(m["Body"].as_str().expect("Body").to_owned());
                self.sqs(
                    "DeleteMessage",
                    json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}),
                );
            }
            if messages.is_empty() && (!bodies.is_empty() || Instant::now() >= deadline) {
                return bodies;
            }
            if messages.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Creates a SIGN_VERIFY key of `spec` (`ECC_NIST_P256`, `RSA_2048`) and returns its id.
    pub fn create_signing_key(&self, spec: &str) -> String {
        let v = self.kms(
            "CreateKey",
            json!({"KeySpec": spec, "KeyUsage": "SIGN_VERIFY", "Description": "it"}),
        );
        v["KeyMetadata"]["KeyId"]
            .as_str()
            .expect("KeyId")
            .to_owned()
    }

    /// Creates an ENCRYPT_DECRYPT key (one that cannot sign).
    pub fn create_encryption_key(&self) -> String {
        let v = self.kms("CreateKey", json!({"KeyUsage": "ENCRYPT_DECRYPT"}));
        v["KeyMetadata"]["KeyId"]
            .as_str()
            .expect("KeyId")
            .to_owned()
    }

    /// The key's public key as PEM (`GetPublicKey` → DER SPKI → PEM).
    pub fn public_key_pem(&self, key_id: &str) -> String {
        let v = self.kms("GetPublicKey", json!({"KeyId": key_id}));
        let b64 = v["PublicKey"].as_str().expect("PublicKey");
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64 DER");
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
