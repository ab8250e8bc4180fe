#!/usr/bin/env bash
# Call 2: swiglu x8 + small-kernel PDL (no GEMM trigger) against 8553900 (decode, prefill); wgmma vs wgmma2 again;
# wgmma2 ablations (temporary, this snapshot only: NVRAR_X_ABLATE 1 no K/V loads in the loop, 2 no softmax, 3 both).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 540 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 525 - ($(date +%s) - T0) )); }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
   -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH="$PWD/.deps" && \
 cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
BUILD_TARGETS="nvrar-llm test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
build/gpu/tests/test_engine_gpu --gtest_brief=1 > $W/engine.log 2>&1
stamp "engine rc=$? $(grep -E "PASSED|FAILED" $W/engine.log | tr "\n" " ")"
grep -E "Failure|Expected|Which is" $W/engine.log | head -10
(ls /usr/local/cuda/bin; which ncu nsys; ls /opt/nvidia 2>/dev/null) > $W/tools.txt 2>&1
wait
stamp "base build: $(tail -1 $W/base-build.log)"
ENGINE_CHECK_TPS=1 ENGINE_BASELINE=base ENGINE_AB_REPEAT=2 ENGINE_BENCH="1:llama3.1-8b:1:0:auto:128:64 1:llama3.1-8b:8:0:auto:128:64 1:llama3.1-8b:1:0:auto:8192:64" \
  OUT=$W/eng timeout 200 bash scripts/gpu-check.sh engine > $W/eng.log 2>&1
stamp "engine stage rc=$?"; grep "^== engine check\|^== engine greedy" $W/eng.log | cut -c1-250
for f in $W/eng/*.json; do python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[1].split(\"/\")[-1], round(j.get(\"decode_step_ms_median\"),3), {k: round(v) for k, v in j.get(\"breakdown_us\").items()})" $f; done 2>/dev/null | tee $W/eng_summary.txt
for b in new base; do
  B=build/gpu; [ $b = base ] && B=/tmp/nvrar-base
  LONG_CASES="prefill:1:2048 prefill:8:2048 prefill:1:8192" LONG_SKIP_TORCH=1 LONG_SKIP_CUDNN=1 timeout 120 \
    bash scripts/engine-long-bench.sh $B $W/pf_$b > $W/pf_$b.log 2>&1
  stamp "prefill $b rc=$?"; grep -h "^== nvrar-llm" $W/pf_$b.log | cut -c1-160
done
grep -h "Prefill split" $W/pf_new/*.log
LONG_PREFILL_AB=1 LONG_PREFILL_KERNELS="wgmma wgmma2" LONG_CASES="prefill:8:2048 prefill:1:32768 prefill:1:2048" LONG_AB_REPEAT=1 timeout 120 bash scripts/engine-long-bench.sh build/gpu $W/pab > $W/pab.log 2>&1
stamp "prefill A/B rc=$?"; grep -h "^== nvrar-llm" $W/pab.log | cut -c1-160; grep -h "Prefill split" $W/pab/*.log
for a in 0 1 2 3; do
  NVRAR_X_ABLATE=$a NVRAR_LLM_PREFILL_ATTENTION=wgmma2 timeout 60 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 1 \
    -x NVRAR_X_ABLATE -x NVRAR_LLM_PREFILL_ATTENTION -x NCCL_NVLS_ENABLE -x NVSHMEM_DISABLE_NVLS -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x LD_LIBRARY_PATH \
    build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len 8192 --output-len 2 \
    --num-iters-warmup 1 --num-iters 2 > $W/ablate_$a.log 2>&1
  stamp "ablate $a rc=$? $(grep -h "Prefill split" $W/ablate_$a.log)"
done
'
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
stamp "end"
rm -f $W/*/long_all.tgz
tar czf $OUT/r2.tgz -C /tmp o2
