//! The stand-in switches (`ECR_REGISTRY_ALIASES`, `INSECURE_REGISTRIES`,
//! `INSPECTOR_ASSUME_SCANNED`) are compiled out of the builds that ship: they exist only with the
//! cargo feature `stand-ins` of promotion-lambda (functions/common/Cargo.toml), which the tests and
//! the demo enable and release and SAM builds do not. A function built without it refuses to
//! start when one of them is set, naming it: changing a deployed function's configuration cannot
//! turn the gate off (assume scanned) or send the ECR token to another host (an alias, plain HTTP).

use crate::support::pipeline::{STAND_INS_FEATURE, root};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The function the release-build test starts: the gate, whose switch (`INSPECTOR_ASSUME_SCANNED`)
/// is the one that would let an unscanned image through.
const FUNCTION: &str = "scan-gate";

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo metadata --no-deps` of the workspace.
fn metadata() -> Value {
    let out = cargo()
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata JSON")
}

/// The feature is opt-in everywhere: not a default feature of promotion-lambda, and no package of
/// the workspace turns it on through a dependency (that would compile it into every build that
/// unifies with that package, release builds included). Only a command line enables it.
#[test]
fn only_the_command_line_enables_the_stand_ins_feature() {
    let (package, feature) = STAND_INS_FEATURE.split_once('/').expect("pkg/feature");
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let common = packages
        .iter()
        .find(|p| p["name"] == package)
        .expect("promotion-lambda in the workspace");
    assert!(
        common["features"][feature].is_array(),
        "{package} has no feature {feature:?}: {}",
        common["features"]
    );
    let defaults = common["features"]["default"].as_array();
    assert!(
        !defaults.is_some_and(|d| d.iter().any(|f| f == feature)),
        "{feature} must not be a default feature of {package}"
    );
    for p in packages {
        for (name, f) in p["features"].as_object().expect("features") {
            let enables = f.as_array().expect("feature list");
            assert!(
                !enables.iter().any(|e| e == STAND_INS_FEATURE),
                "{}'s feature {name:?} enables {STAND_INS_FEATURE}",
                p["name"]
            );
        }
        for d in p["dependencies"].as_array().expect("dependencies") {
            if d["name"] == package {
                let features = d["features"].as_array().expect("features");
                assert!(
                    !features.iter().any(|f| f == feature),
                    "{} depends on {package} with the feature {feature}",
                    p["name"]
                );
            }
        }
    }
}

/// What a started function printed and how it ended.
struct Started {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Starts `binary` with a complete, valid scan-gate configuration plus `extra`, outside Lambda
/// (no runtime API): it parses its configuration and builds its clients (no network: the SDK loads
/// lazily), then either logs "ready" and stops at the missing runtime API, or refuses to start.
fn start(binary: &PathBuf, extra: &[(&str, &str)]) -> Started {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "PIPELINE_REGISTRY",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        )
        .env("INGRESS_PREFIX", "incoming/")
        .env("QUARANTINE_PREFIX", "quarantine/")
        .env("TRUSTED_PREFIX", "trusted/")
        .env("GATE_POLICY", "block_severities: [CRITICAL, HIGH]\n")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the function");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("{} {extra:?} did not stop within 30 s", binary.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    Started {
        status,
        stdout,
        stderr,
    }
}

/// The JSON log lines with this `message`.
fn logged(out: &str, message: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

/// A release build of scan-gate, built exactly as SAM (`BuildMethod: rust-cargolambda`, which runs
/// `cargo lambda build --release` with no features; tests/it/infra.rs checks that its
/// `BuildProperties` name nothing but the binary) and bench/lambda-report.sh (`cargo build
/// --release -p <function>`) build it: the release profile (fat LTO), no `--features`. Started with
/// a valid configuration it is ready; with any stand-in switch set, to anything, it exits 1
/// before serving, and its error names the switch. The alias parser is not in the binary at all.
///
/// The release build is the expensive part (the whole dependency graph in the release profile,
/// then one fat-LTO codegen unit): from an empty release cache it took 13 min of CPU (12 min 14 s
/// user; 46 min wall at `nice -n 19 -j 1` on two shared, busy cores). scripts/test.sh builds it
/// in a step of its own before the tests, so here `cargo build` only finds it fresh; run alone,
/// this test builds it at the lowest CPU priority so that it does not starve the tests beside it.
#[test]
fn a_release_build_refuses_to_start_with_a_stand_in_switch_set() {
    let meta = metadata();
    let target = PathBuf::from(meta["target_directory"].as_str().expect("target_directory"));
    let t0 = Instant::now();
    let out = Command::new("nice")
        .args(["-n", "19"])
        .arg(cargo().get_program())
        .current_dir(root())
        .args(["build", "--release", "--locked", "-p", FUNCTION])
        .stdin(Stdio::null())
        .output()
        .expect("cargo build --release");
    assert!(
        out.status.success(),
        "cargo build --release -p {FUNCTION}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "release build of {FUNCTION}: {:.0} s (fresh if scripts/test.sh built it)",
        t0.elapsed().as_secs_f64()
    );
    let binary = target.join("release").join(FUNCTION);
    assert!(binary.is_file(), "{} missing", binary.display());
    // Compiled out, not just switched off: the alias parser's error text is not in the binary.
    let bytes = std::fs::read(&binary).expect("read the binary");
    let parser = b"is not host=<account>.dkr.ecr.<region>.amazonaws.com";
    assert!(
        !bytes.windows(parser.len()).any(|w| w == parser),
        "the release build contains the ECR_REGISTRY_ALIASES parser"
    );

    // The control: the same configuration without switches is a valid one.
    let plain = start(&binary, &[]);
    assert_eq!(
        logged(&plain.stdout, "ready").len(),
        1,
        "without switches the release build must be ready (then stop: no runtime API)\nstdout:\n{}\nstderr:\n{}",
        plain.stdout,
        plain.stderr
    );

    let cases: [(&str, &str); 4] = [
        ("INSPECTOR_ASSUME_SCANNED", "true"),
        ("INSPECTOR_ASSUME_SCANNED", "false"),
        (
            "ECR_REGISTRY_ALIASES",
            "attacker.example=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ),
        (
            "INSECURE_REGISTRIES",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ),
    ];
    for (name, value) in cases {
        let s = start(&binary, &[(name, value)]);
        let context = format!(
            "{name}={value}\nstdout:\n{}\nstderr:\n{}",
            s.stdout, s.stderr
        );
        assert_eq!(s.status.code(), Some(1), "must refuse to start: {context}");
        assert!(
            logged(&s.stdout, "ready").is_empty(),
            "became ready: {context}"
        );
        let errors = logged(&s.stdout, "configuration");
        let error = errors
            .first()
            .and_then(|e| e["fields"]["error"].as_str())
            .unwrap_or_else(|| panic!("no configuration error logged: {context}"));
        assert!(
            error.contains(name) && error.contains("stand-ins"),
            "the error must name {name} and the feature: {error}"
        );
    }
}
