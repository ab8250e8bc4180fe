#!/usr/bin/env bash
# Call 3 (2026-12-05g): the tree of f824c6e (RoPE + append by row, PDL-launched decode attention and residual +
# RMSNorm, one decode attention split up to 256 keys): the engine's GPU tests and memcheck of the RoPE and attention
# tests, then the one-job long-prompt table (nvrar-llm + cuDNN attention, then the PyTorch reference, then the table).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o3; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 585 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 575 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_engine_gpu test_gemm_gpu test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build ready
for t in test_engine_gpu test_gemm_gpu test_residual_rmsnorm_gpu; do
  timeout 120 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_engine_gpu --gtest_brief=1 --gtest_filter="*Rope*:*Attention*" > $W/memcheck_engine.log 2>&1
stamp "memcheck rope+attention rc=$? $(grep -E "ERROR SUMMARY" $W/memcheck_engine.log)"
LONG_SKIP_TORCH=1 timeout 290 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) - 12 )) timeout $(( $(left) - 8 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
stamp "torch rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cat $W/lb/long_context.md
stamp end
'
tar czf $OUT/r3.tgz -C /tmp o3
