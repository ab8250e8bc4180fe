#!/usr/bin/env bash
# Call 1 (2026-12-05e): 037a164 (prefill block order) and 6b350ed (NVRAR_LLM_FUSE_ROPE) on a GPU for the first time.
# Tests, prefill A/B against a build of 0e9523d (base/: git archive 0e9523d), decode A/B FUSE_ROPE 0/1, fp32 check,
# memcheck. Tree: 41f36af. Ran from .snap (git archive HEAD + .deps) as `bash run1.sh`.
# NOTE: --num-iters-warmup 0 --num-iters 1 makes prefill_ms_median include first-run costs (cuBLASLt tuning of the
# prefill shapes); compare prefills by the instrumented prefill's split ("Prefill split" lines of the logs) instead.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o1; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 545 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 535 - ($(date +%s) - T0) )); }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
   -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH=$PWD/.deps && cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
bp=$!
BUILD_TARGETS="nvrar-llm test_engine_gpu test_gemm_gpu test_flash_prefill_gpu test_sampling_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
wait $bp; stamp "base build rc=$?"
for t in test_flash_prefill_gpu test_engine_gpu test_gemm_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
grep -B2 -A8 -E "Failure" $W/test_*.log | head -60
run() {  # kind B L cfg rep bin env...
  local kind=$1 b=$2 l=$3 cfg=$4 r=$5 bin=$6; shift 6
  local out=2; [ $kind = decode ] && out=64
  env "$@" timeout 90 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len $out \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/${kind}_${b}_${l}_${cfg}_r$r.json > $W/ab/${kind}_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "run $kind $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 1:2048 8:2048 1:8192 1:32768; do IFS=: read -r b l <<< "$c"
  run prefill $b $l new $r build/gpu/tools/nvrar-llm X=1
  run prefill $b $l base $r /tmp/nvrar-base/tools/nvrar-llm X=1
done; done
stamp "prefill A/B done"
for r in 1 2; do for c in 1:128 8:128 1:8192 8:8192; do IFS=: read -r b l <<< "$c"
  run decode $b $l rope0 $r build/gpu/tools/nvrar-llm NVRAR_LLM_FUSE_ROPE=0
  run decode $b $l rope1 $r build/gpu/tools/nvrar-llm NVRAR_LLM_FUSE_ROPE=1
done; done
stamp "decode A/B done"
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
timeout 130 bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
stamp "longcheck (defaults) rc=$?"; grep -E "^== " $W/lc.log | head -20
LONG_CHECK_ENVS="NVRAR_LLM_FUSE_ROPE=1" LONG_CHECKS="p1_d64_gqa1 p300_d128_gqa8 p2048_d64_gqa8_tied" timeout 70 bash scripts/engine-long-check.sh build/gpu $W/lcr > $W/lcr.log 2>&1
stamp "longcheck (fused rope) rc=$?"; grep -E "^== " $W/lcr.log | head -10
ENGINE_SANITIZE="memcheck" ENGINE_SANITIZE_TIMEOUT=60 OUT=$W timeout $(( $(left) - 5 )) bash scripts/gpu-check.sh enginesan > $W/san.log 2>&1
stamp "sanitizer rc=$?"; grep "compute-sanitizer" $W/san.log | tail -8
stamp end
'
tar czf $OUT/r1.tgz -C /tmp o1
