#!/usr/bin/env bash
# Installs the Node tools the tests use into `.work/node` (gitignored), exactly as locked in
# scripts/node/package-lock.json:
#   - Node 22 itself, from npm's `node` package (aws-local-stepfunctions 3 needs Node >= 22; the
#     binary lands at .work/node/node_modules/.bin/node, whatever the system's node is);
#   - `aws-local-stepfunctions` (runs the real ASL locally), resolvable from .work/node/node_modules;
#   - `asl-validator` (.work/node/node_modules/.bin/asl-validator);
#   - `@sigstore/verify` and `@sigstore/bundle` (with their `@sigstore/core` and
#     `@sigstore/protobuf-specs`), resolvable from .work/node/node_modules: the independent verifier
#     of the pipeline's Sigstore bundles, scripts/node/verify-bundle.mjs (self-test:
#     scripts/node/verify-bundle.selftest.mjs).
# Needs `npm` on PATH (scripts/setup.sh node installs Debian's when missing). The lock file has no
# `resolved` URLs, so npm uses whatever registry it is configured with. Idempotent: does nothing
# when the installed lock file matches the committed one and the programs answer.
#
#   scripts/install-node.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${ROOT}/scripts/node"
DEST="${ROOT}/.work/node"
BIN="${DEST}/node_modules/.bin"

installed() {
  cmp -s "${SRC}/package-lock.json" "${DEST}/package-lock.json" \
    && cmp -s "${SRC}/package.json" "${DEST}/package.json" \
    && [[ -x "${BIN}/asl-validator" && -d "${DEST}/node_modules/aws-local-stepfunctions" ]] \
    && [[ -f "${DEST}/node_modules/@sigstore/verify/package.json" \
          && -f "${DEST}/node_modules/@sigstore/bundle/package.json" ]] \
    && [[ "$("${BIN}/node" --version 2>/dev/null)" == v22.* ]]
}

if installed; then
  echo "install-node: $("${BIN}/node" --version), asl-validator, aws-local-stepfunctions and @sigstore/verify already in ${DEST}"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "install-node: npm not found (scripts/setup.sh node installs it)" >&2; exit 1; }
mkdir -p "${DEST}"
cp "${SRC}/package.json" "${SRC}/package-lock.json" "${DEST}/"
# `npm ci` installs exactly the lock file (and removes a stale node_modules first).
(cd "${DEST}" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
installed || { echo "install-node: ${BIN}/node is not Node 22 or a tool is missing after npm ci" >&2; exit 1; }
echo "install-node: installed $("${BIN}/node" --version), asl-validator, aws-local-stepfunctions and @sigstore/verify into ${DEST}"
