#!/usr/bin/env bash
# Lambda-sized copy benchmark: `promote copy` against `skopeo copy`, each confined the way a
# 128 MB Lambda function is.
#
#   bench/lambda-bench.sh                      # as root (it creates cgroups)
#   BENCH_RUNS=5 PROMOTE_BIN=/path/to/promote BENCH_JSON=out.json bench/lambda-bench.sh
#
# Why: Lambda gives a function CPU in proportion to its memory, 1,769 MB for one full vCPU, so a
# 128 MB copy-to-quarantine gets 128/1,769 = 7.2% of a CPU. At that share a copy is bound by its
# CPU cost per byte (TLS, hashing, buffer handling), not by the network, and the wall time of a
# big image decides whether the copy fits the function's timeout. bench/copy-bench.sh measures
# unconfined copies over plain HTTP; this one measures what the Lambda would see.
#
# What it does: the client runs in a throwaway cgroup (one per run) limited to 128 MiB of memory
# and a CFS quota of 7200 us per 100000 us period (7.2% of one CPU); bench/cgroup-exec.sh moves
# itself into the cgroup and execs the tool, so only the client is confined (the registries are
# not). Both registries are Debian `docker-registry` on 127.0.0.1 (random ports) over TLS, with
# a throwaway CA and a server certificate for IP:127.0.0.1 made with openssl in the run's temp
# dir; promote trusts the CA through SSL_CERT_FILE (reqwest's rustls-platform-verifier loads
# roots with rustls-native-certs, which reads SSL_CERT_FILE instead of the system store), skopeo
# through --src-cert-dir/--dest-cert-dir. Nothing is added to the system's trust store. The image
# (default 4 layers x 128 MiB of random data, single-platform OCI manifest) is seeded once by
# scripts/seed_image.py into the source registry (over plain HTTP; the registry is then restarted
# on the same storage with TLS); every run copies it into a FRESH destination registry (nothing
# can be skipped or mounted) and checks the destination digest against the source's.
#
# Per tool it prints the medians over BENCH_RUNS runs of: wall time, the cgroup's CPU-seconds
# (v1 cpuacct.usage, v2 cpu.stat usage_usec) per GiB moved, the cgroup's peak memory (v1
# memory.max_usage_in_bytes, v2 memory.peak; this is the charge the Lambda limit applies to,
# page cache and kernel memory included, but not the already-cached pages of the executable) next
# to GNU time's peak RSS, and the wall time estimated for a 3 GiB image (wall x 3 GiB / image
# size); then the promote/skopeo ratios of wall time, CPU/GiB and peak memory. A tool killed at
# the memory limit fails the benchmark with a message saying so.
#
# Then the floor, the CPU per GiB any client that verifies what it copies over TLS pays: the
# kernel's share, measured by bench/socket_relay.c (C, compiled with cc into the run's temp
# dir at run time, so no interpreter's cost is charged) relaying the image's byte count
# between two loopback connections with 1 MiB calls in the same kind of cgroup
# (bench/socket_floor.py serves both ends from outside it), plus SHA-256 and AES-128-GCM per
# GiB from `openssl speed`. A second relay with 16 KiB reads and 64 KiB writes, what a TLS
# client reading one 16 KiB record at a time pays in the kernel, is printed on its own line
# ("socket relay, 16 KiB reads") and is not part of the floor.
#
# cgroups: v2 is used when /sys/fs/cgroup is a cgroup2 mount with the cpu and memory controllers
# (cgroup created under the root, limits memory.max, memory.swap.max, cpu.max); otherwise v1
# (cgroups created under this shell's own cgroup in the cpu, cpuacct and memory hierarchies,
# limits memory.limit_in_bytes, cpu.cfs_quota_us/cpu.cfs_period_us). Each cgroup is removed
# after its run (and on exit).
#
# Environment:
#   BENCH_RUNS=3                 runs per tool (medians are reported)
#   BENCH_LAYERS=4 BENCH_LAYER_MIB=128
#                                the image: LAYERS layers of LAYER_MIB MiB of random data
#   BENCH_IMAGE_MIB=N            instead of BENCH_LAYER_MIB: N MiB split into BENCH_LAYERS layers
#   BENCH_TOOLS="promote skopeo" also: curl (bench/curl-copy.sh over TLS in the same box, `curl |
#                                curl` per blob with OpenSSL and no hashing; a reference, not a
#                                floor: its pipes and small chunks cost more than promote)
#   BENCH_COMPARE=PATH           another promote binary, run as tool "promote-b" right after each
#                                promote run (interleaved, so drift hits both): A/B one change
#   BENCH_DOUBLE_RUNS=RUNS       promote runs on a second image whose layers are twice as big
#                                (peak memory must not grow with the layer size; the medians
#                                are compared, the peak varies by several MiB run to run); 0
#                                skips them
#   BENCH_MEMORY_MIB=128         the cgroup's memory limit
#   BENCH_CPU_QUOTA_US=7200 BENCH_CPU_PERIOD_US=100000
#                                the CFS quota (7200/100000 ~ 128/1769 of a CPU)
#   BENCH_CGROUP=auto            or v1 / v2 to force one
#   BENCH_TMPDIR=${TMPDIR:-/tmp} where the registries store blobs (needs ~2x the image)
#   BENCH_JSON=FILE              also write the figures (medians, every run, ratios) as JSON
#   BENCH_PERF=DIR               also profile every promote run: `perf record -g` attached to
#                                the confined process from outside the cgroup (perf's own CPU is
#                                not charged, but sampling still perturbs the run: use it to find
#                                overhead, not for the figures), DIR/promote-RUN.perf.data; build
#                                with symbols (CARGO_PROFILE_RELEASE_STRIP=false) to read it
#   PROMOTE_BIN=PATH             use this promote binary instead of building one; otherwise
#                                `CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-release} nice -n
#                                19 cargo build --release -p promote-cli` (fat LTO: minutes)
#
# Needs root (cgroups), openssl, cc (the floor's relay; rustc needs it as its linker anyway),
# and what `scripts/setup.sh system rust bench` installs.
# Not part of the test command: it moves a few GiB through loopback at 7.2% of a CPU and takes
# minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "${ROOT}/scripts/lib.sh"

