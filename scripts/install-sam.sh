#!/usr/bin/env bash
# Installs the offline CloudFormation checkers, PyPI `cfn-lint` and `aws-sam-cli` (`sam validate
# --lint`, `sam build`), into their own venv `.work/sam-venv` (gitignored): SAM CLI pins many
# packages (boto3 among them) that must not fight moto's in `.work/venv`. Idempotent: does nothing
# when both programs already answer at the pinned versions. The integration tests look there
# first, then on PATH.
#
#   scripts/install-sam.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.work/sam-venv"
# Versions probed offline (../shared/reference/test-infra.md §6); bump together and re-run the infra tests.
CFN_LINT_VERSION="1.58.0"
SAM_CLI_VERSION="1.170.0"

installed() {
  [[ -x "${VENV}/bin/cfn-lint" && -x "${VENV}/bin/sam" ]] || return 1
  "${VENV}/bin/python" - "$CFN_LINT_VERSION" "$SAM_CLI_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
sys.exit(0 if (version("cfn-lint"), version("aws-sam-cli")) == (sys.argv[1], sys.argv[2]) else 1)
PY
}

if installed; then
  echo "install-sam: cfn-lint ${CFN_LINT_VERSION} and sam ${SAM_CLI_VERSION} already in ${VENV}"
  exit 0
fi

if [[ ! -x "${VENV}/bin/python" ]]; then
  if ! python3 -m venv "${VENV}"; then
    echo "install-sam: \`python3 -m venv\` failed; install the venv module (apt-get install -y python3-venv) and retry" >&2
    rm -rf "${VENV}"
    exit 1
  fi
fi

"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
  "cfn-lint==${CFN_LINT_VERSION}" "aws-sam-cli==${SAM_CLI_VERSION}"
installed || { echo "install-sam: cfn-lint/sam not usable after install" >&2; exit 1; }
echo "install-sam: installed ${VENV}/bin/cfn-lint and ${VENV}/bin/sam"
