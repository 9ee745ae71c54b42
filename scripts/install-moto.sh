#!/usr/bin/env bash
# Installs moto_server (PyPI `moto[server]`), the local stand-in for Inspector2 (and ECR, KMS,
# STS), into the project venv `.work/venv` (gitignored). Idempotent: does nothing when
# `.work/venv/bin/moto_server` is already there. The integration tests look there first, then on
# PATH.
#
#   scripts/install-moto.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.work/venv"

if [[ -x "${VENV}/bin/moto_server" ]]; then
  echo "install-moto: ${VENV}/bin/moto_server is already installed"
  exit 0
fi

if [[ ! -x "${VENV}/bin/python" ]]; then
  if ! python3 -m venv "${VENV}"; then
    echo "install-moto: \`python3 -m venv\` failed; install the venv module (apt-get install -y python3-venv) and retry" >&2
    rm -rf "${VENV}"
    exit 1
  fi
fi

"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]"
"${VENV}/bin/moto_server" --help >/dev/null
echo "install-moto: installed ${VENV}/bin/moto_server"