RUNS="${BENCH_RUNS:-3}"
LAYERS="${BENCH_LAYERS:-4}"
TOOLS="${BENCH_TOOLS:-promote skopeo}"
MEM_MIB="${BENCH_MEMORY_MIB:-128}"
CPU_QUOTA_US="${BENCH_CPU_QUOTA_US:-7200}"
CPU_PERIOD_US="${BENCH_CPU_PERIOD_US:-100000}"
# Read by require_positive, by name.
# shellcheck disable=SC2034
IMAGE_MIB_SET="${BENCH_IMAGE_MIB:-1}"
# shellcheck disable=SC2034
LAYER_MIB_SET="${BENCH_LAYER_MIB:-1}"
require_positive RUNS LAYERS MEM_MIB CPU_QUOTA_US CPU_PERIOD_US LAYER_MIB_SET IMAGE_MIB_SET
DOUBLE_RUNS="${BENCH_DOUBLE_RUNS:-${RUNS}}"
[[ "${DOUBLE_RUNS}" =~ ^[0-9]+$ ]] || fail "BENCH_DOUBLE_RUNS=${DOUBLE_RUNS} must be a number"
if [[ -n "${BENCH_IMAGE_MIB:-}" ]]; then
  [[ -z "${BENCH_LAYER_MIB:-}" ]] || fail "set BENCH_IMAGE_MIB or BENCH_LAYER_MIB, not both"
  ((BENCH_IMAGE_MIB % LAYERS == 0)) ||
    fail "BENCH_IMAGE_MIB=${BENCH_IMAGE_MIB} does not split into BENCH_LAYERS=${LAYERS} equal layers"
  LAYER_MIB=$((BENCH_IMAGE_MIB / LAYERS))
else
  LAYER_MIB="${BENCH_LAYER_MIB:-128}"
