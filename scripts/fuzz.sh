#!/usr/bin/env bash
# Fuzzing: runs the cargo-fuzz targets in fuzz/ for a bounded time each. NOT part of CI
# (scripts/test.sh and .ci/run never call it): run it by hand, e.g. before a release or after
# changing a parser.
#
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS each
#   scripts/fuzz.sh policy reference only these targets
#   FUZZ_SECONDS=300 scripts/fuzz.sh
#
# The targets (fuzz/fuzz_targets/) feed arbitrary bytes to what promotion-core reads from
# hostile input: manifests and indexes, image references and repository settings, gate
# policies, findings files, the steps' JSON requests, environments documents, the one selection
# of an image's manifests (on an in-memory registry) and manifest mutation. Each must end with
# Ok or Err: a panic, a timeout (-timeout=10: one input running over 10 s) or running out of
# memory is a finding.
#
# Environment:
#   FUZZ_SECONDS      seconds of fuzzing per target (default 60; the build is not counted)
#   FUZZ_TARGET_DIR   build directory and working corpus, outside the clone by default
#                     (${TMPDIR:-/tmp}/ecr-promotion-fuzz); kept between runs
#   FUZZ_SANITIZER    none (default: the domain has no unsafe code) or address
#   FUZZ_ARGS         more libFuzzer options, e.g. "-fork=1 -ignore_crashes=1" to go on past
#                     a known crash (each crash is still written and reported)
#   CARGO_BUILD_JOBS  build parallelism, as for cargo
#
# Needs cargo-fuzz (installed here with `cargo install cargo-fuzz --locked` when missing) and
# runs it on the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo fuzz passes nightly flags).
# Seeds are read from fuzz/corpus/<target>/ and never written; what the fuzzer learns goes to
# $FUZZ_TARGET_DIR/corpus/<target>/; crash, timeout and OOM inputs to fuzz/artifacts/<target>/
# (ignored by git). Prints, per target, the executions run and whether it found anything, and
# exits non-zero when any target did. Safe to run again.
#
# Turning a finding into a regression test:
#   1. reproduce it (the run prints the file):
#        RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --sanitizer none <target> \
#          fuzz/artifacts/<target>/crash-<sha1>
#   2. minimise it:
#        RUSTC_BOOTSTRAP=1 cargo fuzz tmin --fuzz-dir fuzz --sanitizer none <target> \
#          fuzz/artifacts/<target>/crash-<sha1>
#      (prints the path of the minimised file, fuzz/artifacts/<target>/minimized-from-<sha1>)
#   3. add a #[test] to crates/promotion-core/tests/fuzz_regressions.rs that feeds those bytes,
#      inline as a byte string (`od -c` or `xxd -i` shows them), to the same API as the target
#      and asserts a clean error; fix the code until it passes;
#   4. optionally keep the input as a seed: copy it to fuzz/corpus/<target>/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="${ROOT}/fuzz"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
WORK="${FUZZ_TARGET_DIR:-${TMPDIR:-/tmp}/ecr-promotion-fuzz}"
SANITIZER="${FUZZ_SANITIZER:-none}"

fail() {
  printf 'fuzz.sh: %s\n' "$*" >&2
  exit 2
}

[[ "${SECONDS_EACH}" =~ ^[1-9][0-9]*$ ]] || fail "FUZZ_SECONDS must be a whole number of seconds"
case "${SANITIZER}" in
  none | address) ;;
  *) fail "FUZZ_SANITIZER must be none or address" ;;
esac

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME}/.cargo/bin/cargo" ]]; then
  export PATH="${HOME}/.cargo/bin:${PATH}"
fi
command -v cargo >/dev/null 2>&1 || fail "cargo is not installed"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd "${ROOT}"
fuzz() {
  cargo fuzz "$1" --fuzz-dir "${FUZZ_DIR}" "${@:2}"
}

