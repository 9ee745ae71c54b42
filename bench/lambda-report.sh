#!/usr/bin/env bash
# Lambda report: release binary sizes and cold starts of the five pipeline Lambdas, the
# GitHub webhook function and the sync state machine's sync-plan.
#
#   bench/lambda-report.sh [RUNS]
#
# 1. Builds `cargo build --release -p copy-to-quarantine -p scan-gate -p promote-and-annotate
#    -p sign -p retag-for-environment -p github-webhook -p sync-plan` (honours CARGO_TARGET_DIR, else cargo's default target/)
#    and prints each binary's size in bytes and MB (target < 15 MB); when [profile.release]
#    does not strip symbols (`strip = "debuginfo"` keeps the symbol table), also the size of a
#    `strip`ped copy.
# 2. Cold start: the time from spawning the binary to its first
#    `GET /2018-06-01/runtime/invocation/next` on a local Runtime API stand-in
#    (bench/lambda_report.py, 127.0.0.1, random port), median / max / min over RUNS runs
#    (default 10, after one untimed warm-up run per function; functions run round-robin),
#    plus the `init_ms` each function logs in its `"message":"ready"` line. Target < 50 ms,
#    judged on the median. Each process gets one event (`{}`, rejected as Input.Invalid; the
#    webhook rejects it as no function URL request) to prove the handshake, then is stopped. The environment is hermetic: dummy credentials,
#    AWS_REGION, repositories on 127.0.0.1:1, HOME in a temp dir (no ~/.aws), IMDS disabled.
#    `sign` and `retag-for-environment` call KMS while starting (KMS_KEY_ID), so they run against
#    a local moto_server (ECC_NIST_P256 SIGN_VERIFY key) and are reported separately: their
#    figures include sign's DescribeKey + GetPublicKey and retag's GetPublicKey round trips.
# 3. A summary table.
#
# Exit status: 0 when everything was measured, even if a target is missed (this is a report,
# not a test); non-zero when something could not be built or measured. Never reaches the
# internet; every process it starts is stopped on exit.
#
# Environment:
#   BENCH_RUNS=10          timed runs per function (or the first argument)
#   BENCH_WARMUP=1         untimed runs per function first (page cache, moto's first call)
#   BENCH_JSON=FILE        also write the figures as JSON
#   BENCH_KEEP_LOGS=DIR    keep every run's stdout/stderr (the functions' JSON logs) in DIR
#   LAMBDA_BIN_DIR=DIR     use the binaries in DIR instead of building (e.g. a downloaded build)
#   MOTO_SERVER=PATH       moto_server to use (default .work/venv/bin/moto_server, else PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "${ROOT}/scripts/lib.sh"

FUNCTIONS=(copy-to-quarantine scan-gate promote-and-annotate sign retag-for-environment github-webhook sync-plan)
RUNS="${1:-${BENCH_RUNS:-10}}"
WARMUP="${BENCH_WARMUP:-1}"
[[ "${RUNS}" =~ ^[1-9][0-9]*$ ]] || fail "RUNS must be a positive integer (got '${RUNS}')"
[[ "${WARMUP}" =~ ^[0-9]+$ ]] || fail "BENCH_WARMUP must be a non-negative integer"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/lambda-report.XXXXXX")"
MOTO_PID=""
HELPER_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local pid
  for pid in ${HELPER_PID} ${MOTO_PID}; do kill "${pid}" 2>/dev/null || true; done
  for pid in ${HELPER_PID} ${MOTO_PID}; do wait "${pid}" 2>/dev/null || true; done
  rm -rf "${TMP}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- 1. build ------------------------------------------------------------------------------
if [[ -n "${LAMBDA_BIN_DIR:-}" ]]; then
  BIN_DIR="${LAMBDA_BIN_DIR}"
else
  section "cargo build --release (${FUNCTIONS[*]})"
  pkgs=()
  for f in "${FUNCTIONS[@]}"; do pkgs+=(-p "${f}"); done
  (cd "${ROOT}" && cargo build --release "${pkgs[@]}")
  BIN_DIR="$(cargo_target_dir)/release"
fi
for f in "${FUNCTIONS[@]}"; do
  [[ -x "${BIN_DIR}/${f}" ]] || fail "release binary ${BIN_DIR}/${f} not found"
done
note "binaries: ${BIN_DIR}"

# --- moto for the two functions that call KMS at start ---------------------------------------
MOTO="${MOTO_SERVER:-}"
if [[ -z "${MOTO}" ]]; then
  if [[ -x "${ROOT}/.work/venv/bin/moto_server" ]]; then
    MOTO="${ROOT}/.work/venv/bin/moto_server"
  else
    MOTO="$(command -v moto_server || true)"
  fi
fi
[[ -n "${MOTO}" && -x "${MOTO}" ]] ||
  fail "moto_server not found (scripts/install-moto.sh installs it into .work/venv); sign and retag-for-environment need it"

moto_start() {
  local attempt port
  for attempt in 1 2 3; do
    port="$(free_port)"
    "${MOTO}" -H 127.0.0.1 -p "${port}" >"${TMP}/moto.log" 2>&1 &
    MOTO_PID=$!
    if wait_ready "${MOTO_PID}" 300 0.1 "http://127.0.0.1:${port}/moto-api/data.json"; then
      MOTO_URL="http://127.0.0.1:${port}"
      return 0
    fi
    MOTO_PID=""
    note "moto_server did not start on port ${port} (attempt ${attempt}): $(tail -n 3 "${TMP}/moto.log")"
  done
  fail "could not start ${MOTO}"
}

section "moto_server (KMS) for sign and retag-for-environment"
moto_start
KEY_ID="$(curl -fsS "${MOTO_URL}/" \
  -H 'X-Amz-Target: TrentService.CreateKey' \
  -H 'Content-Type: application/x-amz-json-1.1' \
  -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0' \
  -d '{"KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY","Description":"lambda-report"}' |
  jq -r '.KeyMetadata.KeyId // empty')" || true
[[ -n "${KEY_ID}" ]] || fail "moto CreateKey failed: $(tail -n 5 "${TMP}/moto.log")"
note "moto ${MOTO_URL}, KMS key ${KEY_ID} (ECC_NIST_P256, SIGN_VERIFY)"

# --- 2 and 3. sizes, cold starts, summary -------------------------------------------------------
section "sizes and cold starts"
args=(--bin-dir "${BIN_DIR}" --root "${ROOT}" --runs "${RUNS}" --warmup "${WARMUP}"
  --aws-endpoint "${MOTO_URL}" --kms-key-id "${KEY_ID}")
[[ -n "${BENCH_JSON:-}" ]] && args+=(--json "${BENCH_JSON}")
[[ -n "${BENCH_KEEP_LOGS:-}" ]] && args+=(--keep-logs "${BENCH_KEEP_LOGS}")
python3 "${ROOT}/bench/lambda_report.py" "${args[@]}" &
HELPER_PID=$!
status=0
wait "${HELPER_PID}" || status=$?
HELPER_PID=""
exit "${status}"