fi
[[ -n "${BENCH_COMPARE:-}" ]] && TOOLS="${TOOLS/promote/promote promote-b}"
require_tools promote promote-b skopeo curl
[[ ${EUID} -eq 0 ]] || fail "needs root: it creates cgroups"

TMP="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/lambda-bench.XXXXXX")"
CG_LIVE=() # cgroup directories this script created and has not removed yet
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  registry_stop_all
  cgroup_remove
  rm -rf "${TMP}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
RESULTS="${TMP}/results.tsv"
: >"${RESULTS}"

# --- cgroups -------------------------------------------------------------------------------------

# cgroup_detect: sets CG_VERSION (v1|v2) and, for v1, CG_MEM_BASE, CG_CPU_BASE, CG_ACCT_BASE: the
# directory of this shell's own cgroup in each hierarchy (children are created in there).
cgroup_detect() {
  local want="${BENCH_CGROUP:-auto}" v2=0 v1=0
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]] &&
    grep -qw cpu /sys/fs/cgroup/cgroup.controllers &&
    grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    v2=1
  fi
  CG_MEM_BASE="$(cgroup_v1_dir memory)"
  CG_CPU_BASE="$(cgroup_v1_dir cpu)"
  CG_ACCT_BASE="$(cgroup_v1_dir cpuacct)"
  if [[ -n "${CG_MEM_BASE}" && -n "${CG_CPU_BASE}" && -n "${CG_ACCT_BASE}" &&
    -f "${CG_MEM_BASE}/memory.limit_in_bytes" && -f "${CG_CPU_BASE}/cpu.cfs_quota_us" &&
    -f "${CG_ACCT_BASE}/cpuacct.usage" ]]; then
    v1=1
  fi
  case "${want}" in
    auto)
      if ((v2)); then CG_VERSION=v2; elif ((v1)); then CG_VERSION=v1; else
        fail "no usable cgroup: neither cgroup2 with cpu+memory at /sys/fs/cgroup nor cgroup v1 cpu, cpuacct and memory hierarchies"
      fi
      ;;
    v1) ((v1)) || fail "BENCH_CGROUP=v1, but the cgroup v1 cpu, cpuacct and memory hierarchies are not all mounted"; CG_VERSION=v1 ;;
    v2) ((v2)) || fail "BENCH_CGROUP=v2, but /sys/fs/cgroup is not cgroup2 with the cpu and memory controllers"; CG_VERSION=v2 ;;
    *) fail "BENCH_CGROUP must be auto, v1 or v2" ;;
  esac
}

# cgroup_v1_dir CONTROLLER: prints the directory of this shell's cgroup in the v1 hierarchy that
# carries CONTROLLER (mount point from /proc/self/mounts, path from /proc/self/cgroup), or nothing.
cgroup_v1_dir() {
  local ctrl="$1" mnt path
  mnt="$(awk -v c="${ctrl}" '$3 == "cgroup" {
      n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) { print $2; exit } }' /proc/self/mounts)"
  [[ -n "${mnt}" ]] || return 0
  path="$(awk -F: -v c="${ctrl}" '{
      n = split($2, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) { print $3; exit } }' /proc/self/cgroup)"
  printf '%s%s\n' "${mnt}" "${path%/}"
}

