#!/usr/bin/env bash
# What a promotion costs, measured: the real state machine and the five release Lambdas on local
# stand-ins, each function confined like a Lambda of M MB, for several memory sizes.
#
#   bench/cost-bench.sh                          # as root (it creates cgroups)
#   COST_MEMORY_SIZES="128 512" COST_LAYER_MIB=4 BENCH_JSON=cost.json bench/cost-bench.sh
#
# 1. Builds the five functions in release with the stand-in switches compiled in (the only
#    difference from a SAM build: `--features promotion-lambda/stand-ins`, which reads
#    ECR_REGISTRY_ALIASES and INSECURE_REGISTRIES; INSPECTOR_ASSUME_SCANNED is not set: the
#    invoker's proxy answers ListCoverage, which moto lacks), in their own
#    target directory so that this build does not fight others:
#    `CARGO_TARGET_DIR=${COST_TARGET_DIR:-/work/target-cost} nice cargo build --release ...`
#    (fat LTO: ~8-10 minutes cold on 2 cores). LAMBDA_BIN_DIR=DIR uses binaries built elsewhere
#    (they must have the stand-ins feature).
# 2. Per run (COST_RUNS) and memory size M (COST_MEMORY_SIZES), a fresh stack, as tests/it/support/pipeline.rs started
#    it before the ECR-faithful front: moto_server (scripts/moto_server.py: KMS with DIGEST corrected, Inspector2
#    findings, moto's own short ECR tokens), one docker-registry on 127.0.0.1 (random port; basic auth whose
#    password is moto's ECR token; HTTPS with a throwaway CA unless COST_TLS=0) holding the
#    ingress, quarantine and trusted repositories, a signing key and an approver key in KMS, a
#    3-platform image pushed to incoming/app:1.0.0 (scripts/seed_image.py; default 2 layers x
#    16 MiB of random data per platform) and its Inspector findings (1 MEDIUM, 1 LOW on one
#    platform: the policy blocks CRITICAL and HIGH, so it passes). With COST_UPSTREAM=1 also an
#    "upstream" registry (another account's ECR to the functions: ECR_REGISTRY_ALIASES and
#    SOURCE_REGISTRIES name it) holding vendor/tool:2.0.0, an image of the same shape.
# 3. bench/lambda_invoker.py (a stand-in for the Lambda Runtime API, see its header) starts each
#    release binary ONCE in its own cgroup limited to M MiB and M/1,769 of one CPU (CFS quota,
#    period 100 ms; 128 MB = 7236/100000 us), serves each its own Runtime API, and serves the
#    invoke URLs that tests/sfn/run.mjs POSTs to. Every function's AWS_ENDPOINT_URL goes through
#    a counting proxy in the invoker (KMS, Inspector2 and ECR calls per function and invocation);
#    the registry's access log counts the registry requests (manifest PUT = ECR PutImage).
# 4. Runs the REAL statemachine/promotion.asl.json on aws-local-stepfunctions (tests/sfn/run.mjs)
#    from an ECR push event, then the same event again (the idempotent repeat; COST_REPEAT=0
#    skips it); both must succeed, and trusted/app must then carry dev-1.0.0. The push is copied
#    within one registry, so copy-to-quarantine MOUNTS its blobs (as ECR does with blob mounting
#    on): it moves manifests, not layers. So that the copy of layers is measured too, a third
#    execution (COST_UPSTREAM=1) promotes vendor/tool:2.0.0 from the upstream registry by a manual
#    request: there copy-to-quarantine streams every blob over TLS.
# 5. bench/cost_report.py prints, per step and memory size: billed duration, GB-s, CPU-s, peak
#    memory; the calls per promotion (state transitions, KMS, Inspector, ECR PutImage and the
#    other registry requests); the cost per promotion at the list prices it states; and the
#    memory it recommends per function (the rule is printed with it).
#
# Exit status: 0 when everything was measured; non-zero when a build, a stand-in, an execution
# or a measurement failed. Every process it starts is stopped on exit and every cgroup removed.
# Never reaches the internet or AWS: everything is on 127.0.0.1 with random ports.
#
# Environment:
#   COST_MEMORY_SIZES="128 256 512 1024"  memory sizes to measure (MB; CPU share M/1769)
#   COST_RUNS=3                           runs per size (sizes interleaved; medians reported)
#   COST_PLATFORMS="linux/amd64 linux/arm64/v8 linux/arm/v7"
#   COST_LAYERS=2 COST_LAYER_MIB=16       layers per platform and MiB of random data per layer
#   COST_REPEAT=1                         also run the same event again (idempotent repeat)
#   COST_UPSTREAM=1                       also promote from an upstream registry (copy streams)
#   COST_TLS=1                            registry over HTTPS (0: plain HTTP, INSECURE_REGISTRIES)
#   COST_GATE_POLLS=5                     gate polls assumed on AWS for the cost (see the report)
#   COST_STEP_BOUND_MS=3000               duration bound of a step that moves no layers
#   COST_COPY_BOUND_S=600 COST_COPY_BOUND_GIB=3
#                                         copy's bound: an image of that many GiB, extrapolated
#                                         from the measured CPU-s per GiB, copied within that time
#   COST_CGROUP=auto                      or v1 / v2
#   COST_TARGET_DIR=/work/target-cost     cargo target directory of the release build
#   LAMBDA_BIN_DIR=DIR                    use these binaries instead of building
#   COST_KEEP=DIR                         keep every log, stats file and execution output in DIR
#   BENCH_JSON=FILE                       also write the figures as JSON
#
# Needs root (cgroups) and what `scripts/setup.sh system rust moto node` installs.
# Not part of the test command: it takes a few minutes per memory size after the build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "${ROOT}/scripts/lib.sh"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME}/.cargo/bin/cargo" ]]; then
  export PATH="${HOME}/.cargo/bin:${PATH}"
