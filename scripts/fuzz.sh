#!/usr/bin/env bash
# Builds the libFuzzer targets of the file parsers (fuzz/, clang + ASan + UBSan, in build/fuzz), replays the
# regression inputs in fuzz/regressions/ (ctest), then fuzzes each target for SECONDS (default 60) from its
# generated seeds plus the corpus earlier runs grew in build/fuzz/corpus/<target>.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (targets: all of fuzz/CMakeLists.txt by default)
# Exit status 1 when a regression input fails or a run finds anything (crash, sanitizer report, leak, timeout,
# out-of-memory); each finding's input is kept in build/fuzz/crashes/<target>/ and copied to
# fuzz/regressions/<target>/, where it is a ctest test from the next build on (commit it with the fix).
# Settings (environment):
#   NVRAR_FUZZ_PARALLEL=N    targets fuzzed at once (default 1)
#   NVRAR_FUZZ_KEEP_GOING=1  keep fuzzing after a finding (libFuzzer -fork=1 -ignore_crashes ...) to collect
#                            several in one long run; the status is still 1 if any was found
#   NVRAR_FUZZ_BUILD_JOBS=N  build parallelism (default: nproc)
#   CXX_FUZZ=clang++-14      the compiler (any clang with libFuzzer)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS_PER_TARGET must be a positive integer, got '$seconds'" >&2
  exit 2
fi
parallel=${NVRAR_FUZZ_PARALLEL:-1}
build=build/fuzz

cmake -S . -B "$build" -G Ninja -DNVRAR_FUZZ=ON -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++-14}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DNVRAR_CUDA=OFF -DNVRAR_MPI=OFF \
  -DNVRAR_NVSHMEM=OFF -DNVRAR_BUILD_TESTS=OFF -DNVRAR_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" --target nvrar_fuzz -j "${NVRAR_FUZZ_BUILD_JOBS:-$(nproc)}"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^set(NVRAR_FUZZ_TARGETS \(.*\))$/\1/p' fuzz/CMakeLists.txt | tr ' ' '\n')
fi
for t in "${targets[@]}"; do
  if [ ! -x "$build/fuzz/fuzz_$t" ]; then
    echo "fuzz.sh: no fuzz target '$t' (fuzz/CMakeLists.txt lists them)" >&2
    exit 2
  fi
done

status=0
echo "fuzz.sh: replaying fuzz/regressions/"
if ! ctest --test-dir "$build" -L fuzz --output-on-failure -j "${NVRAR_FUZZ_BUILD_JOBS:-$(nproc)}"; then
  echo "fuzz.sh: FAILED: a regression input still fails (above)" >&2
  status=1
fi

# One target's run; its summary line goes to $build/logs/<target>.result.
fuzz_one() {
  local t=$1
  local corpus=$build/corpus/$t crashes=$build/crashes/$t log=$build/logs/$t.log
  mkdir -p "$corpus" "$crashes" "$build/logs" "fuzz/regressions/$t"
  local before
  before=$(find "$crashes" -type f | wc -l)
  local extra=()
  if [ "${NVRAR_FUZZ_KEEP_GOING:-0}" = 1 ]; then extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1); fi
  # -timeout: one input running 25 s is a hang (the parsers take microseconds); -rss_limit_mb: libFuzzer's default.
  local rc=0
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 -print_funcs=0 \
    -dict="$build/fuzz/dicts/$t.dict" -artifact_prefix="$crashes/" "${extra[@]}" \
    "$corpus" "$build/fuzz/seeds/$t" >"$log" 2>&1 || rc=$?
  local found
  found=$(($(find "$crashes" -type f | wc -l) - before))
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then  # fork mode prints no final stats: the last progress line's count
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  local result=ok
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    result="FAILED (rc $rc, $found new input(s) in $crashes)"
    find "$crashes" -type f -newer "$log.start" -exec cp {} "fuzz/regressions/$t/" \;
  fi
  printf '%-18s %6ss %12s execs %6s corpus  %s\n' "$t" "$seconds" "${execs:-?}" \
    "$(find "$corpus" -type f | wc -l)" "$result" >"$build/logs/$t.result"
  [ "$result" = ok ]
}

running=0
for t in "${targets[@]}"; do
  mkdir -p "$build/logs"
  touch "$build/logs/$t.log.start"
  echo "fuzz.sh: fuzzing $t for ${seconds}s (log: $build/logs/$t.log)"
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done

echo "fuzz.sh: target             time        executions  corpus  result"
for t in "${targets[@]}"; do
  cat "$build/logs/$t.result"
  if ! grep -q ' ok$' "$build/logs/$t.result"; then
    grep -m1 -B2 -A14 'ERROR: \|nvrar fuzz: invariant\|deadly signal\|timeout after\|out-of-memory' \
      "$build/logs/$t.log" | sed "s/^/  $t: /" || true
  fi
done
exit "$status"