# cgroup_create NAME: creates the run's cgroup(s) with the limits; sets CG_PROCS (the cgroup.procs
# files to join) and CG_MEM, CG_CPU, CG_ACCT (the directories to read from afterwards).
cgroup_create() {
  local name="lambda-bench.$$.$1" d
  CG_PROCS=()
  if [[ "${CG_VERSION}" == v2 ]]; then
    local root=/sys/fs/cgroup c
    # The root cgroup is exempt from "no internal processes", so children go right under it;
    # the cpu and memory controllers must be enabled for them there.
    for c in cpu memory; do
      grep -qw "${c}" "${root}/cgroup.subtree_control" || echo "+${c}" >"${root}/cgroup.subtree_control"
    done
    CG_MEM="${root}/${name}"
    CG_CPU="${CG_MEM}"
    CG_ACCT="${CG_MEM}"
    mkdir "${CG_MEM}"
    CG_LIVE+=("${CG_MEM}")
    echo $((MEM_MIB * 1024 * 1024)) >"${CG_MEM}/memory.max"
    [[ -f "${CG_MEM}/memory.swap.max" ]] && echo 0 >"${CG_MEM}/memory.swap.max"
    echo "${CPU_QUOTA_US} ${CPU_PERIOD_US}" >"${CG_MEM}/cpu.max"
    CG_PROCS=("${CG_MEM}/cgroup.procs")
  else
    CG_MEM="${CG_MEM_BASE}/${name}"
    CG_CPU="${CG_CPU_BASE}/${name}"
    CG_ACCT="${CG_ACCT_BASE}/${name}"
    # cpu and cpuacct may be one co-mounted hierarchy (cpu,cpuacct): create and join it once.
    for d in "${CG_MEM}" "${CG_CPU}" "${CG_ACCT}"; do
      [[ " ${CG_LIVE[*]-} " == *" ${d} "* ]] && continue
      mkdir "${d}"
      CG_LIVE+=("${d}")
      CG_PROCS+=("${d}/cgroup.procs")
    done
    echo $((MEM_MIB * 1024 * 1024)) >"${CG_MEM}/memory.limit_in_bytes"
    # No swap on top of the limit (only present with swap accounting; the limit must come first).
    if [[ -f "${CG_MEM}/memory.memsw.limit_in_bytes" ]]; then
      echo $((MEM_MIB * 1024 * 1024)) >"${CG_MEM}/memory.memsw.limit_in_bytes"
    fi
    echo "${CPU_PERIOD_US}" >"${CG_CPU}/cpu.cfs_period_us"
    echo "${CPU_QUOTA_US}" >"${CG_CPU}/cpu.cfs_quota_us"
  fi
}

# cgroup_read: sets CG_CPU_S, CG_PEAK_BYTES ("-" when unknown), CG_NR_THROTTLED, CG_THROTTLED_S
# and CG_OOM_KILLS from the run's cgroup(s).
cgroup_read() {
  local stat
  if [[ "${CG_VERSION}" == v2 ]]; then
    stat="${CG_CPU}/cpu.stat"
    CG_CPU_S="$(awk '$1 == "usage_usec" {printf "%.6f", $2 / 1e6}' "${stat}")"
    CG_NR_THROTTLED="$(awk '$1 == "nr_throttled" {print $2}' "${stat}")"
    CG_THROTTLED_S="$(awk '$1 == "throttled_usec" {printf "%.6f", $2 / 1e6}' "${stat}")"
    if [[ -f "${CG_MEM}/memory.peak" ]]; then CG_PEAK_BYTES="$(cat "${CG_MEM}/memory.peak")"; else CG_PEAK_BYTES=-; fi
    CG_OOM_KILLS="$(awk '$1 == "oom_kill" {print $2}' "${CG_MEM}/memory.events")"
  else
    CG_CPU_S="$(awk '{printf "%.6f", $1 / 1e9}' "${CG_ACCT}/cpuacct.usage")"
    stat="${CG_CPU}/cpu.stat"
    CG_NR_THROTTLED="$(awk '$1 == "nr_throttled" {print $2}' "${stat}")"
    CG_THROTTLED_S="$(awk '$1 == "throttled_time" {printf "%.6f", $2 / 1e9}' "${stat}")"
    CG_PEAK_BYTES="$(cat "${CG_MEM}/memory.max_usage_in_bytes")"
    # "oom_kill N" exists in memory.oom_control since Linux 4.13; failcnt counts limit hits.
    CG_OOM_KILLS="$(awk '$1 == "oom_kill" {print $2}' "${CG_MEM}/memory.oom_control")"
  fi
  CG_NR_THROTTLED="${CG_NR_THROTTLED:-0}"
  CG_THROTTLED_S="${CG_THROTTLED_S:-0}"
  CG_OOM_KILLS="${CG_OOM_KILLS:-0}"
}