fi

FUNCTIONS=(copy-to-quarantine scan-gate promote-and-annotate sign retag-for-environment)
# The Task Resource substitutions of statemachine/promotion.asl.json, in FUNCTIONS' order.
SUBSTITUTIONS=(CopyToQuarantineFunctionArn ScanGateFunctionArn PromoteAndAnnotateFunctionArn
  SignFunctionArn RetagForEnvironmentFunctionArn)
# infra/template.yaml's timeouts: the invoker stops a function that overruns its own.
declare -A TIMEOUT_S=([copy-to-quarantine]=900 [scan-gate]=120 [promote-and-annotate]=900
  [sign]=120 [retag-for-environment]=120)
ACCOUNT=123456789012
REGION=us-east-1
APPROVAL_TYPE="application/vnd.ecr-promotion.approval.v1+json"

SIZES="${COST_MEMORY_SIZES:-128 256 512 1024}"
RUNS="${COST_RUNS:-3}"
PLATFORMS="${COST_PLATFORMS:-linux/amd64 linux/arm64/v8 linux/arm/v7}"
LAYERS="${COST_LAYERS:-2}"
LAYER_MIB="${COST_LAYER_MIB:-16}"
REPEAT="${COST_REPEAT:-1}"
UPSTREAM="${COST_UPSTREAM:-1}"
UPSTREAM_ACCOUNT=210987654321
TLS="${COST_TLS:-1}"
GATE_POLLS="${COST_GATE_POLLS:-5}"
STEP_BOUND_MS="${COST_STEP_BOUND_MS:-3000}"
COPY_BOUND_S="${COST_COPY_BOUND_S:-600}"
COPY_BOUND_GIB="${COST_COPY_BOUND_GIB:-3}"
require_positive RUNS LAYERS LAYER_MIB GATE_POLLS STEP_BOUND_MS COPY_BOUND_S COPY_BOUND_GIB
for m in ${SIZES}; do
  if ! [[ "${m}" =~ ^[1-9][0-9]*$ ]] || ((m < 128 || m > 10240)); then
    fail "COST_MEMORY_SIZES: ${m} is not a Lambda memory size (128-10240 MB)"
  fi
