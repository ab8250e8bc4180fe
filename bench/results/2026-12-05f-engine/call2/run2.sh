#!/usr/bin/env bash
# Call 2 (2026-12-05f): the warp-per-row residual + RMSNorm rewritten with plain 16-byte loads (call 1's version, whose
# loads went through the unit helpers' branches, took the prefill's norm from 14.4 to 22.3 ms at 8 x 2048). Its bit
# test and memcheck, and prefill A/B against a build of b5bd7a7 (base/), alternating, 2 runs each, compared by the
# instrumented prefill's "all-reduce" phase (at TP 1: the residual + RMSNorm kernel). Ran from .snap as `bash run2.sh`.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 420 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
   -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH=$PWD/.deps && cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
bp=$!
BUILD_TARGETS="nvrar-llm test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
wait $bp; stamp "base build rc=$?"
timeout 60 build/gpu/tests/test_residual_rmsnorm_gpu > $W/test_residual_rmsnorm_gpu.log 2>&1
stamp "test_residual_rmsnorm_gpu rc=$? $(grep -E "PASSED|FAILED" $W/test_residual_rmsnorm_gpu.log | tr "\n" " ")"
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_residual_rmsnorm_gpu > $W/memcheck_residual_rmsnorm.log 2>&1
stamp "memcheck rc=$? $(grep "ERROR SUMMARY" $W/memcheck_residual_rmsnorm.log)"
run() {  # B L cfg rep bin
  local b=$1 l=$2 cfg=$3 r=$4 bin=$5
  timeout 60 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 2 \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/prefill_${b}_${l}_${cfg}_r$r.json > $W/ab/prefill_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "run $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 1:2048 8:2048 1:8192; do IFS=: read -r b l <<< "$c"
  run $b $l base $r /tmp/nvrar-base/tools/nvrar-llm
  run $b $l new $r build/gpu/tools/nvrar-llm
done; done
stamp "prefill A/B done"
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
for f in $W/ab/prefill_*.log; do echo "$(basename $f): $(grep -h "Prefill split" $f)"; done > $W/prefill_split.txt
stamp end
'
tar czf $OUT/r2.tgz -C /tmp o2
