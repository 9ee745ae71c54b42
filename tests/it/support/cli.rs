//! Runs the `promote` binary as a child process and captures what it says.

use serde_json::Value;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run that takes longer than this is killed and fails the test.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Environment variables that could leak the developer's setup into a test run.
const SCRUBBED_ENV: &[&str] = &[
    "PROMOTE_SRC_CREDS",
    "PROMOTE_DST_CREDS",
    "RUST_LOG",
    "REGISTRY_AUTH_FILE",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Path of the `promote` binary: `$PROMOTE_BIN`, else next to this test binary's profile dir
/// (`target/<profile>/deps/it-xxxx` -> `target/<profile>/promote`).
pub fn promote_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMOTE_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "PROMOTE_BIN={} does not exist; run `cargo build -p promote-cli` or fix PROMOTE_BIN",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("promote");
    assert!(
        bin.is_file(),
        "the `promote` binary is missing at {}; run `cargo build -p promote-cli` (same profile and \
         CARGO_TARGET_DIR as the tests) or set PROMOTE_BIN",
        bin.display()
    );
    bin
}

/// A `promote` invocation being assembled.
#[derive(Clone, Debug, Default)]
pub struct Promote {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// `promote --insecure-registry H1 ... --json copy SRC DST` (add more flags with [`Promote::arg`]).
pub fn copy(insecure_hosts: &[&str], src: &str, dst: &str) -> Promote {
    let mut p = Promote::default();
    for host in insecure_hosts {
        p = p.arg("--insecure-registry").arg(*host);
    }
    p.arg("--json").arg("copy").arg(src).arg(dst)
}

impl Promote {
    /// An invocation with exactly these arguments.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Self {
        Promote {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    /// Puts a global flag (e.g. `--debug`) first, before any subcommand.
    pub fn global(mut self, a: impl Into<String>) -> Self {
        self.args.insert(0, a.into());
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Sets an environment variable for the child (credentials go here, never in argv).
    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.to_owned(), v.into()));
        self
    }

    /// Runs it to completion (or [`RUN_TIMEOUT`]).
    pub fn run(&self) -> Run {
        let bin = promote_bin();
        // An empty docker config dir, so no ambient credential helper or auth file is used.
        let docker_config = tempfile::tempdir().expect("temp DOCKER_CONFIG");
        let mut cmd = Command::new(&bin);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("DOCKER_CONFIG", docker_config.path())
            .env("NO_COLOR", "1");
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let mut out = child.stdout.take().expect("stdout pipe");
        let mut err = child.stderr.take().expect("stderr pipe");
        let out_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for promote") {
                break status;
            }
            if started.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`promote {}` did not finish within {RUN_TIMEOUT:?}",
                    self.args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let duration = started.elapsed();
        let stdout =
            String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
        let stderr =
            String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
        Run {
            // A signal death has no code; -1 never matches an expected exit code.
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            duration,
            args: self.args.clone(),
        }
    }
}

/// The outcome of one `promote` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
    /// Wall time.
    pub duration: Duration,
    /// The arguments it ran with.
    pub args: Vec<String>,
}

impl Run {
    /// A human-readable account of the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`promote {}` exited {} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.duration,
            self.stdout,
            self.stderr
        )
    }

    /// stdout parsed as exactly one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not exactly one JSON object ({e})\n{}",
                self.describe()
            )
        })
    }

    /// Asserts success and returns the `--json` result object.
    pub fn assert_ok(&self) -> Value {
        assert_eq!(self.code, 0, "expected success\n{}", self.describe());
        let v = self.json();
        assert!(
            v.is_object(),
            "result is not an object\n{}",
            self.describe()
        );
        v
    }

    /// Asserts failure with exit code 1, the error line `error: <message> [<error_type>]` on
    /// stderr, and (when stdout is not empty, i.e. with `--json`) the JSON error object.
    pub fn assert_failed(&self, error_type: &str) {
        assert_eq!(self.code, 1, "expected exit code 1\n{}", self.describe());
        let suffix = format!("[{error_type}]");
        let line = self.error_line();
        assert!(
            line.trim_end().ends_with(&suffix),
            "the error line does not end with {suffix}\n{}",
            self.describe()
        );
        assert!(
            line.len() > "error: ".len() + suffix.len() + 1,
            "the error line has no message\n{}",
            self.describe()
        );
        if !self.stdout.trim().is_empty() {
            let v = self.json();
            assert_eq!(
                v["error"]["type"].as_str(),
                Some(error_type),
                "JSON error type\n{}",
                self.describe()
            );
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.is_empty(),
                "JSON error has no message\n{}",
                self.describe()
            );
        }
    }

    /// The `error: ...` line on stderr.
    pub fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no `error: ` line on stderr\n{}", self.describe()))
    }

    /// The error line on stderr, asserting it is the only non-empty line (no `-v`).
    pub fn only_stderr_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "a failure prints exactly one line on stderr\n{}",
            self.describe()
        );
        lines[0]
    }
}

/// `v[key]` as an unsigned number, panicking with the whole object when absent.
pub fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is missing or not a number in {v:#}"))
}

/// `v[key]` as a string, panicking with the whole object when absent.
pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is missing or not a string in {v:#}"))
}