# cgroup_remove: removes every cgroup this script created (they must be empty by now; a v1
# cgroup whose last task just exited can be busy for a moment, hence the retries).
cgroup_remove() {
  local d
  for d in "${CG_LIVE[@]+"${CG_LIVE[@]}"}"; do
    for _ in $(seq 1 50); do
      rmdir "${d}" 2>/dev/null && break
      [[ -d "${d}" ]] || break
      sleep 0.1
    done
    [[ -d "${d}" ]] && note "warning: could not remove cgroup ${d} (tasks: $(tr '\n' ' ' <"${d}/cgroup.procs" 2>/dev/null))"
  done
  CG_LIVE=()
}

# --- TLS registries ------------------------------------------------------------------------------


# registry_start_tls DIR VAR: scripts/lib.sh's registry_start (same pid bookkeeping, so its
# registry_stop and registry_stop_all apply), serving HTTPS with ${PKI}/server.{crt,key}.
registry_start_tls() {
  REGISTRY_TLS_DIR="${PKI}" registry_start "$@"
}

# manifest_digest HOSTPORT REPO REF: the Docker-Content-Digest the registry reports, over TLS.
manifest_digest() {
  curl -fsSI --cacert "${PKI}/ca.crt" -H "Accept: ${MEDIA_TYPE}" "https://$1/v2/$2/manifests/$3" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

# --- set-up --------------------------------------------------------------------------------------

section "Set up"
bash "${ROOT}/scripts/setup.sh" system rust bench
# Checked before the copies, not after minutes of them.
command -v cc >/dev/null 2>&1 ||
  fail "cc not found: the floor's relay, bench/socket_relay.c, is compiled with cc at run time" \
    "(Debian package gcc; rustc needs it as its linker too)"
command -v openssl >/dev/null 2>&1 ||
  fail "openssl not found (Debian package openssl): it makes the registries' throwaway CA"
cgroup_detect
PROMOTE=""
if [[ " ${TOOLS} " == *" promote "* ]]; then
  if [[ -n "${PROMOTE_BIN:-}" ]]; then
    PROMOTE="${PROMOTE_BIN}"
    [[ -x "${PROMOTE}" ]] || fail "PROMOTE_BIN=${PROMOTE} is not executable"
  else
    target="${CARGO_TARGET_DIR:-/work/target-release}"
    (cd "${ROOT}" && CARGO_TARGET_DIR="${target}" nice -n 19 cargo build --release -p promote-cli)
    PROMOTE="${target}/release/promote"
    [[ -x "${PROMOTE}" ]] || fail "promote binary not found at ${PROMOTE}"
  fi
  echo "promote: ${PROMOTE} ($("${PROMOTE}" --version))"
fi
[[ " ${TOOLS} " == *" skopeo "* ]] && echo "skopeo:  $(skopeo --version)"
echo "openssl: $(openssl version)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
if [[ "${CG_VERSION}" == v1 ]]; then
  echo "cgroup:  v1, under ${CG_MEM_BASE}, ${CG_CPU_BASE}, ${CG_ACCT_BASE}"
else
  echo "cgroup:  v2, under /sys/fs/cgroup"
fi
echo "limits:  memory ${MEM_MIB} MiB, CPU ${CPU_QUOTA_US} us per ${CPU_PERIOD_US} us" \
  "($(awk -v q="${CPU_QUOTA_US}" -v p="${CPU_PERIOD_US}" 'BEGIN{printf "%.1f%%", 100*q/p}') of one CPU)"
echo "runs:    ${RUNS} per tool; image ${LAYERS} layers x ${LAYER_MIB} MiB; tools: ${TOOLS}"

PKI="${TMP}/pki"
make_ca "${PKI}" lambda-bench
echo "CA:      ${PKI}/ca.crt (throwaway; server certificate for IP:127.0.0.1)"

# --- seed --------------------------------------------------------------------------------------

# seed_one MIB: seeds bench/lambda-${LAYERS}x${MIB}:v1 (LAYERS layers of MIB MiB of random data)
# through the plain registry SEED_REG into ${TMP}/seed-${MIB}.json.
seed_one() {
  local mib="$1"
  section "Seeding bench/lambda-${LAYERS}x${mib}:v1: ${LAYERS} layers x ${mib} MiB of random data"
  python3 "${ROOT}/scripts/seed_image.py" --registry "${SEED_REG}" \
    --repository "bench/lambda-${LAYERS}x${mib}" --tag v1 --platform linux/amd64 --no-index \
    --layers "${LAYERS}" --layer-bytes $((mib * 1024 * 1024)) >"${TMP}/seed-${mib}.json"
}

# use_image MIB: the image the next runs copy (REPO, REF, SEED, DIGEST, MEDIA_TYPE, BLOB_BYTES,
# BLOBS), checked to be served over TLS.
use_image() {
  REPO="bench/lambda-${LAYERS}x$1"
  REF="${REPO}:v1"
  SEED="${TMP}/seed-$1.json"
  DIGEST="$(jq -r .digest "${SEED}")"
  MEDIA_TYPE="$(jq -r .media_type "${SEED}")"
  BLOB_BYTES="$(jq -r .blob_bytes "${SEED}")"
  mapfile -t BLOBS < <(jq -r '.platforms[0] | .config.digest, .layers[].digest' "${SEED}")
  local got
  got="$(manifest_digest "${SRC}" "${REPO}" v1)"
  [[ "${got}" == "${DIGEST}" ]] || fail "source registry over TLS serves ${got:-nothing} for ${REF}, seeded ${DIGEST}"
  echo "  source https://${SRC}/${REF}: ${DIGEST}, ${#BLOBS[@]} blobs, ${BLOB_BYTES} bytes"
}

DOUBLE=0
[[ " ${TOOLS} " == *" promote "* ]] && ((DOUBLE_RUNS > 0)) && DOUBLE=1
# scripts/seed_image.py speaks plain HTTP: seed through a plain registry, then serve the same
# storage over TLS.
registry_start "${TMP}/src" SEED_REG
seed_one "${LAYER_MIB}"
((DOUBLE)) && seed_one $((2 * LAYER_MIB))
registry_stop "${TMP}/src"
registry_start_tls "${TMP}/src" SRC
use_image "${LAYER_MIB}"

# --- runs --------------------------------------------------------------------------------------

# run_one TOOL RUN [LABEL]: one confined copy of the current image (use_image) into a fresh TLS
# destination registry, measured; recorded under LABEL (default TOOL).
run_one() {
  local tool="$1" run="$2" label="${3:-$1}" dst_dir="${TMP}/dst" DST cmd rc=0
  registry_start_tls "${dst_dir}" DST
  case "${tool}" in
    promote | promote-b)
      local bin="${PROMOTE}"
      [[ "${tool}" == promote-b ]] && bin="${BENCH_COMPARE}"
      # Both registries are on loopback: allowed explicitly (the egress guard refuses internal
      # addresses otherwise), each on its own port.
      cmd=(env -u SSL_CERT_DIR "SSL_CERT_FILE=${PKI}/ca.crt" "${bin}" --json
        --allow-internal-registry "${SRC}" --allow-internal-registry "${DST}"
        copy "${SRC}/${REF}" "${DST}/${REF}")
      ;;
    skopeo)
      cmd=(skopeo copy -q --all --preserve-digests
        --src-cert-dir "${PKI}/certs.d" --dest-cert-dir "${PKI}/certs.d"
        "docker://${SRC}/${REF}" "docker://${DST}/${REF}")
      ;;
    curl)
      # The whole pipeline (bash and every curl) runs in the cgroup and is charged to it.
      cmd=(env "CURL_COPY_CACERT=${PKI}/ca.crt" bash "${ROOT}/bench/curl-copy.sh" "${SRC}" "${DST}"
        "${REPO}" v1 "${MEDIA_TYPE}" "${DIGEST}" "${BLOBS[@]}")
      ;;
  esac
  cgroup_create "${tool}-${run}"
  /usr/bin/time -o "${TMP}/time.txt" -f '%e %U %S %M' \
    sh "${ROOT}/bench/cgroup-exec.sh" "${CG_PROCS[@]}" -- "${cmd[@]}" \
    >"${TMP}/out.txt" 2>"${TMP}/err.txt" &
  local client=$! perf_pid=""
  if [[ -n "${BENCH_PERF:-}" && "${tool}" == promote ]]; then
    mkdir -p "${BENCH_PERF}"
    # GNU time's child is cgroup-exec.sh, which execs promote: attach to that process.
    local child=""
    for _ in $(seq 1 100); do
      child="$(pgrep -P "${client}" | head -n 1)" && [[ -n "${child}" ]] && break
      sleep 0.01
    done
    [[ -n "${child}" ]] || fail "BENCH_PERF: the promote process did not start"
    perf record -q -F 4999 -g -p "${child}" -o "${BENCH_PERF}/promote-${run}.perf.data" \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  wait "${client}" || rc=$?
  if [[ -n "${perf_pid}" ]]; then
    kill -INT "${perf_pid}" 2>/dev/null || true
    wait "${perf_pid}" || true
  fi
  cgroup_read
  cgroup_remove
  if ((rc != 0)); then
    cat "${TMP}/err.txt" >&2
    ((CG_OOM_KILLS == 0)) ||
      fail "${tool} was killed at the ${MEM_MIB} MiB memory limit (run ${run}, ${CG_OOM_KILLS} OOM kill(s), peak $((CG_PEAK_BYTES / 1048576)) MiB)"
    fail "${tool} copy failed (exit ${rc}), run ${run}"
  fi
  check_copy "${tool}" "${dst_dir}" "${DST}" "${REPO}"
  read -r wall user sys rss_kib <"${TMP}/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${label}" "${run}" "${wall}" "${user}" \
    "${sys}" "${rss_kib}" "${CG_CPU_S}" "${CG_PEAK_BYTES}" "${CG_NR_THROTTLED}" \
    "${CG_THROTTLED_S}" "${BLOB_BYTES}" >>"${RESULTS}"
  awk -v r="${run}" -v t="${label}" -v w="${wall}" -v c="${CG_CPU_S}" -v p="${CG_PEAK_BYTES}" \
    -v k="${rss_kib}" -v b="${BLOB_BYTES}" 'BEGIN {
      peak = (p == "-") ? "n/a" : sprintf("%.1f", p / 1048576)
      printf "  run %s  %-10s wall %7.2f s   cpu %6.2f s (%5.2f s/GiB)   peak %6s MiB   rss %6.1f MiB\n",
        r, t, w, c, c / (b / 1073741824), peak, k / 1024 }'
}

