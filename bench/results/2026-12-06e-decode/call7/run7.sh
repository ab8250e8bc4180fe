#!/usr/bin/env bash
# Call 7 (fifteenth session, HEAD + call7/norm_tail.patch): the residual add + RMSNorm after o_proj and down_proj done
# by the skinny GEMM's last block to finish (NVRAR_EXP_NORM_TAIL=1; TP 1, bf16), no norm kernel between them and the
# next GEMM, against the same build without it, plans pinned, alternating; test_engine_gpu with it.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/n7; rm -rf $W; mkdir -p $W
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
nvidia-smi -L | tee $W/gpus.txt
BUILD_TARGETS="nvrar-llm test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
echo "[$(el)s] build done"
run() {  # run TAG B C [ENV...]
  local tag=$1 B=$2 C=$3; shift 3
  [ $(el) -gt 135 ] && return
  env "$@" timeout 20 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/$tag.log 2>&1
  echo "[$(el)s] $tag rc=$? $(grep -E '^Decode step \(median|rror' $W/$tag.log | head -2 | tr '\n' ' ')" | tee -a $W/summary.txt
}
run t_1_128 1 128
plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/t_1_128.log)
for r in 1 2; do
  run base_1_128_r$r 1 128 NVRAR_LLM_GEMM=$plan
  run tail_1_128_r$r 1 128 NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM_TAIL=1
done
NVRAR_EXP_NORM_TAIL=1 timeout 30 build/gpu/tests/test_engine_gpu --gtest_brief=1 > $W/engine_test.log 2>&1
echo "[$(el)s] test_engine_gpu (tail) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/engine_test.log | tr '\n' ' ')" | tee -a $W/summary.txt
run t_8_128 8 128
plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/t_8_128.log)
run base_8_128_r1 8 128 NVRAR_LLM_GEMM=$plan
run tail_8_128_r1 8 128 NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM_TAIL=1
cp $W/summary.txt $OUT/
tar czf $OUT/n7.tgz --exclude=build.log -C /tmp n7
