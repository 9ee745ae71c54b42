# shellcheck shell=bash
# Helpers shared by scripts/demo.sh and the benchmarks in bench/. Source it; it defines functions only.
#
# Registries are Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, each with its own
# temp dir and a random free port (see ../shared/reference/test-infra.md §1). Every registry
# started here is recorded in REGISTRY_PIDS so that `registry_stop_all` (call it from an EXIT
# trap) ends exactly the processes this script started, by pid.

LIB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGISTRY_PIDS=()

section() {
  if [[ -t 1 ]]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi
}
note() { printf '%s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# free_port: prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# registry_start DIR VAR: starts a registry storing into DIR/data and sets VAR to its
# "127.0.0.1:PORT". Retries on another port if the chosen one was taken in the meantime.
# With REGISTRY_TLS_DIR set (a directory holding server.crt, server.key and ca.crt) it serves
# HTTPS with that certificate instead of plain HTTP; with REGISTRY_ACCESS_LOG=1 it logs every
# request (combined log format, second resolution) into DIR/registry.log.
registry_start() {
  local dir="$1" var="$2" port pid attempt tls="" scheme=http curl_ca=() access=true
  if [[ -n "${REGISTRY_TLS_DIR:-}" ]]; then
    tls=", tls: {certificate: ${REGISTRY_TLS_DIR}/server.crt, key: ${REGISTRY_TLS_DIR}/server.key}"
    scheme=https
    curl_ca=(--cacert "${REGISTRY_TLS_DIR}/ca.crt")
  fi
  [[ "${REGISTRY_ACCESS_LOG:-0}" == 1 ]] && access=false
  mkdir -p "${dir}/data"
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    cat >"${dir}/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: ${access}}}
storage: {filesystem: {rootdirectory: ${dir}/data}, delete: {enabled: true}, cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:${port}${tls}}
EOF
    docker-registry serve "${dir}/config.yml" >"${dir}/registry.log" 2>&1 &
    pid=$!
    REGISTRY_PIDS+=("${pid}")
    if wait_ready "${pid}" 100 0.05 "${curl_ca[@]+"${curl_ca[@]}"}" "${scheme}://127.0.0.1:${port}/v2/"; then
      printf -v "${var}" '127.0.0.1:%s' "${port}"
      echo "${pid}" >"${dir}/pid"
      return 0
    fi
    note "registry did not start on port ${port} (attempt ${attempt}): $(tail -n 3 "${dir}/registry.log")"
  done
  fail "could not start docker-registry in ${dir}"
}

# require_positive VAR...: each named variable (a benchmark setting) holds a positive integer.
require_positive() {
  local v
  for v in "$@"; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || fail "${v}=${!v} (a BENCH_* setting) must be a positive integer"
  done
}

# require_tools TOOL...: BENCH_TOOLS (in TOOLS) is not empty and names only these tools.
require_tools() {
  local t
  [[ -n "${TOOLS// /}" ]] || fail "BENCH_TOOLS is empty"
  for t in ${TOOLS}; do
    [[ " $* " == *" ${t} "* ]] || fail "unknown tool '${t}' in BENCH_TOOLS (known: $*)"
  done
}

# wait_ready PID TRIES PAUSE [CURL-ARG...] URL: waits until URL answers 2xx, polling TRIES times
# PAUSE seconds apart; returns 1 (after stopping PID) when PID exits or the tries run out.
wait_ready() {
  local pid="$1" tries="$2" pause="$3"
  shift 3
  for _ in $(seq 1 "${tries}"); do
    curl -fsS -o /dev/null "$@" 2>/dev/null && return 0
    kill -0 "${pid}" 2>/dev/null || break
    sleep "${pause}"
  done
  kill "${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
  return 1
}

# check_copy TOOL DST_DIR DST REPO: after a benchmark run, the destination holds REPO:v1 at
# DIGEST (read through the caller's `manifest_digest HOSTPORT REPO REF`) and promote streamed at
# least BLOB_BYTES (its --json report in TMP/out.txt); then the destination registry is removed.
check_copy() {
  local tool="$1" dst_dir="$2" dst="$3" repo="$4" got streamed
  got="$(manifest_digest "${dst}" "${repo}" v1)"
  [[ "${got}" == "${DIGEST}" ]] || fail "${tool} copy produced ${got:-nothing}, expected ${DIGEST}"
  if [[ "${tool}" == promote* ]]; then
    streamed="$(jq -r .bytes_streamed "${TMP}/out.txt")"
    ((streamed >= BLOB_BYTES)) || fail "promote streamed ${streamed} bytes, expected ${BLOB_BYTES}"
  fi
  registry_stop "${dst_dir}"
  rm -rf "${dst_dir}"
}

# make_ca DIR [NAME]: a throwaway CA (DIR/ca.crt, ca.key; NAME in its subject) and a server
# certificate for IP:127.0.0.1 (DIR/server.crt, server.key) signed by it; DIR/certs.d/ca.crt is
# skopeo's --*-cert-dir. Nothing is added to the system's trust store.
make_ca() {
  local dir="$1" name="${2:-bench}"
  mkdir -p "${dir}/certs.d"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=${name} throwaway CA" -keyout "${dir}/ca.key" -out "${dir}/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>"${dir}/openssl.log" || { cat "${dir}/openssl.log" >&2; fail "openssl: cannot make the CA"; }
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "${dir}/server.key" -out "${dir}/server.csr" 2>>"${dir}/openssl.log" ||
    { cat "${dir}/openssl.log" >&2; fail "openssl: cannot make the server key"; }
  cat >"${dir}/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
EOF
  openssl x509 -req -in "${dir}/server.csr" -CA "${dir}/ca.crt" -CAkey "${dir}/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "${dir}/server.ext" \
    -out "${dir}/server.crt" 2>>"${dir}/openssl.log" ||
    { cat "${dir}/openssl.log" >&2; fail "openssl: cannot sign the server certificate"; }
  openssl verify -CAfile "${dir}/ca.crt" "${dir}/server.crt" >/dev/null ||
    fail "openssl: the server certificate does not verify against the CA"
  cp "${dir}/ca.crt" "${dir}/certs.d/ca.crt"
}

# registry_stop DIR: stops the registry started in DIR (and forgets it).
registry_stop() {
  local dir="$1" pid p keep=()
  [[ -f "${dir}/pid" ]] || return 0
  pid="$(cat "${dir}/pid")"
  kill "${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
  rm -f "${dir}/pid"
  for p in "${REGISTRY_PIDS[@]}"; do [[ "${p}" == "${pid}" ]] || keep+=("${p}"); done
  REGISTRY_PIDS=("${keep[@]+"${keep[@]}"}")
}

# registry_stop_all: stops every registry this shell started.
registry_stop_all() {
  local p
  for p in "${REGISTRY_PIDS[@]+"${REGISTRY_PIDS[@]}"}"; do
    kill "${p}" 2>/dev/null || true
  done
  for p in "${REGISTRY_PIDS[@]+"${REGISTRY_PIDS[@]}"}"; do
    wait "${p}" 2>/dev/null || true
  done
  REGISTRY_PIDS=()
}

# cargo_target_dir: the workspace's target directory (honours CARGO_TARGET_DIR and cargo config).
cargo_target_dir() {
  (cd "${LIB_ROOT}" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
}

# build_promote: builds the release `promote` binary and sets PROMOTE to its path.
build_promote() {
  (cd "${LIB_ROOT}" && cargo build -p promote-cli --release)
  PROMOTE="$(cargo_target_dir)/release/promote"
  [[ -x "${PROMOTE}" ]] || fail "promote binary not found at ${PROMOTE}"
}
