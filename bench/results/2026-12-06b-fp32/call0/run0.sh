#!/usr/bin/env bash
# Call 6 (prepared in the tenth session, not run): test_gemm_gpu (its new GemmPlanRoundTrips test has not run),
# then call 5 again on the card the issue's goals are set on (ask for an H200): the flash tests, the fp32 check with
# the defaults (wgmma-ws), the one-job long-prompt table (nvrar-llm + cuDNN, then the PyTorch reference).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o6; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 585 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 580 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_flash_prefill_gpu test_gemm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 60 build/gpu/tests/test_gemm_gpu --gtest_brief=1 > $W/gemm.log 2>&1
stamp "test_gemm_gpu rc=$? $(grep -E "PASSED|FAILED" $W/gemm.log | tr "\n" " ")"
timeout 60 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 > $W/flash_all.log 2>&1
stamp "flash all rc=$? $(grep -E "PASSED|FAILED" $W/flash_all.log | tr "\n" " ")"
timeout 170 bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
stamp "longcheck (defaults: wgmma-ws) rc=$? $(grep -cE "PASSED" $W/lc.log) passed lines"
grep -h "against fp32" $W/lc/check_*.log | tee $W/lc_ratios.txt; cp $W/lc.log $W/lc_ratios.txt $OUT/
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
tar czf $OUT/r6.tgz -C /tmp o6
