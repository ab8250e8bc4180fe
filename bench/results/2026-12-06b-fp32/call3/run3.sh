#!/usr/bin/env bash
# Call 3 (twelfth session, tree 374adb9 + the test helper move): the GEMM, flash and fp32-activation tests, then the
# one-job long-prompt table of issue 17 (nvrar-llm + cuDNN, then the PyTorch reference), asked of an H200, on which
# the issue's goals are set.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o3; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 585 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 580 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_flash_prefill_gpu test_gemm_gpu test_fp32_activations_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 60 build/gpu/tests/test_gemm_gpu --gtest_brief=1 > $W/gemm.log 2>&1
stamp "test_gemm_gpu rc=$? $(grep -E "PASSED|FAILED" $W/gemm.log | tr "\n" " ")"
timeout 60 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 > $W/flash_all.log 2>&1
stamp "flash all rc=$? $(grep -E "PASSED|FAILED" $W/flash_all.log | tr "\n" " ")"
timeout 60 build/gpu/tests/test_fp32_activations_gpu --gtest_brief=1 > $W/fp32.log 2>&1
stamp "fp32 activations rc=$? $(grep -E "PASSED|FAILED" $W/fp32.log | tr "\n" " ")"
LONG_SKIP_TORCH=1 LONG_TIMEOUT=90 timeout $(( $(left) - 110 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) - 12 )) timeout $(( $(left) - 8 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
stamp "torch rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null; cat $W/lb/long_context.md
stamp end
'
cp $W/timeline.txt $OUT/ 2>/dev/null
rm -f $W/lb/long_all.tgz
tar czf $OUT/r3.tgz -C /tmp o3
