#!/usr/bin/env bash
# GPU machine: build NVRAR with NVSHMEM and run the GPU tests and benchmarks, one scripted call.
#   bash scripts/gpu-check.sh [build] [unit] [correct] [timeout] [sanitize] [chunks] [sleep] [bulk] [bench] [all]
# CORRECT_CFGS / BENCH_CFGS: 'ranks:gpus_per_node ...' to run a subset. Needs .deps/ (scripts/stage-deps.sh, run where apt works) unless the packages are installed. Logs go to $OUT
# (the device tool's output folder) or ./out. Prints a short summary last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
stages=" ${*:-all} "
want() { [[ "$stages" == *" $1 "* || "$stages" == *" all "* ]]; }

# Never NVLink multicast (it can take shared GPUs out of service).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
BUILD=build/gpu
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
summary=()
note() { summary+=("$1"); echo "== $1"; }
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x NCCL_NVLS_ENABLE -x NVSHMEM_DISABLE_NVLS
        -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x LD_LIBRARY_PATH -x NVRAR_GPUS_PER_NODE -x NVRAR_TIMEOUT_MS
        -x NVRAR_INTER_NODE_STORES -x NVRAR_AUTO_MAX_BYTES -x NVRAR_MAX_BLOCKS -x NVRAR_CHUNK_UNITS -x NVRAR_POLL_SLEEP_NS -x NVRAR_BULK_MIN_BYTES)

if want build; then
  nvidia-smi -L > "$OUT/gpus.txt"; nvidia-smi topo -m >> "$OUT/gpus.txt" 2>&1
  if cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
       -DNVRAR_MPI=ON > "$OUT/build.log" 2>&1 && cmake --build $BUILD -j 16 >> "$OUT/build.log" 2>&1; then
    note "build: ok ($(grep -m1 'NVRAR:' "$OUT/build.log"))"
  else
    note "build: FAILED"; tail -40 "$OUT/build.log"; printf '%s\n' "${summary[@]}"; exit 1
  fi
fi

if want unit; then
  (cd $BUILD && ctest -j 8 --output-on-failure -R "Gpu|gpu" > "$OUT/ctest.log" 2>&1)
  note "unit (ctest, GPU tests): $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
fi

run_split() {  # ranks gpus_per_node log args...
  local np=$1 g=$2 log=$3; shift 3
  NVRAR_GPUS_PER_NODE=$g timeout "${RUN_TIMEOUT:-240}" "${MPIRUN[@]}" -np "$np" "$@" > "$log" 2>&1
  echo $?
}

if want correct; then
  for cfg in ${CORRECT_CFGS:-1:1 2:2 2:1 4:4 4:2 4:1}; do
    set -- ${cfg/:/ }
    [ "$1" -le "$NGPU" ] || continue
    rc=$(run_split "$1" "$2" "$OUT/correct_np$1_g$2.log" $BUILD/tests/test_gpu_allreduce --suite correctness)
    note "correctness np=$1 G=$2: rc=$rc $(grep -E 'passed, .* failed' "$OUT/correct_np$1_g$2.log" | tail -1)"
  done
fi

if want timeout; then
  rc=$(NVRAR_TIMEOUT_MS=300 run_split 2 2 "$OUT/timeout.log" $BUILD/tests/test_gpu_allreduce --suite timeout)
  note "timeout suite np=2: rc=$rc $(grep -E 'passed, .* failed' "$OUT/timeout.log" | tail -1)"
fi

if want sanitize; then  # compute-sanitizer on the small suite: 1 x 2 (intra-node phases) and 2 x 1 (puts)
  for tool in memcheck racecheck; do
    for g in 2 1; do
      log="$OUT/sanitize_${tool}_g$g.log"
      rc=$(run_split 2 $g "$log" compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 9 \
           $BUILD/tests/test_gpu_allreduce --suite sanitizer)
      note "compute-sanitizer $tool np=2 G=$g: rc=$rc $(grep -E 'ERROR SUMMARY|passed, .* failed' "$log" | sort | uniq -c | tr '\n' ' ')"
      grep -E -A4 '^========= (Invalid|Race|Error|Program hit)' "$log" | head -20
    done
  done
fi

if want chunks; then  # chunk-size sweep of the hierarchical kernel (threads per block), 4 GPUs as 1 x 4
  for cu in ${CHUNK_LIST:-0 64 128 256 512}; do
    NVRAR_CHUNK_UNITS=$cu run_split 4 4 "$OUT/chunks_$cu.log" $BUILD/tools/nvrar-bench --backend gpu \
      --algorithms hierarchical -e 4M > /dev/null
    echo "== NVRAR_CHUNK_UNITS=$cu (1x4, hierarchical, us):" \
      "$(grep -E '^ +[0-9]+ ' "$OUT/chunks_$cu.log" | awk '{printf "%s:%s ", $1, $6}')"
  done
fi

if want sleep; then  # poll back-off sweep of the hierarchical kernel, 1 x 4 and 4 x 1
  for g in 4 1; do
    for ns in ${SLEEP_LIST:-0 32 128 512}; do
      NVRAR_POLL_SLEEP_NS=$ns run_split 4 $g "$OUT/sleep_g${g}_$ns.log" $BUILD/tools/nvrar-bench --backend gpu \
        --algorithms hierarchical -e 4M > /dev/null
      echo "== G=$g NVRAR_POLL_SLEEP_NS=$ns (hierarchical, us):" \
        "$(grep -E '^ +[0-9]+ ' "$OUT/sleep_g${g}_$ns.log" | awk '{printf "%s:%s ", $1, $6}')"
    done
  done
fi

if want bulk; then  # cells everywhere vs bulk form everywhere, hierarchical, 4 GPUs as 1 x 4 and 1 x 2
  for g in 4 2; do
    for b in 1099511627776 0; do
      NVRAR_BULK_MIN_BYTES=$b run_split $g $g "$OUT/bulk_g${g}_$b.log" $BUILD/tools/nvrar-bench --backend gpu \
        --algorithms hierarchical,nccl -e 4M --check > /dev/null
      echo "== 1x$g NVRAR_BULK_MIN_BYTES=$b (hierarchical us | nccl us):" \
        "$(grep -E '^ +[0-9]+ ' "$OUT/bulk_g${g}_$b.log" | awk '{printf "%s:%s/#%s ", $1, $6, $9}')"
    done
  done
fi

if want bench; then
  for cfg in ${BENCH_CFGS:-2:2 2:1 4:4 4:2 4:1}; do
    set -- ${cfg/:/ }
    [ "$1" -le "$NGPU" ] || continue
    rc=$(run_split "$1" "$2" "$OUT/bench_np$1_g$2.log" $BUILD/tools/nvrar-bench --backend gpu --check \
         --json "$OUT/bench_np$1_g$2.json")
    note "bench np=$1 G=$2: rc=$rc"
  done
fi

echo; echo "==== summary"; printf '%s\n' "${summary[@]}"
