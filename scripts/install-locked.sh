#!/usr/bin/env bash
# Installs a pinned, hash-checked requirements file (scripts/requirements/<name>.txt) into a
# virtualenv: `pip install --require-hashes --no-deps --only-binary :all:`, so every file pip
# installs is one whose SHA-256 the repository names, no dependency is resolved at install time
# and no sdist's build script runs. Idempotent: a stamp in the venv holds the SHA-256 of the
# requirements file last installed; when it matches, nothing runs.
#
#   scripts/install-locked.sh VENV REQUIREMENTS-FILE
#
# Regenerating a lock file: see scripts/requirements/README.md.
set -euo pipefail

VENV="$1"
REQS="$2"
NAME="$(basename "${REQS}")"
STAMP="${VENV}/.locked-$(basename "${REQS}" .txt).sha256"

[[ -f "${REQS}" ]] || { echo "install-locked: no such requirements file: ${REQS}" >&2; exit 1; }
want="$(sha256sum "${REQS}" | cut -d' ' -f1)"
if [[ -x "${VENV}/bin/python" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${want}" ]]; then
  exit 0
fi

if [[ ! -x "${VENV}/bin/python" ]]; then
  if ! python3 -m venv "${VENV}"; then
    echo "install-locked: \`python3 -m venv\` failed; install the venv module (apt-get install -y python3-venv) and retry" >&2
    rm -rf "${VENV}"
    exit 1
  fi
fi

echo "install-locked: installing ${NAME} (pinned, hash-checked) into ${VENV}" >&2
rm -f "${STAMP}"
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --no-deps --only-binary ':all:' -r "${REQS}"
"${VENV}/bin/python" -m pip check >/dev/null || {
  "${VENV}/bin/python" -m pip check >&2
  echo "install-locked: ${NAME} is not a complete, consistent set (pip check above)" >&2
  exit 1
}
printf '%s\n' "${want}" >"${STAMP}"