section "Copies in a ${MEM_MIB} MiB / ${CPU_QUOTA_US}:${CPU_PERIOD_US} us cgroup (${CG_VERSION}), fresh TLS destination each"
for run in $(seq 1 "${RUNS}"); do
  for tool in ${TOOLS}; do
    run_one "${tool}" "${run}"
  done
done

# The floor: what any client that verifies what it copies over TLS pays per byte, in three
# parts. The kernel's: bench/socket_relay.c relays the image's byte count from one loopback
# connection to another with 1 MiB reads and writes, in the same box as the copies (the
# sender and the sink, bench/socket_floor.py serve, run outside). The relay is C, compiled
# here with cc into the run's temp dir, so that no interpreter's cost is charged to the box.
# A second relay with 16 KiB reads and 64 KiB writes, what a TLS client that reads one 16 KiB
# record at a time pays in the kernel, is printed next to it but is not part of the floor.
# Then, measured with openssl on this CPU (unconfined; CPU-seconds per GiB do not depend on
# the share): SHA-256 once over every byte, and AES-GCM once per direction (Go's TLS 1.3
# server picks AES-128-GCM on CPUs with AES instructions). `openssl speed` prints
# k(=1000)-bytes per second per block size; the 16 KiB column matches TLS records.
section "Floor: the kernel's share (a C loopback relay in the same box), SHA-256 and AES-GCM"
RELAY="${TMP}/socket_relay"
cc -O2 -std=c99 -Wall -o "${RELAY}" "${ROOT}/bench/socket_relay.c" ||
  fail "cc could not compile bench/socket_relay.c"

