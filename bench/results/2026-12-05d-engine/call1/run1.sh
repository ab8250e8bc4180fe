#!/usr/bin/env bash
# Call 1 (2026-12-05d): the GPU-unverified work of the last session (mma decode attention abc47bb, the refactored fused
# kernel, 8c0be78 wgmma load_panels hoist, wgmma-tma) tested; decode A/B fused vs mma; prefill A/B wgmma vs wgmma-tma;
# compute-sanitizer memcheck of the engine kernel tests with what time is left. Tree: 3eff6bd.
# Asked for nvidia-h200 without needs_h200 (an H200 did not start): it ran on an H100 80GB HBM3.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o1; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 545 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 535 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_engine_gpu test_flash_prefill_gpu test_sampling_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for t in test_engine_gpu test_flash_prefill_gpu test_sampling_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
grep -B2 -A8 -E "Failure" $W/test_*.log | head -60
LONG_DECODE_AB=1 LONG_DECODE_KERNELS="fused mma" LONG_AB_REPEAT=2 LONG_CASES="decode:1:8192 decode:8:8192 decode:1:32768 decode:1:128" \
  timeout 260 bash scripts/engine-long-bench.sh build/gpu $W/dab > $W/dab.log 2>&1
stamp "decode A/B rc=$?"; cat $W/dab/decode_ab.md 2>/dev/null
LONG_PREFILL_AB=1 LONG_PREFILL_KERNELS="wgmma wgmma-tma" LONG_AB_REPEAT=1 timeout $(( $(left) - 60 )) bash scripts/engine-long-bench.sh build/gpu $W/pab > $W/pab.log 2>&1
stamp "prefill A/B rc=$?"; cat $W/pab/prefill_ab.md 2>/dev/null
ENGINE_SANITIZE="memcheck" ENGINE_SANITIZE_TIMEOUT=60 OUT=$W timeout $(( $(left) - 5 )) bash scripts/gpu-check.sh enginesan > $W/san.log 2>&1
stamp "sanitizer rc=$?"; tail -5 $W/san.log
stamp end
'
tar czf $OUT/r1.tgz -C /tmp o1
