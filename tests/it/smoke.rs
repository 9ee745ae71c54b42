//! `scripts/aws-smoke.sh`, the real-account smoke run, checked offline: it cannot run here (no
//! AWS account, no internet), so these tests prove what it does before it touches an account.
//!
//! - the script parses (`bash -n`) and passes `shellcheck` (installed by `scripts/setup.sh`);
//! - `--help` exits 0 and names every option; an unknown option exits 2 with the usage;
//! - it refuses (exit 2, one line naming what is missing) without credentials and a Region, under
//!   `CI=true` without `ECR_PROMOTION_SMOKE=1`, without a program it needs, and when
//!   `aws sts get-caller-identity` fails.
//!
//! The proof that a refusal made no AWS call: every run gets a hermetic PATH (a directory of fake
//! `aws`, `sam`, `cargo`, `cargo-lambda`, `skopeo`, `jq` and `python3`, and links to the few
//! system programs the script's first lines use), where the fake `aws` appends its arguments to a
//! log and answers like a rejected credential. So the script can reach no real AWS CLI, and a
//! run that got past its refusals would leave `sts get-caller-identity` in the log, as
//! [`a_failing_sts_call_is_refused_after_that_one_call`] shows it does.

use crate::support::pipeline::root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = "scripts/aws-smoke.sh";

/// Every option the script documents.
const OPTIONS: &[&str] = &[
    "--help",
    "--stack-name",
    "--region",
    "--timeout",
    "--keep",
    "--enable-blob-mounting",
    "--configure-registry-scanning",
];

/// The programs the script requires before its first AWS call, all faked.
const FAKED: &[&str] = &[
    "aws",
    "sam",
    "cargo",
    "cargo-lambda",
    "skopeo",
    "jq",
    "python3",
];

/// System programs the script runs up to its refusals, linked into the hermetic PATH.
const SYSTEM: &[&str] = &[
    "bash", "env", "dirname", "grep", "head", "sort", "cut", "tr", "cat", "od",
];

fn script() -> PathBuf {
    root().join(SCRIPT)
}

/// `program` on the test process's PATH.
fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| {
                p.metadata()
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
    })
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A hermetic PATH with fake tools and a log of the fake `aws`'s calls.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(&home).expect("home");
        let log = dir.path().join("aws-calls.log");
        std::fs::write(&log, "").expect("log");
        for program in SYSTEM {
            let target = which(program)
                .unwrap_or_else(|| panic!("`{program}` is not on PATH; the smoke tests need it"));
            std::os::unix::fs::symlink(&target, bin.join(program)).expect("symlink");
        }
        for program in FAKED {
            let body = match *program {
                "aws" => format!(
                    "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n\
                     echo 'An error occurred (InvalidClientTokenId) when calling the \
                     GetCallerIdentity operation: the fake aws of tests/it/smoke.rs' >&2\n\
                     exit 255\n",
                    log.display()
                ),
                "sam" => "#!/bin/sh\necho 'SAM CLI, version 1.170.0'\n".to_owned(),
                _ => "#!/bin/sh\nexit 0\n".to_owned(),
            };
            write_executable(&bin.join(program), &body);
        }
        Sandbox { dir }
    }

    fn remove(&self, program: &str) {
        std::fs::remove_file(self.dir.path().join("bin").join(program)).expect("remove fake");
    }

    /// Runs the script with `args` and exactly `env` (plus PATH and HOME): `env -i`.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let bin = self.dir.path().join("bin");
        let mut cmd = Command::new(bin.join("bash"));
        cmd.arg(script())
            .args(args)
            .env_clear()
            .env("PATH", &bin)
            .env("HOME", self.dir.path().join("home"))
            .current_dir(self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"))
    }

    /// The fake `aws`'s calls, one line each.
    fn aws_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("aws-calls.log"))
            .expect("log")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A refusal: exit 2, nothing on stdout, one line on stderr, which is returned.
