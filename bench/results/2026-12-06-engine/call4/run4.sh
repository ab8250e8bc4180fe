#!/usr/bin/env bash
# Call 4 (2026-12-06, tenth session; call 3's script run on an H200): the new prefill attention wgmma-ws (a TMA producer warp, the two warpgroups in turns): its
# tests (a hang is cut by the timeout), then the prefill A/B against wgmma-tma (the default), two runs each, then
# compute-sanitizer memcheck of its tests, then the fp32 check with it.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o4; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 450 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 445 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_flash_prefill_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 90 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 --gtest_filter="*WgmmaWs*" > $W/flash_ws.log 2>&1
rc=$?; cp $W/flash_ws.log $OUT/; stamp "flash wgmma-ws rc=$rc $(grep -E "PASSED|FAILED" $W/flash_ws.log | tr "\n" " ")"; head -c 3000 $W/flash_ws.log
if [ $rc = 0 ]; then
  LONG_PREFILL_AB=1 LONG_PREFILL_KERNELS="wgmma-tma wgmma-ws" LONG_CASES="prefill:1:8192 prefill:1:32768 prefill:8:2048" \
    timeout 180 bash scripts/engine-long-bench.sh build/gpu $W/pab > $W/pab.log 2>&1
  stamp "prefill A/B rc=$?"; cp $W/pab/prefill_ab.md $OUT/; cat $W/pab/prefill_ab.md
  timeout 90 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 > $W/flash_all.log 2>&1
  stamp "flash all rc=$? $(grep -E "PASSED|FAILED" $W/flash_all.log | tr "\n" " ")"
  timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 --gtest_filter="*WgmmaWs*" > $W/memcheck_ws.log 2>&1
  stamp "memcheck wgmma-ws rc=$?"
  if [ $(left) -gt 100 ]; then
    LONG_CHECK_ENVS=NVRAR_LLM_PREFILL_ATTENTION=wgmma-ws timeout $(( $(left) - 5 )) bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
    stamp "longcheck (wgmma-ws) rc=$? $(grep -cE "PASSED" $W/lc.log) passed lines"
  fi
fi
stamp end
'
cp $W/timeline.txt $OUT/ 2>/dev/null; cp $W/pab/prefill_ab.md $OUT/ 2>/dev/null
tar czf $OUT/r4.tgz -C /tmp o4