mapfile -t ALL < <(fuzz list)
((${#ALL[@]} > 0)) || fail "no fuzz targets in ${FUZZ_DIR}"
if (($# > 0)); then
  TARGETS=("$@")
  for t in "${TARGETS[@]}"; do
    known=0
    for a in "${ALL[@]}"; do
      [[ "${a}" == "${t}" ]] && known=1
    done
    ((known)) || fail "unknown target ${t}; the targets are: ${ALL[*]}"
  done
else
  TARGETS=("${ALL[@]}")
fi

read -r -a EXTRA <<<"${FUZZ_ARGS:-}"
mkdir -p "${WORK}/logs"
echo "fuzz.sh: building ${TARGETS[*]} (sanitizer ${SANITIZER}, target dir ${WORK}/target)"
for t in "${TARGETS[@]}"; do
  fuzz build --sanitizer "${SANITIZER}" --target-dir "${WORK}/target" "${t}"
done

SUMMARY=()
FOUND=0
for t in "${TARGETS[@]}"; do
  corpus="${WORK}/corpus/${t}"
  seeds="${FUZZ_DIR}/corpus/${t}"
  artifacts="${FUZZ_DIR}/artifacts/${t}"
  log="${WORK}/logs/${t}.log"
  mkdir -p "${corpus}" "${seeds}" "${artifacts}"
  echo "fuzz.sh: ${t}: fuzzing for ${SECONDS_EACH}s (log: ${log})"
  marker="${WORK}/logs/${t}.started"
  touch "${marker}"
  rc=0
  t0=${SECONDS}
  # The first corpus directory is where libFuzzer writes new inputs: the working one.
  fuzz run --sanitizer "${SANITIZER}" --target-dir "${WORK}/target" "${t}" \
    "${corpus}" "${seeds}" -- \
    -max_total_time="${SECONDS_EACH}" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="${artifacts}/" "${EXTRA[@]}" >"${log}" 2>&1 || rc=$?
  # libFuzzer's own count of the seconds it fuzzed (the wall clock also counts a rebuild).
  took="$(grep -oE '^(Done [0-9]+ runs in|INFO: fuzzed for) [0-9]+ second' "${log}" |
    grep -oE '[0-9]+ second' | grep -oE '[0-9]+' | tail -n 1 || true)"
  took="${took:-$((SECONDS - t0))}"
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "${log}" | tail -n 1 |
    grep -o '[0-9]*$' || true)"
  if [[ -z "${execs}" ]]; then
    # Fork mode prints no final stats: its last status line counts the executions.
    execs="$(grep -oE '^#[0-9]+' "${log}" | tail -n 1 | tr -d '#' || true)"
  fi
  rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "${log}" | tail -n 1 |
    grep -o '[0-9]*$' || true)"
  # Inputs written during this run (fork mode does not name them in its log).
  mapfile -t written < <(find "${artifacts}" -maxdepth 1 -type f -newer "${marker}" \
    \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
  if ((rc == 0 && ${#written[@]} == 0)); then
    result="ok"
  else
    FOUND=1
    # crash (a panic or a signal), timeout, oom or leak: the artifact's prefix says which.
    kind="exit ${rc}"
    if ((${#written[@]} > 0)); then
      kind="$(basename "${written[0]}")"
      kind="${kind%%-*}"
    fi
    if grep -q 'panicked at' "${log}"; then
      kind="${kind}: panic"
    fi
    if ((${#written[@]} == 0)); then
      result="FOUND (${kind}): see ${log}"
    elif ((${#written[@]} == 1)); then
      result="FOUND (${kind}): ${written[0]}"
    else
      result="FOUND (${kind}): ${#written[@]} inputs, e.g. ${written[0]}"
    fi
    grep -E -A 3 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer' "${log}" | head -n 20 >&2 || true
  fi
  line="$(printf '%-13s %12s execs in %5ss (%s/s)  %s' "${t}" "${execs:-?}" "${took}" \
    "${rate:-?}" "${result}")"
  echo "fuzz.sh: ${line}"
  SUMMARY+=("${line}")
done

echo
echo "fuzz.sh: summary (${SECONDS_EACH}s per target)"
printf '  %s\n' "${SUMMARY[@]}"
if ((FOUND)); then
  echo "fuzz.sh: findings above; see the header of scripts/fuzz.sh to turn one into a test" >&2
  exit 1
fi
