#!/usr/bin/env bash
# Call 1 (2026-12-05b): wgmma2 correctness + prefill A/B; decode PDL chain A/B against 8553900; engine check; sanitizer.
# Run from a `git archive` of the tree (the PDL-chain change, not committed) with base/ = `git archive 8553900`.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o1; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 535 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 520 - ($(date +%s) - T0) )); }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
   -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH="$PWD/.deps" && \
 cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
BUILD_TARGETS="nvrar-llm test_flash_prefill_gpu test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 > $W/flash.log 2>&1
stamp "flash rc=$? $(grep -E "PASSED|FAILED" $W/flash.log | tr "\n" " ")"
build/gpu/tests/test_engine_gpu --gtest_brief=1 > $W/engine.log 2>&1
stamp "engine rc=$? $(grep -E "PASSED|FAILED" $W/engine.log | tr "\n" " ")"
o=$(find build/gpu -name "flash_prefill_wgmma_overlap.cu.o" | head -1)
cuobjdump -sass "$o" > $W/wgmma2.sass 2>&1; echo "DEPBAR lines: $(grep -c "WARPGROUP.DEPBAR" $W/wgmma2.sass) gsb0,0x1: $(grep -c "DEPBAR.LE gsb0, 0x1" $W/wgmma2.sass)" | tee -a $W/timeline.txt
for f in layers residual_rmsnorm attention_fused; do o=$(find build/gpu -name "$f.cu.o" | head -1); cuobjdump -sass "$o" | grep -E "Function|ACQBULK|PREEXIT|LDG|STG|LDGSTS" | awk "/Function/{print; n=0; next} n<3{print; n++}" ; done > $W/pdl_order.txt 2>&1
LONG_PREFILL_AB=1 LONG_PREFILL_KERNELS="wgmma wgmma2" LONG_AB_REPEAT=1 timeout 150 bash scripts/engine-long-bench.sh build/gpu $W/pab > $W/pab.log 2>&1
stamp "prefill A/B rc=$?"
wait
ENGINE_CHECK_TPS=1 ENGINE_BASELINE=base ENGINE_AB_REPEAT=2 ENGINE_BENCH="1:llama3.1-8b:1:0:auto:128:64 1:llama3.1-8b:8:0:auto:128:64 1:llama3.1-8b:1:0:auto:8192:64" \
  OUT=$W/eng timeout $(( $(left) - 90 )) bash scripts/gpu-check.sh engine > $W/eng.log 2>&1
stamp "engine stage rc=$?"
ENGINE_SANITIZE="memcheck racecheck" ENGINE_SANITIZE_TIMEOUT=90 OUT=$W timeout $(( $(left) - 10 )) bash scripts/gpu-check.sh enginesan > $W/san.log 2>&1
stamp "sanitizer rc=$?"
'
tar czf $OUT/r1.tgz -C /tmp o1