done
[[ -n "${SIZES// /}" ]] || fail "COST_MEMORY_SIZES is empty"
[[ "${REPEAT}" == 0 || "${REPEAT}" == 1 ]] || fail "COST_REPEAT must be 0 or 1"
[[ "${UPSTREAM}" == 0 || "${UPSTREAM}" == 1 ]] || fail "COST_UPSTREAM must be 0 or 1"
[[ "${TLS}" == 0 || "${TLS}" == 1 ]] || fail "COST_TLS must be 0 or 1"
[[ ${EUID} -eq 0 ]] || fail "needs root: it creates cgroups"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cost-bench.XXXXXX")"
MOTO_PID=""
INVOKER_PID=""
CGROUP_LIST="${TMP}/cgroups.txt"
: >"${CGROUP_LIST}"
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local status=$? d pid
  stop_invoker
  stop_moto
  registry_stop_all
  # The invoker removes its cgroups; when it could not (killed hard), end what is left in them
  # (the functions it started) and remove them here.
  if [[ -s "${CGROUP_LIST}" ]]; then
    while read -r d; do
      [[ -d "${d}" ]] || continue
      while read -r pid; do [[ -n "${pid}" ]] && kill -9 "${pid}" 2>/dev/null; done <"${d}/cgroup.procs"
      for _ in $(seq 1 30); do rmdir "${d}" 2>/dev/null && break; sleep 0.1; done
      [[ -d "${d}" ]] && note "warning: could not remove cgroup ${d}"
    done < <(tac "${CGROUP_LIST}")
  fi
  if [[ -n "${COST_KEEP:-}" ]]; then
    mkdir -p "${COST_KEEP}"
    cp -a "${TMP}/." "${COST_KEEP}/" 2>/dev/null || true
    note "logs and figures kept in ${COST_KEEP}"
  fi
  rm -rf "${TMP}"
  exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

stop_invoker() {
  [[ -n "${INVOKER_PID}" ]] || return 0
  kill -TERM "${INVOKER_PID}" 2>/dev/null || true
  wait "${INVOKER_PID}" 2>/dev/null || INVOKER_STATUS=$?
  INVOKER_PID=""
}

stop_moto() {
  [[ -n "${MOTO_PID}" ]] || return 0
  kill "${MOTO_PID}" 2>/dev/null || true
  wait "${MOTO_PID}" 2>/dev/null || true
  MOTO_PID=""
}

# --- set-up and build ------------------------------------------------------------------------

section "Set up"
bash "${ROOT}/scripts/setup.sh" system rust moto node >&2
PYTHON="${ROOT}/.work/venv/bin/python"
NODE="${ROOT}/.work/node/node_modules/.bin/node"
[[ -x "${PYTHON}" && -x "${ROOT}/.work/venv/bin/moto_server" ]] || fail "moto_server missing in .work/venv (scripts/setup.sh moto)"
[[ -x "${NODE}" ]] || fail "node missing in .work/node (scripts/setup.sh node)"
command -v openssl >/dev/null 2>&1 || [[ "${TLS}" == 0 ]] || fail "openssl not found (COST_TLS=0 does without)"

if [[ -n "${LAMBDA_BIN_DIR:-}" ]]; then
  BIN_DIR="${LAMBDA_BIN_DIR}"
else
  TARGET="${COST_TARGET_DIR:-/work/target-cost}"
  section "cargo build --release --features promotion-lambda/stand-ins (CARGO_TARGET_DIR=${TARGET})"
  bins=()
  for f in "${FUNCTIONS[@]}"; do bins+=(--bin "${f}"); done
  (cd "${ROOT}" && CARGO_TARGET_DIR="${TARGET}" nice cargo build --release \
    --features promotion-lambda/stand-ins "${bins[@]}")
  BIN_DIR="${TARGET}/release"
fi
for f in "${FUNCTIONS[@]}"; do
  [[ -x "${BIN_DIR}/${f}" ]] || fail "release binary ${BIN_DIR}/${f} not found"
