#!/usr/bin/env bash
# Installs `cargo-lambda` from PyPI (the official wheel with a prebuilt binary; it also brings
# `ziglang` for cross-compiling to arm64) into the project venv `.work/venv` (gitignored), next to
# moto. `cargo install cargo-lambda` would take about 20 minutes on two cores; the wheel takes
# seconds. `sam build` (BuildMethod rust-cargolambda) and `cargo lambda watch` need it on PATH:
# `export PATH="$PWD/.work/venv/bin:$PATH"`. Idempotent.
#
#   scripts/install-cargo-lambda.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.work/venv"
# Probed in ../shared/reference/test-infra.md §5.
CARGO_LAMBDA_VERSION="1.9.2"

if [[ -x "${VENV}/bin/cargo-lambda" ]] \
  && "${VENV}/bin/cargo-lambda" lambda --version 2>/dev/null | grep -qF "${CARGO_LAMBDA_VERSION}"; then
  echo "install-cargo-lambda: ${VENV}/bin/cargo-lambda ${CARGO_LAMBDA_VERSION} is already installed"
  exit 0
fi

if [[ ! -x "${VENV}/bin/python" ]]; then
  if ! python3 -m venv "${VENV}"; then
    echo "install-cargo-lambda: \`python3 -m venv\` failed; install the venv module (apt-get install -y python3-venv) and retry" >&2
    rm -rf "${VENV}"
    exit 1
  fi
fi

"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
  "cargo-lambda==${CARGO_LAMBDA_VERSION}"
"${VENV}/bin/cargo-lambda" lambda --version >/dev/null
echo "install-cargo-lambda: installed ${VENV}/bin/cargo-lambda"
