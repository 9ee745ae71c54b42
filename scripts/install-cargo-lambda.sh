#!/usr/bin/env bash
# Installs `cargo-lambda` from PyPI (the official wheel with a prebuilt binary; it also brings
# `ziglang` for cross-compiling to arm64) into the project venv `.work/venv` (gitignored), next to
# moto. `cargo install cargo-lambda` would take about 20 minutes on two cores; the wheel takes
# seconds. `sam build` (BuildMethod rust-cargolambda) and `cargo lambda watch` need it on PATH:
# `export PATH="$PWD/.work/venv/bin:$PATH"`. Pinned and hash-checked from
# scripts/requirements/venv.txt (scripts/install-locked.sh). Idempotent.
#
#   scripts/install-cargo-lambda.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.work/venv"
# Probed in ../shared/reference/test-infra.md §5.
CARGO_LAMBDA_VERSION="1.9.2"

bash "${ROOT}/scripts/install-locked.sh" "${VENV}" "${ROOT}/scripts/requirements/venv.txt"
"${VENV}/bin/cargo-lambda" lambda --version | grep -qF "${CARGO_LAMBDA_VERSION}" || {
  echo "install-cargo-lambda: scripts/requirements/venv.txt does not pin cargo-lambda ${CARGO_LAMBDA_VERSION}" >&2
  exit 1
}
echo "install-cargo-lambda: ${VENV}/bin/cargo-lambda ${CARGO_LAMBDA_VERSION} (scripts/requirements/venv.txt)"