done
echo "binaries: ${BIN_DIR}"
echo "machine:  $(nproc) cores, $(uname -m), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "image:    ${PLATFORMS// /, }; ${LAYERS} layers x ${LAYER_MIB} MiB each"
echo "sizes:    ${SIZES} MB, ${RUNS} run(s) each; registry over $([[ "${TLS}" == 1 ]] && echo HTTPS || echo 'plain HTTP')"

# --- helpers ---------------------------------------------------------------------------------

# moto_call TARGET SERVICE BODY: one AWS JSON 1.1 call to moto (not through the code under test).
moto_call() {
  curl -fsS "${MOTO_URL}/" -H "X-Amz-Target: $1" -H 'Content-Type: application/x-amz-json-1.1' \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/${REGION}/$2/aws4_request, SignedHeaders=host, Signature=0" \
    -d "$3"
}

moto_start() {
  local attempt port
  for attempt in 1 2 3; do
    port="$(free_port)"
    # moto's own short ECR token: the bench's docker-registry keeps it in htpasswd (bcrypt).
    MOTO_ECR_TOKENS=moto "${PYTHON}" "${ROOT}/scripts/moto_server.py" -H 127.0.0.1 -p "${port}" \
      >"${RUN_DIR}/moto.log" 2>&1 &
    MOTO_PID=$!
    if wait_ready "${MOTO_PID}" 600 0.1 "http://127.0.0.1:${port}/moto-api/data.json"; then
      MOTO_URL="http://127.0.0.1:${port}"
      return 0
    fi
    MOTO_PID=""
    note "moto_server did not start on port ${port} (attempt ${attempt}): $(tail -n 3 "${RUN_DIR}/moto.log")"
  done
  fail "could not start moto_server"
}

# registry_up DIR VAR [tls]: a docker-registry with basic auth (DIR/htpasswd) and its access log
# in DIR/access.log (stdout: one line per request), plain HTTP or, with "tls", HTTPS.
registry_up() {
  local dir="$1" var="$2" mode="${3:-}" port pid attempt tls="" scheme=http ca=()
  if [[ "${mode}" == tls ]]; then
    tls=", tls: {certificate: ${PKI}/server.crt, key: ${PKI}/server.key}"
    scheme=https
    ca=(--cacert "${PKI}/ca.crt")
  fi
  mkdir -p "${dir}/data"
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    cat >"${dir}/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: ${dir}/data}, delete: {enabled: true}, cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:${port}, secret: cost-bench${tls}}
auth: {htpasswd: {realm: basic-realm, path: ${dir}/htpasswd}}
EOF
    docker-registry serve "${dir}/config.yml" >>"${dir}/access.log" 2>>"${dir}/registry.log" &
    pid=$!
    REGISTRY_PIDS+=("${pid}")
    # /v2/ answers 401 without credentials: ready means "answers at all".
    for _ in $(seq 1 100); do
      curl -sS -o /dev/null "${ca[@]+"${ca[@]}"}" "${scheme}://127.0.0.1:${port}/v2/" 2>/dev/null && break
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.05
    done
    if curl -sS -o /dev/null "${ca[@]+"${ca[@]}"}" "${scheme}://127.0.0.1:${port}/v2/" 2>/dev/null; then
      printf -v "${var}" '127.0.0.1:%s' "${port}"
      echo "${pid}" >"${dir}/pid"
      return 0
    fi
    kill "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
    note "registry did not start on port ${port} (attempt ${attempt}): $(tail -n 3 "${dir}/registry.log")"
  done
  fail "could not start docker-registry in ${dir}"
}


# show_logs: the last lines each function logged (RUN_DIR is removed on exit unless COST_KEEP).
show_logs() {
  local f
  for f in "${RUN_DIR}"/logs/*.log; do
    [[ -f "${f}" ]] || continue
    note "--- ${f##*/} (last lines; COST_KEEP=DIR keeps everything)"
    tail -n 5 "${f}" >&2
  done
}

