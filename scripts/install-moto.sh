#!/usr/bin/env bash
# Installs moto_server (PyPI `moto[server]`), the local stand-in for Inspector2 (and ECR, KMS,
# STS), into the project venv `.work/venv` (gitignored). Idempotent: installs nothing when
# `.work/venv/bin/moto_server` is already there. The tests start it through
# scripts/moto_server_kms_digest.py (moto with KMS MessageType=DIGEST corrected), run with the
# venv's python; this script checks that the installed moto still has what that correction
# replaces. No moto release on PyPI implements DIGEST yet (5.2.5 hashes the digest again).
#
#   scripts/install-moto.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.work/venv"

check_kms_digest() {
  "${VENV}/bin/python" "${ROOT}/scripts/moto_server_kms_digest.py" --help >/dev/null
}

if [[ -x "${VENV}/bin/moto_server" ]]; then
  check_kms_digest
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
check_kms_digest
echo "install-moto: installed ${VENV}/bin/moto_server"