fn refusal(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    assert!(out.stdout.is_empty(), "{}", describe(out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{}", describe(out));
    assert!(stderr.contains("refusing to start"), "{}", describe(out));
    stderr
}

/// Credentials and a Region as a developer's shell would have them.
const CREDENTIALS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("AWS_REGION", "eu-west-1"),
];

#[test]
fn the_script_parses_and_passes_shellcheck() {
    let out = Command::new("bash")
        .arg("-n")
        .arg(script())
        .output()
        .expect("bash -n");
    assert!(out.status.success(), "bash -n {SCRIPT}: {}", describe(&out));
    // scripts/setup.sh installs it (Debian package `shellcheck`).
    crate::support::require_program("shellcheck", "shellcheck");
    let out = Command::new("shellcheck")
        .arg(script())
        .output()
        .expect("shellcheck");
    assert!(
        out.status.success(),
        "shellcheck {SCRIPT}: {}",
        describe(&out)
    );
}

#[test]
fn help_exits_0_and_names_every_option() {
    let sandbox = Sandbox::new();
    for flag in ["--help", "-h"] {
        let out = sandbox.run(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        for option in OPTIONS {
            assert!(
                help.contains(option),
                "{flag} does not name {option}:\n{help}"
            );
        }
        assert!(help.contains("ECR_PROMOTION_SMOKE"), "{help}");
    }
    assert!(sandbox.aws_calls().is_empty(), "{:?}", sandbox.aws_calls());
}

#[test]
fn an_unknown_option_exits_2_with_the_usage() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--no-such-option"], CREDENTIALS);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown option: --no-such-option") && stderr.contains("Usage:"),
        "{}",
        describe(&out)
    );
    // A value that is not one is refused the same way.
    let out = sandbox.run(&["--timeout", "soon"], CREDENTIALS);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(sandbox.aws_calls().is_empty(), "{:?}", sandbox.aws_calls());
}

#[test]
fn without_credentials_and_a_region_it_refuses_before_any_aws_call() {
    let sandbox = Sandbox::new();
    let line = refusal(&sandbox.run(&[], &[]));
    assert!(
        line.contains("credentials") && line.contains("Region"),
        "the refusal does not name credentials and Region: {line}"
    );
    assert!(
        sandbox.aws_calls().is_empty(),
        "aws was called: {:?}",
        sandbox.aws_calls()
    );

    // Half of each is still missing: a key without its secret, no Region.
    let line = refusal(&sandbox.run(&[], &[("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")]));
    assert!(
        line.contains("AWS_SECRET_ACCESS_KEY is missing") && line.contains("Region"),
        "{line}"
    );
    // Credentials without a Region.
    let line = refusal(&sandbox.run(&[], &[("AWS_PROFILE", "sandbox")]));
    assert!(
        line.contains("Region") && !line.contains("credentials"),
        "{line}"
    );
    // A Region without credentials.
    let line = refusal(&sandbox.run(&["--region", "eu-west-1"], &[]));
    assert!(
        line.contains("credentials") && !line.contains("Region ("),
        "{line}"
    );
    assert!(sandbox.aws_calls().is_empty(), "{:?}", sandbox.aws_calls());
}

#[test]
fn under_ci_without_the_opt_in_it_refuses_before_any_aws_call() {
    let sandbox = Sandbox::new();
    let mut env = CREDENTIALS.to_vec();
    env.push(("CI", "true"));
    let line = refusal(&sandbox.run(&[], &env));
    assert!(line.contains("ECR_PROMOTION_SMOKE=1"), "{line}");
    // An opt-in other than 1 is no opt-in.
    env.push(("ECR_PROMOTION_SMOKE", "yes"));
    refusal(&sandbox.run(&[], &env));
    assert!(
        sandbox.aws_calls().is_empty(),
        "aws was called: {:?}",
        sandbox.aws_calls()
    );
}

#[test]
fn a_missing_program_is_named_before_any_aws_call() {
    let sandbox = Sandbox::new();
    sandbox.remove("skopeo");
    sandbox.remove("cargo-lambda");
    let line = refusal(&sandbox.run(&[], CREDENTIALS));
    assert!(
        line.contains("missing program(s): cargo-lambda skopeo"),
        "{line}"
    );
    assert!(sandbox.aws_calls().is_empty(), "{:?}", sandbox.aws_calls());
}

/// The other refusals' empty logs mean something: past them, the script's first AWS call is
/// `sts get-caller-identity`, which the fake `aws` logs (and fails, so the script stops there);
/// and under CI the opt-in lets it through.
#[test]
fn a_failing_sts_call_is_refused_after_that_one_call() {
    let sandbox = Sandbox::new();
    let mut env = CREDENTIALS.to_vec();
    env.push(("CI", "true"));
    env.push(("ECR_PROMOTION_SMOKE", "1"));
    let line = refusal(&sandbox.run(&[], &env));
    assert!(
        line.contains("aws sts get-caller-identity failed")
            && line.contains("InvalidClientTokenId"),
        "{line}"
    );
    assert_eq!(
        sandbox.aws_calls(),
        ["sts get-caller-identity --output json"]
    );
}