# execute NAME JOB: runs the state machine on JOB (tests/sfn/run.mjs's job file) through the
# invoker, the invocations labelled NAME; writes RUN_DIR/NAME.json.
execute() {
  local name="$1" job="$2" status
  curl -fsS -X POST --data-binary "${name}" "${INVOKER_BASE}/_bench/label" >/dev/null
  LOCAL_NODE_DIR="${ROOT}/.work/node" "${NODE}" "${ROOT}/tests/sfn/run.mjs" "${job}" \
    >"${RUN_DIR}/${name}.json" 2>"${RUN_DIR}/${name}.stderr" ||
    { show_logs; fail "tests/sfn/run.mjs failed (${name}, ${M} MB): $(tail -n 5 "${RUN_DIR}/${name}.stderr")"; }
  status="$(jq -r .status "${RUN_DIR}/${name}.json")"
  printf '  %-10s %s in %s ms: %s\n' "${name}" "${status}" "$(jq -r .durationMs "${RUN_DIR}/${name}.json")" \
    "$(jq -r '[.states[] | select(.type == "Task") | "\(.name) \(.ms)"] | join(", ")' "${RUN_DIR}/${name}.json")"
  [[ "${status}" == SUCCEEDED ]] || show_logs
  [[ "${status}" == SUCCEEDED ]] ||
    fail "${name} at ${M} MB: ${status} $(jq -r '"\(.error): \(.cause)"' "${RUN_DIR}/${name}.json" | head -c 600)"
}

if [[ "${TLS}" == 1 ]]; then
  PKI="${TMP}/pki"
  make_ca "${PKI}" cost-bench
fi

# --- one stack per run and memory size -------------------------------------------------------

