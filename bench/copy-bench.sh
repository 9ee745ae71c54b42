#!/usr/bin/env bash
# Copy benchmark: `promote copy` against `skopeo copy --all` and a plain `curl | curl` copy.
#
#   bench/copy-bench.sh
#
# For each image variant (default: 2 layers x 128 MiB, then 4 layers x 256 MiB of random data,
# single-platform OCI manifest) the image is seeded once into a local source registry; every run
# of every tool then copies it into a FRESH destination registry (nothing can be skipped or
# mounted), checks the destination digest, and records the client's wall time, user+sys CPU and
# peak RSS measured by GNU time (`/usr/bin/time -f '%e %U %S %M'`). It prints the medians, the
# promote/skopeo ratios and the targets: wall time no worse than skopeo, client CPU at most a
# third of skopeo's, peak RSS at most 32 MiB and flat between the two variants.
#
# Environment:
#   BENCH_RUNS=3                 runs per tool and variant (medians are reported)
#   BENCH_LAYERS=2 BENCH_LAYER_MIB=128
#                                the small variant; the large one has twice as many layers,
#                                each twice as big (2 x 128 MiB -> 4 x 256 MiB)
#   BENCH_VARIANTS="2x128 4x256" explicit LAYERSxMIB list instead of the two above; the
#                                default pair also changes the layer count (more blobs in
#                                flight at once), "2x128 2x512" varies only the layer size
#   BENCH_TOOLS="promote skopeo curl"
#   BENCH_TMPDIR=${TMPDIR:-/tmp} where the registries store blobs (needs ~2x the largest image)
#   BENCH_STRICT=1               exit 1 when a target is missed
#   BENCH_JSON=FILE              also write the medians as JSON
#   PROMOTE_BIN=PATH             use this promote binary instead of building --release
#
# Not part of the test command: it moves a few GiB through loopback and takes minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "${ROOT}/scripts/lib.sh"

RUNS="${BENCH_RUNS:-3}"
LAYERS="${BENCH_LAYERS:-2}"
LAYER_MIB="${BENCH_LAYER_MIB:-128}"
VARIANTS="${BENCH_VARIANTS:-${LAYERS}x${LAYER_MIB} $((LAYERS * 2))x$((LAYER_MIB * 2))}"
TOOLS="${BENCH_TOOLS:-promote skopeo curl}"
require_positive RUNS LAYERS LAYER_MIB
for v in ${VARIANTS}; do
  [[ "${v}" =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || fail "bad variant '${v}' in BENCH_VARIANTS (want LAYERSxMIB)"
done
require_tools promote skopeo curl

TMP="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/promote-bench.XXXXXX")"
cleanup() {
  registry_stop_all
  rm -rf "${TMP}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RESULTS="${TMP}/results.tsv"
: >"${RESULTS}"

section "Set up"
bash "${ROOT}/scripts/setup.sh" system rust bench
PROMOTE=""
if [[ " ${TOOLS} " == *" promote "* ]]; then
  if [[ -n "${PROMOTE_BIN:-}" ]]; then
    PROMOTE="${PROMOTE_BIN}"
    [[ -x "${PROMOTE}" ]] || fail "PROMOTE_BIN=${PROMOTE} is not executable"
  else
    build_promote
  fi
  echo "promote: ${PROMOTE}"
fi
echo "skopeo:  $(skopeo --version)"
echo "curl:    $(curl --version | head -n1 | cut -d' ' -f1-2)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "runs:    ${RUNS} per tool and variant; variants: ${VARIANTS}; tools: ${TOOLS}"

registry_start "${TMP}/src" SRC
echo "source registry: ${SRC}"

# manifest_digest HOSTPORT REPO REF
manifest_digest() {
  curl -fsSI -H "Accept: $(jq -r .media_type "${SEED}")" "http://$1/v2/$2/manifests/$3" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

# run_one VARIANT TOOL RUN: one copy into a fresh destination registry, measured.
run_one() {
  local variant="$1" tool="$2" run="$3" dst_dir="${TMP}/dst" DST cmd rc=0
  registry_start "${dst_dir}" DST
  local repo="bench/${variant}" ref
  ref="${repo}:v1"
  case "${tool}" in
    promote)
      cmd=("${PROMOTE}" --insecure-registry "${SRC}" --insecure-registry "${DST}" --json
        copy "${SRC}/${ref}" "${DST}/${ref}")
      ;;
    skopeo)
      cmd=(skopeo copy -q --all --preserve-digests --src-tls-verify=false --dest-tls-verify=false
        "docker://${SRC}/${ref}" "docker://${DST}/${ref}")
      ;;
    curl)
      # One bash around the whole pipeline, so GNU time counts every curl (and the shell) as
      # its children: CPU is their sum; peak RSS (%M) is the largest single process, not a sum.
      cmd=(bash "${ROOT}/bench/curl-copy.sh" "${SRC}" "${DST}" "${repo}" v1
        "$(jq -r .media_type "${SEED}")" "$(jq -r .digest "${SEED}")" "${BLOBS[@]}")
      ;;
  esac
  /usr/bin/time -o "${TMP}/time.txt" -f '%e %U %S %M' "${cmd[@]}" >"${TMP}/out.txt" 2>"${TMP}/err.txt" || rc=$?
  if ((rc != 0)); then
    cat "${TMP}/err.txt" >&2
    fail "${tool} copy failed (exit ${rc}) on variant ${variant}, run ${run}"
  fi
  check_copy "${tool}" "${dst_dir}" "${DST}" "${repo}"
  read -r wall user sys rss_kib <"${TMP}/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${variant}" "${tool}" "${run}" "${wall}" "${user}" \
    "${sys}" "${rss_kib}" "${BLOB_BYTES}" >>"${RESULTS}"
  awk -v r="${run}" -v t="${tool}" -v w="${wall}" -v u="${user}" -v s="${sys}" -v k="${rss_kib}" \
    'BEGIN { printf "  run %s  %-8s wall %7.2f s   cpu %7.2f s   peak rss %7.1f MiB\n", r, t, w, u + s, k / 1024 }'
}

for variant in ${VARIANTS}; do
  n_layers="${variant%x*}"
  mib="${variant#*x}"
  section "Variant ${n_layers} layers x ${mib} MiB: seeding ${SRC}/bench/${variant}:v1"
  SEED="${TMP}/seed-${variant}.json"
  python3 "${ROOT}/scripts/seed_image.py" --registry "${SRC}" --repository "bench/${variant}" \
    --tag v1 --platform linux/amd64 --no-index --layers "${n_layers}" \
    --layer-bytes $((mib * 1024 * 1024)) >"${SEED}"
  DIGEST="$(jq -r .digest "${SEED}")"
  BLOB_BYTES="$(jq -r .blob_bytes "${SEED}")"
  mapfile -t BLOBS < <(jq -r '.platforms[0] | .config.digest, .layers[].digest' "${SEED}")
  echo "  ${DIGEST}: ${#BLOBS[@]} blobs, ${BLOB_BYTES} bytes"
  for run in $(seq 1 "${RUNS}"); do
    for tool in ${TOOLS}; do
      run_one "${variant}" "${tool}" "${run}"
    done
  done
done

section "Results (medians of ${RUNS} runs; client side only, the registries are not counted)"
report_args=("${RESULTS}")
[[ -n "${BENCH_JSON:-}" ]] && report_args+=(--json "${BENCH_JSON}")
[[ "${BENCH_STRICT:-0}" == 1 ]] && report_args+=(--strict)
python3 "${ROOT}/bench/report.py" "${report_args[@]}"
