#!/usr/bin/env bash
# Call 10 (eleventh session): the flash prefill tests of the review's mends (the bounded waits' race-safe record,
# the 8 x 128-thread self-test in a death test, the grouped chunked run in 4 chunks).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/o10; rm -rf $W; mkdir -p $W
nvidia-smi -L
BUILD_TARGETS="test_flash_prefill_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
timeout 60 build/gpu/tests/test_flash_prefill_gpu > $W/flash.log 2>&1
echo "flash tests rc=$? $(grep -E "^\[  (PASSED|FAILED|SKIPPED)" $W/flash.log | tr "\n" " ")"
grep -E "OK \]|FAILED \]|Death" $W/flash.log | head -20
cp $W/flash.log $OUT/
