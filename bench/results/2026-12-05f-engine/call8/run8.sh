#!/usr/bin/env bash
# Call 8 (2026-12-05f): test_residual_rmsnorm_gpu with the review's added cases (data over many binades, 8 and 11
# groups, the automatic choice and its fallback for a misaligned pointer), and under compute-sanitizer memcheck.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o8; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 170 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
BUILD_TARGETS="test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 60 build/gpu/tests/test_residual_rmsnorm_gpu > $W/test_residual_rmsnorm_gpu.log 2>&1
stamp "test rc=$? $(grep -E "PASSED|FAILED" $W/test_residual_rmsnorm_gpu.log | tr "\n" " ")"
grep -B2 -A10 Failure $W/test_residual_rmsnorm_gpu.log | head -30
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_residual_rmsnorm_gpu > $W/memcheck.log 2>&1
stamp "memcheck rc=$? $(grep "ERROR SUMMARY" $W/memcheck.log)"
'
tar czf $OUT/r8.tgz -C /tmp o8