# floor_relay LABEL RUN READ_SIZE WRITE_SIZE TEXT: one confined relay of the image's byte count
# with READ_SIZE-byte recv() and WRITE_SIZE-byte send() calls, recorded under LABEL and printed
# as "socket relay, TEXT".
floor_relay() {
  local label="$1" run="$2" rsize="$3" wsize="$4" text="$5" ready="${TMP}/floor.ready"
  local srv fsrc fsink rc=0
  rm -f "${ready}"
  python3 "${ROOT}/bench/socket_floor.py" serve "${BLOB_BYTES}" "${ready}" &
  srv=$!
  for _ in $(seq 1 100); do [[ -s "${ready}" ]] && break; sleep 0.05; done
  if [[ ! -s "${ready}" ]]; then
    kill "${srv}" 2>/dev/null || true
    fail "bench/socket_floor.py serve did not start"
  fi
  read -r fsrc fsink <"${ready}"
  cgroup_create "${label}-${run}"
  /usr/bin/time -o "${TMP}/time.txt" -f '%e %U %S %M' \
    sh "${ROOT}/bench/cgroup-exec.sh" "${CG_PROCS[@]}" -- \
    "${RELAY}" "${fsrc}" "${fsink}" "${BLOB_BYTES}" "${rsize}" "${wsize}" || rc=$?
  cgroup_read
  cgroup_remove
  # A relay that failed may have left the server waiting for it: stop the server.
  ((rc == 0)) || kill "${srv}" 2>/dev/null || true
  wait "${srv}" || rc=$?
  ((rc == 0)) || fail "the socket floor relay (${text}) failed (run ${run})"
  read -r wall user sys rss_kib <"${TMP}/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${label}" "${run}" "${wall}" "${user}" \
    "${sys}" "${rss_kib}" "${CG_CPU_S}" "${CG_PEAK_BYTES}" "${CG_NR_THROTTLED}" \
    "${CG_THROTTLED_S}" "${BLOB_BYTES}" >>"${RESULTS}"
  awk -v r="${run}" -v t="${text}" -v c="${CG_CPU_S}" -v b="${BLOB_BYTES}" 'BEGIN {
      printf "  run %s  socket relay, %-15s cpu %6.2f s (%5.2f s/GiB)\n",
        r, t ":", c, c / (b / 1073741824) }'
}
for run in $(seq 1 "${RUNS}"); do
  floor_relay socket "${run}" 1048576 1048576 "1 MiB calls"
  floor_relay socket-16k "${run}" 16384 65536 "16 KiB reads"
