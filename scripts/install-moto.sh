#!/usr/bin/env bash
# Installs moto_server (PyPI `moto[server]`), the local stand-in for Inspector2 (and ECR, KMS,
# STS), into the project venv `.work/venv` (gitignored). Idempotent: installs nothing when
# `.work/venv/bin/moto_server` is already there. The tests start it through
# scripts/moto_server.py (moto with KMS MessageType=DIGEST corrected), run with the
# venv's python; this script checks that the installed moto still has what that correction
# replaces. No moto release on PyPI implements DIGEST yet (5.2.5 hashes the digest again).
#
#   scripts/install-moto.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.work/venv"

check_kms_digest() {
  "${VENV}/bin/python" "${ROOT}/scripts/moto_server.py" --help >/dev/null
}

bash "${ROOT}/scripts/install-locked.sh" "${VENV}" "${ROOT}/scripts/requirements/venv.txt"
[[ -x "${VENV}/bin/moto_server" ]] || { echo "install-moto: no moto_server in ${VENV}" >&2; exit 1; }
check_kms_digest
echo "install-moto: ${VENV}/bin/moto_server $("${VENV}/bin/python" -c 'from importlib.metadata import version; print(version("moto"))') (scripts/requirements/venv.txt)"
