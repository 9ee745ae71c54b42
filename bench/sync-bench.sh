#!/usr/bin/env bash
# Bulk sync benchmark: `promote sync` promoting N tags (default 200) through the sync path on the
# local stand-ins, with the time per promotion and the peak PutImage rate it reached.
#
#   bench/sync-bench.sh
#
# Two local docker-registry instances (plain HTTP): the upstream, seeded with N small distinct
# images tagged 1.0.0, 1.0.1, … (bench/seed_tags.py), and the destination holding the quarantine
# and trusted repositories, whose access log records every request. `promote sync` runs with a
# throwaway P-256 key file (for KMS) and an empty findings file (for Inspector): every tag is
# copied, gated, promoted and annotated, signed (bundle and legacy signature, attestation) and
# tagged `dev-<tag>`. Then it runs again, which must promote nothing. Prints: tags promoted, wall
# time, time per promotion, the client's CPU and peak RSS (GNU time), manifest PUTs (ECR's
# PutImage) in total and per promotion, and the highest number in any one second against ECR's
# default quota of 10 PutImage per second per region; then the re-run's figures.
#
# Environment:
#   BENCH_TAGS=200               tags to seed and promote
#   BENCH_PUT_RATE=10            promote sync --max-put-rate (0: unpaced)
#   BENCH_TMPDIR=${TMPDIR:-/tmp} where the registries store blobs
#   PROMOTE_BIN=PATH             use this promote binary instead of building --release
#
# Not part of the test command: it promotes hundreds of images and takes minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "${ROOT}/scripts/lib.sh"

TAGS="${BENCH_TAGS:-200}"
PUT_RATE="${BENCH_PUT_RATE:-10}"
require_positive TAGS
[[ "${PUT_RATE}" =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "BENCH_PUT_RATE=${PUT_RATE} must be a number (0: unpaced)"

TMP="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/sync-bench.XXXXXX")"
cleanup() {
  registry_stop_all
  rm -rf "${TMP}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "Set up"
bash "${ROOT}/scripts/setup.sh" system rust bench
if [[ -n "${PROMOTE_BIN:-}" ]]; then
  PROMOTE="${PROMOTE_BIN}"
  [[ -x "${PROMOTE}" ]] || fail "PROMOTE_BIN=${PROMOTE} is not executable"
else
  build_promote
fi
echo "promote: ${PROMOTE} ($("${PROMOTE}" --version))"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"

registry_start "${TMP}/src" SRC
REGISTRY_ACCESS_LOG=1 registry_start "${TMP}/dst" DST
echo "upstream ${SRC}, destination ${DST} (access log: ${TMP}/dst/registry.log)"

section "Seeding ${SRC}/bench/app with ${TAGS} tags"
t0="$(date +%s.%N)"
python3 "${ROOT}/bench/seed_tags.py" "${SRC}" bench/app "${TAGS}" >/dev/null
echo "seeded in $(python3 -c "import time; print(f'{time.time() - ${t0}:.1f}')") s"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "${TMP}/key.pem" 2>/dev/null
echo '{"findings": []}' >"${TMP}/findings.json"

# sync_once NAME: one `promote --json sync`, timed by GNU time; report in TMP/NAME.json.
sync_once() {
  local name="$1"
  /usr/bin/time -f '%e %U %S %M' -o "${TMP}/${name}.time" \
    "${PROMOTE}" --insecure-registry "${SRC}" --insecure-registry "${DST}" --json \
    sync "${SRC}/bench/app" --semver '>=1' \
    --quarantine "${DST}/quarantine/app" --trusted "${DST}/trusted/app" \
    --key "${TMP}/key.pem" --findings "${TMP}/findings.json" --max-put-rate "${PUT_RATE}" \
    >"${TMP}/${name}.json" 2>"${TMP}/${name}.err" ||
    { tail -n 20 "${TMP}/${name}.err" >&2; fail "promote sync (${name}) failed"; }
  cp "${TMP}/dst/registry.log" "${TMP}/${name}.access.log"
}

section "promote sync: ${TAGS} tags, at most ${PUT_RATE} manifest PUTs per second (0: unpaced)"
sync_once first
section "promote sync again (must promote nothing)"
sync_once second

python3 - "${TMP}" "${TAGS}" <<'PY'
import json, re, sys
from collections import Counter
tmp, tags = sys.argv[1], int(sys.argv[2])

def figures(name, previous_puts=0):
    report = json.load(open(f"{tmp}/{name}.json"))
    wall, user, sys_, rss_kib = open(f"{tmp}/{name}.time").read().split()
    # Access log lines: ... [05/Dec/2026:12:48:30 +0000] "PUT /v2/.../manifests/... HTTP/1.1" 201 ...
    per_second = Counter()
    puts = 0
    for line in open(f"{tmp}/{name}.access.log", errors="replace"):
        m = re.search(r'\[([^\]]+)\] "PUT /v2/\S+/manifests/', line)
        if m:
            puts += 1
            if puts > previous_puts:
                per_second[m.group(1)] += 1
    return report, float(wall), float(user) + float(sys_), int(rss_kib) / 1024, puts - previous_puts, per_second

first, wall, cpu, rss, puts, per_second = figures("first")
promoted = first["promoted"]
assert promoted == tags, f"promoted {promoted} of {tags}: {first['failed']} failed, {first['denied']} denied"
peak = max(per_second.values()) if per_second else 0
print(f"\n== Results ({tags} tags)")
print(f"first sync:  {promoted} promoted in {wall:.1f} s: {1000 * wall / promoted:.0f} ms per promotion; "
      f"client CPU {cpu:.1f} s ({1000 * cpu / promoted:.0f} ms per promotion), peak RSS {rss:.1f} MiB")
print(f"             manifest PUTs (ECR PutImage): {puts} ({puts / promoted:.1f} per promotion); "
      f"peak {peak} in one second, mean {puts / wall:.1f}/s (ECR's default quota: 10/s per region)")
second, wall2, cpu2, rss2, puts2, _ = figures("second", puts)
print(f"second sync: {second['promoted']} promoted, {second['present']} already there in {wall2:.1f} s "
      f"(CPU {cpu2:.1f} s, {puts2} manifest PUTs)")
assert second["promoted"] == 0 and puts2 == 0, "the re-run wrote something"
PY
