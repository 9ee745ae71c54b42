#!/usr/bin/env bash
# Installs the offline CloudFormation checkers, PyPI `cfn-lint` and `aws-sam-cli` (`sam validate
# --lint`, `sam build`), into their own venv `.work/sam-venv` (gitignored): SAM CLI pins many
# packages (boto3 among them) that must not fight moto's in `.work/venv`. Idempotent: does nothing
# when the lock file is what was installed last. The integration tests look there
# first, then on PATH. Every package is pinned and hash-checked (scripts/requirements/sam-venv.txt,
# installed by scripts/install-locked.sh); bumping a version means regenerating that file.
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

bash "${ROOT}/scripts/install-locked.sh" "${VENV}" "${ROOT}/scripts/requirements/sam-venv.txt"
installed || {
  echo "install-sam: cfn-lint ${CFN_LINT_VERSION} / sam ${SAM_CLI_VERSION} not usable after installing scripts/requirements/sam-venv.txt (do the pins match?)" >&2
  exit 1
}
echo "install-sam: cfn-lint ${CFN_LINT_VERSION} and sam ${SAM_CLI_VERSION} in ${VENV} (scripts/requirements/sam-venv.txt)"
