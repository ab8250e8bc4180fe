#!/usr/bin/env bash
# Call 7 (2026-12-05g): the review follow-ups (e6dfadc: the RoPE row test with head_dim 256 and 144 heads and a check
# that the row kernel runs; the norm's PDL launch only on one rank): test_engine_gpu, test_residual_rmsnorm_gpu,
# memcheck of the RoPE tests, the multi-rank harness; then the prefill attention grid's sections at other shares of
# L2 through a temporary experiment variable NVRAR_EXP_L2_PCT (exp_l2.patch, applied to this snapshot only, not
# committed): the instrumented prefill's attention phase at 1 x 32768 (0 / 70 / 200 / 1000 %: 1 / 2 / 4 / 8 KV heads
# per section on a 50 MB L2) and 1 x 8192 (0 / 30 / 60 / 70 %: 1 / 2 / 4 / 8), alternating, two rounds.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o7; rm -rf $W; mkdir -p $W/sec
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 225 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 215 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_engine_gpu test_residual_rmsnorm_gpu test_multirank" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for t in test_engine_gpu test_residual_rmsnorm_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_engine_gpu --gtest_brief=1 --gtest_filter="*Rope*" > $W/memcheck_rope.log 2>&1
stamp "memcheck rope rc=$? $(grep -E "ERROR SUMMARY" $W/memcheck_rope.log)"
timeout 60 build/gpu/tests/test_multirank --gtest_brief=1 > $W/multirank.log 2>&1
stamp "multirank rc=$? $(grep -E "^\[  (PASSED|FAILED) " $W/multirank.log | tr "\n" " ")"
run() {  # L pct r
  [ $(left) -gt 25 ] || return 0
  NVRAR_EXP_L2_PCT=$2 timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len $1 --output-len 2 \
    --num-iters-warmup 0 --num-iters 1 --json $W/sec/p_$1_$2_r$3.json > $W/sec/p_$1_$2_r$3.log 2>&1 || echo "run $1 $2 $3 failed"
}
for r in 1 2; do
  for p in 0 70 200 1000; do run 32768 $p $r; done
  for p in 0 30 60 70; do run 8192 $p $r; done
  stamp "round $r done"
done
for f in $W/sec/*.json; do python3 -c "import json,sys; d=json.load(open(sys.argv[1])); b=d[\"prefill_breakdown_us\"]; print(sys.argv[1].split(\"/\")[-1], round(d[\"prefill_ms_median\"],2), \"attention\", round(b[\"attention\"]/1000,2))" $f; done | tee $W/sec_summary.txt
stamp end
'
tar czf $OUT/r7.tgz -C /tmp o7
