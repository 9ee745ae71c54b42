//! Test support: real loopback registries, image fixtures built over plain HTTP, and a runner for
//! the `promote` binary.
//!
//! Nothing here uses `promotion-core`: fixtures are written straight to the registry's HTTP API so
//! that a bug in the code under test cannot also hide in the fixtures.

pub mod cfn;
pub mod cli;
pub mod ecr_front;
pub mod images;
pub mod inspector;
pub mod moto;
pub mod pipeline;
pub mod registry;
pub mod sigstore;
pub mod sigstore_js;
pub mod standin;

use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::process::Command;

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest.
pub fn digest_hex(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"))
}

/// Panics, naming the program and how to install it, when `program` is not on PATH.
///
/// A missing tool must fail the test loudly: a silently skipped test is a defect (docs/DESIGN.md).
pub fn require_program(program: &str, apt_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not on PATH; the integration tests need it. Run `scripts/test.sh`, which \
         installs it (apt package `{apt_package}`), or `apt-get install -y {apt_package}`."
    );
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs a helper program to completion, panicking with its output when it fails.
pub fn run_checked(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
