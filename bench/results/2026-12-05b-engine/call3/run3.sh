#!/usr/bin/env bash
# Call 3: 47f1ec5 (swiglu x8, argmax NaN fix, prefill split) tested, then the one-job long-prompt table (nvrar-llm +
# cuDNN attention, then the PyTorch reference), then an Nsight Compute profile of the prefill attention.
# Asked for nvidia-h200 without needs_h200: it ran on an H100 80GB HBM3.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o3; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 545 bash -c '
left() { echo $(( 535 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_engine_gpu test_flash_prefill_gpu test_sampling_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
for t in test_engine_gpu test_flash_prefill_gpu test_sampling_gpu; do
  timeout 60 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
done
LONG_SKIP_TORCH=1 timeout 230 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) - 70 )) timeout $(( $(left) - 60 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
timeout $(( $(left) - 5 )) ncu --kernel-name regex:flash_prefill_wgmma_kernel --launch-skip 40 --launch-count 1 \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats \
  --section SchedulerStats --section Occupancy --section LaunchStats \
  build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len 8192 --output-len 2 \
  --num-iters-warmup 0 --num-iters 1 > $W/ncu_wgmma.txt 2>&1
'
tar czf $OUT/r3.tgz -C /tmp o3
