#!/usr/bin/env bash
# THE test command: installs what the tests need, then runs every check CI runs.
#
#   scripts/test.sh
#
# Order matters: the integration tests (tests/) run the `promote` binary found next to the test
# executable, so the binaries are built before `cargo test`. Honours CARGO_TARGET_DIR.
# Exits non-zero on the first failing step and names it (every test binary runs, so one
# failure does not hide the next).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME}/.cargo/bin/cargo" ]]; then
  export PATH="${HOME}/.cargo/bin:${PATH}"
fi

# The integration tests honour PROMOTE_BIN; the test command always tests the tree's own build.
unset PROMOTE_BIN

CURRENT=""
START=${SECONDS}
on_exit() {
  local rc=$?
  if ((rc != 0)); then
    printf '\ntest.sh: FAILED at step "%s" (exit %d) after %ds\n' "${CURRENT}" "${rc}" \
      $((SECONDS - START)) >&2
  fi
}
trap on_exit EXIT

step() {
  CURRENT="$1"
  shift
  local t0=${SECONDS}
  if [[ -t 1 ]]; then
    printf '\n\033[1m== %s\033[0m\n$ %s\n' "${CURRENT}" "$*"
  else
    printf '\n== %s\n$ %s\n' "${CURRENT}" "$*"
  fi
  "$@"
  printf -- '-- %s: ok (%ds)\n' "${CURRENT}" $((SECONDS - t0))
}

step "set-up" bash "${ROOT}/scripts/setup.sh"
step "format" cargo fmt --all -- --check
step "lint" cargo clippy --workspace --all-targets -- -D warnings
# The stand-in switches compile only with the feature (functions/common/Cargo.toml): lint them too.
# (Workspace-wide, so dependency features stay those of the workspace build: nothing but our
# crates recompiles.)
step "lint (stand-ins)" cargo clippy --workspace --all-targets --features promotion-lambda/stand-ins -- -D warnings
# bans, licenses, sources (deny.toml); advisories only where the RustSec DB can be fetched, and a
# line saying so where not.
step "supply chain" bash "${ROOT}/scripts/cargo-deny.sh"
step "build binaries" cargo build --workspace --bins
# The end-to-end tests run the Lambdas under `cargo lambda watch`, which starts each with
# `cargo run --bin <name>`; that selects one package, so its dependency features differ from the
# workspace build. Build them that way now, not inside a test's first invocation, with the feature
# the tests run them with (the stand-in switches: tests/it/support/pipeline.rs STAND_INS_FEATURE).
lambda_bins() {
  local f
  for f in copy-to-quarantine scan-gate promote-and-annotate sign retag-for-environment github-webhook sync-plan; do
    cargo build --bin "${f}" --features promotion-lambda/stand-ins
  done
}
step "build Lambda binaries" lambda_bins
# One function built as release and SAM build it (release profile, no features), which
# tests/it/stand_ins.rs starts with the stand-in switches set; built here so the test finds it fresh.
step "release build (scan-gate)" cargo build --release --locked -p scan-gate
step "tests" cargo test --workspace --no-fail-fast
step "tests (stand-ins)" cargo test --workspace --lib --features promotion-lambda/stand-ins

printf '\ntest.sh: all steps passed in %ds\n' $((SECONDS - START))