done
openssl_s_per_gib() {
  openssl speed -evp "$1" -bytes 16384 -seconds 2 2>/dev/null |
    awk -v alg="$1" 'tolower($1) == alg && $NF ~ /k$/ { sub(/k$/, "", $NF); printf "%.4f", 1073741824 / ($NF * 1000) }'
}
SHA_S="$(openssl_s_per_gib sha256)"
AES_S="$(openssl_s_per_gib aes-128-gcm)"
[[ -n "${SHA_S}" && -n "${AES_S}" ]] || fail "openssl speed printed no figure for sha256 or aes-128-gcm"

if ((DOUBLE)); then
  section "promote on layers twice as big (${LAYERS} x $((2 * LAYER_MIB)) MiB): peak memory must stay flat"
  use_image $((2 * LAYER_MIB))
  for run in $(seq 1 "${DOUBLE_RUNS}"); do
    run_one promote "${run}" "promote@2x"
  done
fi

section "Results (medians of ${RUNS} runs; the client only, the registries run unconfined)"
report_args=("${RESULTS}" --cgroup "${CG_VERSION}" --memory-mib "${MEM_MIB}"
  --cpu-quota-us "${CPU_QUOTA_US}" --cpu-period-us "${CPU_PERIOD_US}" --image "${LAYERS}x${LAYER_MIB}MiB"
  --sha256-s-per-gib "${SHA_S}" --aes-gcm-s-per-gib "${AES_S}")
[[ -n "${BENCH_JSON:-}" ]] && report_args+=(--json "${BENCH_JSON}")
python3 "${ROOT}/bench/lambda_bench_report.py" "${report_args[@]}"