for R in $(seq 1 "${RUNS}"); do
  for M in ${SIZES}; do
    RUN_DIR="${TMP}/m${M}/r${R}"
    mkdir -p "${RUN_DIR}/logs" "${RUN_DIR}/home"
    section "${M} MB, run ${R}/${RUNS}: fresh stand-ins, seed, executions"
    moto_start
    token="$(moto_call AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken ecr '{}' |
      jq -r '.authorizationData[0].authorizationToken' | base64 -d)"
    REG_USER="${token%%:*}"
    REG_PASS="${token#*:}"
    [[ -n "${REG_USER}" && -n "${REG_PASS}" && ${#REG_PASS} -le 72 ]] ||
      fail "moto's ECR token is not usable as a bcrypt password"
    mkdir -p "${RUN_DIR}/registry"
    # bcrypt's lowest cost: the registry checks the password on every request, and the stand-in's
    # own hashing should weigh as little as possible in the functions' durations.
    htpasswd -BbcC 4 "${RUN_DIR}/registry/htpasswd" "${REG_USER}" "${REG_PASS}" 2>/dev/null ||
      fail "htpasswd could not write ${RUN_DIR}/registry/htpasswd"
    KEY_ID="$(moto_call TrentService.CreateKey kms '{"KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY","Description":"cost-bench signing"}' | jq -r .KeyMetadata.KeyId)"
    APPROVER_KEY="$(moto_call TrentService.CreateKey kms '{"KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY","Description":"cost-bench approver"}' | jq -r .KeyMetadata.KeyId)"

    # Seed over plain HTTP (seed_image.py speaks nothing else), then serve the same storage.
    registry_up "${RUN_DIR}/registry" SEED_HOST
    plat_args=()
    for p in ${PLATFORMS}; do plat_args+=(--platform "${p}"); done
    python3 "${ROOT}/scripts/seed_image.py" --registry "${SEED_HOST}" --repository incoming/app \
      --tag 1.0.0 "${plat_args[@]}" --layers "${LAYERS}" --layer-bytes $((LAYER_MIB * 1048576)) \
      --creds "${REG_USER}:${REG_PASS}" >"${RUN_DIR}/seed.json"
    registry_stop "${RUN_DIR}/registry"
    mode=""
    [[ "${TLS}" == 1 ]] && mode=tls
    registry_up "${RUN_DIR}/registry" HOST "${mode}"
    UP_HOST=""
    if [[ "${UPSTREAM}" == 1 ]]; then
      # Another account's ECR: its password is the token moto hands out for that registry id.
      up_token="$(moto_call AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken ecr \
        "{\"registryIds\": [\"${UPSTREAM_ACCOUNT}\"]}" |
        jq -r '.authorizationData[0].authorizationToken' | base64 -d)"
      mkdir -p "${RUN_DIR}/upstream"
      htpasswd -BbcC 4 "${RUN_DIR}/upstream/htpasswd" "${up_token%%:*}" "${up_token#*:}" 2>/dev/null ||
        fail "htpasswd could not write ${RUN_DIR}/upstream/htpasswd"
      registry_up "${RUN_DIR}/upstream" SEED_HOST
      python3 "${ROOT}/scripts/seed_image.py" --registry "${SEED_HOST}" --repository vendor/tool \
        --tag 2.0.0 "${plat_args[@]}" --layers "${LAYERS}" --layer-bytes $((LAYER_MIB * 1048576)) \
        --creds "${up_token}" >"${RUN_DIR}/seed-upstream.json"
      registry_stop "${RUN_DIR}/upstream"
      registry_up "${RUN_DIR}/upstream" UP_HOST "${mode}"
    fi
    : >"${RUN_DIR}/registry/access.log" # only the pipeline's requests from here on
    DIGEST="$(jq -r .digest "${RUN_DIR}/seed.json")"
    FIRST_PLATFORM="$(jq -r '.platforms[0].digest' "${RUN_DIR}/seed.json")"
    echo "  registry ${HOST}, moto ${MOTO_URL}, incoming/app:1.0.0 @${DIGEST:0:19} ($(jq -r .blob_bytes "${RUN_DIR}/seed.json") blob bytes)"
    [[ -z "${UP_HOST}" ]] || echo "  upstream ${UP_HOST}: vendor/tool:2.0.0 @$(jq -r .digest "${RUN_DIR}/seed-upstream.json" | cut -c1-19)"

    # Findings as tests/demo/main.rs seeds them: moto pops one queued list per distinct request.
    jq -n --arg d "${FIRST_PLATFORM}" --arg a "${ACCOUNT}" --arg r "${REGION}" '
      def finding($id; $sev; $pkg): {awsAccountId: $a,
        findingArn: "arn:aws:inspector2:\($r):\($a):finding/\($id)", severity: $sev,
        status: "ACTIVE", type: "PACKAGE_VULNERABILITY", fixAvailable: "YES",
        firstObservedAt: 1795000000.0, lastObservedAt: 1795000000.0,
        packageVulnerabilityDetails: {vulnerabilityId: $id, source: "DEBIAN_CVE",
          vulnerablePackages: [{name: $pkg, version: "1.0"}]},
        resources: [{id: "x", type: "AWS_ECR_CONTAINER_IMAGE", details: {awsEcrContainerImage:
          {imageHash: $d, repositoryName: "quarantine/app"}}}]};
      {results: [range(400) | [finding("CVE-2025-0001"; "MEDIUM"; "libexpat1"),
                               finding("CVE-2025-0002"; "LOW"; "tar")]],
       account_id: $a, region: $r}' >"${RUN_DIR}/findings.json"
    curl -fsS -X POST -H 'Content-Type: application/json' --data-binary "@${RUN_DIR}/findings.json" \
      "${MOTO_URL}/moto-api/static/inspector2/findings-results" >/dev/null

    # The functions' environment: tests/it/support/pipeline.rs's, plus a hermetic HOME.
    aliases="${HOST}=${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com"
    insecure="${HOST}"
    if [[ -n "${UP_HOST}" ]]; then
      aliases+=",${UP_HOST}=${UPSTREAM_ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com"
      insecure+=",${UP_HOST}"
    fi
    jq -n --arg host "${HOST}" --arg key "${KEY_ID}" --arg approver "awskms:///${APPROVER_KEY}" \
      --arg aliases "${aliases}" --arg insecure "${insecure}" --arg up "${UP_HOST}" --arg home "${RUN_DIR}/home" \
      --arg tls "${TLS}" --arg ca "${PKI:-}/ca.crt" --arg region "${REGION}" --arg at "${APPROVAL_TYPE}" '
      ([{name: "release-manager", key: $approver}]) as $approvers |
      {PATH: "/usr/bin:/bin", HOME: $home, AWS_EC2_METADATA_DISABLED: "true",
       AWS_REGION: $region, AWS_DEFAULT_REGION: $region,
       AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", RUST_LOG: "info",
       INGRESS_REGISTRY: $host, PIPELINE_REGISTRY: $host,
       INGRESS_PREFIX: "incoming/", QUARANTINE_PREFIX: "quarantine/", TRUSTED_PREFIX: "trusted/",
       APPROVALS_PREFIX: "approvals/",
       ENVIRONMENTS: ({environments: [{name: "dev"}, {name: "staging", approvers: $approvers},
                                      {name: "prod", approvers: $approvers}]} | tojson),
       GATE_POLICY: "block_severities: [CRITICAL, HIGH]\nsettle_seconds: 0\n",
       SCAN_POLL_SECONDS: "30", SCAN_MAX_WAIT_SECONDS: "1800",
       KMS_KEY_ID: $key, SIGN_MODE: "both", APPROVAL_ARTIFACT_TYPE: $at,
       ANNOTATIONS: ({"org.opencontainers.image.vendor": "Example Corp"} | tojson),
       LABELS: ({"org.example.promoted": "true"} | tojson),
       ECR_REGISTRY_ALIASES: $aliases,
       SOURCE_REGISTRIES: $up}
      + (if $tls == "1" then {SSL_CERT_FILE: $ca} else {INSECURE_REGISTRIES: $insecure} end)' \
      >"${RUN_DIR}/env.json"
    fns_json="$(for f in "${FUNCTIONS[@]}"; do
      jq -n --arg n "${f}" --arg b "${BIN_DIR}/${f}" --argjson m "${M}" --argjson t "${TIMEOUT_S[${f}]}" \
        '{name: $n, binary: $b, memory_mb: $m, timeout_s: $t}'
    done | jq -s .)"
    jq -n --argjson env "$(cat "${RUN_DIR}/env.json")" --argjson fns "${fns_json}" \
      --arg aws "${MOTO_URL}" --arg log "${RUN_DIR}/registry/access.log" --arg logs "${RUN_DIR}/logs" \
      --arg cg "${COST_CGROUP:-auto}" --arg exec "${ROOT}/bench/cgroup-exec.sh" --arg list "${CGROUP_LIST}" \
      --arg root "${RUN_DIR}/registry/data" \
      '{functions: $fns, env: $env, aws_endpoint: $aws, registry_access_log: $log,
        registry_root: $root, log_dir: $logs,
        cgroup: $cg, cgroup_exec: $exec, cgroup_list: $list}' >"${RUN_DIR}/invoker.json"

    INVOKER_STATUS=0
    python3 "${ROOT}/bench/lambda_invoker.py" --config "${RUN_DIR}/invoker.json" \
      --out "${RUN_DIR}/stats.json" --ready "${RUN_DIR}/ready.json" 2>"${RUN_DIR}/invoker.log" &
    INVOKER_PID=$!
    for _ in $(seq 1 1200); do
      [[ -s "${RUN_DIR}/ready.json" ]] && break
      kill -0 "${INVOKER_PID}" 2>/dev/null || break
      sleep 0.1
    done
    [[ -s "${RUN_DIR}/ready.json" ]] || {
      cat "${RUN_DIR}/invoker.log" >&2
      show_logs
      fail "the functions did not start at ${M} MB"
    }
    sed 's/^/  /' "${RUN_DIR}/invoker.log"
    INVOKER_BASE="$(jq -r .base "${RUN_DIR}/ready.json")"

    # tests/sfn/run.mjs's job: the real definition, every Task routed to the invoker.
    subs='{"EventBusName": "promotion-events"}'
    funcs='{}'
    for i in "${!FUNCTIONS[@]}"; do
      f="${FUNCTIONS[${i}]}"
      arn="arn:aws:lambda:${REGION}:${ACCOUNT}:function:${f}"
      subs="$(jq --arg k "${SUBSTITUTIONS[${i}]}" --arg v "${arn}" '.[$k] = $v' <<<"${subs}")"
      funcs="$(jq --arg k "${arn}" --arg v "$(jq -r --arg f "${f}" '.functions[$f]' "${RUN_DIR}/ready.json")" \
        '.[$k] = $v' <<<"${funcs}")"
    done
    jq -n --arg defn "${ROOT}/statemachine/promotion.asl.json" --argjson subs "${subs}" \
      --argjson funcs "${funcs}" --arg at "${APPROVAL_TYPE}" --arg d "${DIGEST}" \
      --arg a "${ACCOUNT}" --arg r "${REGION}" '
      {definition: $defn, substitutions: ($subs + {ApprovalArtifactType: $at}), functions: $funcs,
       input: {version: "0", id: "cost-bench", "detail-type": "ECR Image Action", source: "aws.ecr",
         account: $a, region: $r, resources: [],
         detail: {result: "SUCCESS", "action-type": "PUSH", "repository-name": "incoming/app",
           "image-digest": $d, "image-tag": "1.0.0",
           "manifest-media-type": "application/vnd.oci.image.index.v1+json"}},
       waitOverridesMs: {}, retryOverridesMs: {}}' >"${RUN_DIR}/job.json"

    execute promotion "${RUN_DIR}/job.json"
    if [[ "${REPEAT}" == 1 ]]; then execute repeat "${RUN_DIR}/job.json"; fi
    if [[ -n "${UP_HOST}" ]]; then
      jq --arg src "${UP_HOST}/vendor/tool:2.0.0" '.input = {source: $src}' "${RUN_DIR}/job.json" \
        >"${RUN_DIR}/job-upstream.json"
      execute upstream "${RUN_DIR}/job-upstream.json"
    fi
    # The promotion did what it should: trusted/app carries the dev tag.
    scheme=http ca=()
    [[ "${TLS}" == 1 ]] && scheme=https ca=(--cacert "${PKI}/ca.crt")
    tags="$(curl -fsS "${ca[@]+"${ca[@]}"}" -u "${REG_USER}:${REG_PASS}" \
      "${scheme}://${HOST}/v2/trusted/app/tags/list" | jq -r '.tags[]?')" || true
    grep -qx 'dev-1.0.0' <<<"${tags}" || fail "trusted/app has no dev-1.0.0 tag after the promotion at ${M} MB (tags: ${tags//$'\n'/ })"
    access_lines="$(wc -l <"${RUN_DIR}/registry/access.log")"

    stop_invoker
    ((INVOKER_STATUS == 0)) || fail "lambda_invoker.py exited with ${INVOKER_STATUS} at ${M} MB: $(tail -n 5 "${RUN_DIR}/invoker.log")"
    [[ -s "${RUN_DIR}/stats.json" ]] || fail "lambda_invoker.py wrote no measurements at ${M} MB"
    stop_moto
    registry_stop "${RUN_DIR}/registry"
    [[ -z "${UP_HOST}" ]] || registry_stop "${RUN_DIR}/upstream"
    echo "  measured: $(jq '.invocations | length' "${RUN_DIR}/stats.json") invocations, ${access_lines} registry requests"
    # Keep the small files; drop the registry's blobs.
    rm -rf "${RUN_DIR}/registry/data" "${RUN_DIR}/upstream/data"
  done
done

# --- report ------------------------------------------------------------------------------------

section "Report"
report=("${TMP}" --sizes "${SIZES}" --runs "${RUNS}" --gate-polls "${GATE_POLLS}" --step-bound-ms "${STEP_BOUND_MS}"
  --copy-bound-s "${COPY_BOUND_S}" --copy-bound-gib "${COPY_BOUND_GIB}"
  --image "$(wc -w <<<"${PLATFORMS}") platforms x ${LAYERS} layers x ${LAYER_MIB} MiB"
  --transport "$([[ "${TLS}" == 1 ]] && echo HTTPS || echo 'plain HTTP')")
[[ -n "${BENCH_JSON:-}" ]] && report+=(--json "${BENCH_JSON}")
python3 "${ROOT}/bench/cost_report.py" "${report[@]}"
