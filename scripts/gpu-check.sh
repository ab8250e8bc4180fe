#!/usr/bin/env bash
# GPU machine: build NVRAR with NVSHMEM and run the GPU tests and benchmarks, one scripted call.
#   bash scripts/gpu-check.sh [build] [multirank] [unit] [correct] [launch] [timeout] [sanitize] [profile] [shapes] [tune]
#                             [bench] [engine] [longcheck] [longbench] [torch] [spread] [ab] [pieces] [python] [all]
#                             [firstuse] [enginesan] [engineprof]
# BENCH_ARGS / TUNE_ARGS: extra nvrar-bench arguments (e.g. --ll128-max-bytes 64M). TUNE_MERGE_FROM=16M with
#   TUNE_ARGS='-b 16M ...': re-tune from that size up, merged over the shipped table (scripts/merge_tuning.py).
# spread: the small sizes SPREAD_REPEAT times with the start gate and without it (--no-start-gate), 1 x 4.
# ab: AB_SWAP='repo/path=replacement ...' builds a copy of the tree with those files replaced (in the background,
#   from the start of the script) and runs the same nvrar-bench sweep (AB_CFGS, AB_ALGOS, AB_MIN/AB_MAX, AB_ARGS:
#   extra arguments) with both builds AB_REPEAT times, alternating: ab_<cfg>_{a,b}_r<n>.json (a: this tree, b: the
#   swapped copy).
# pieces: the push two-shot at each NVRAR_PUSH_PIECE_UNITS of PIECES (PIECE_CFGS, PIECE_ALGOS, PIECE_MIN/PIECE_MAX):
#   pieces_<cfg>_u<units>.json.
# BUILD_TARGETS: build only these targets (e.g. 'nvrar-llm test_engine_gpu test_flash_prefill_gpu test_sampling_gpu'
#   for the engine stages; add test_gemm_gpu for enginesan), not the whole tree.
# SANITIZE_TOOLS / SANITIZE_GPUS: compute-sanitizer tools and GPUs per node (default "memcheck racecheck", "2 1").
# enginesan: the engine's kernel tests (flash prefill: every kernel; decode attention: split-K, fused, mma; RoPE;
#   the skinny GEMMs; sampling) under compute-sanitizer (ENGINE_SANITIZE: tools, default "memcheck racecheck
#   synccheck"; ENGINE_SANITIZE_TIMEOUT per run, default 240 s; never timed, so the first call should take one tool);
#   one GPU.
# engineprof (only when named; not part of all): Nsight Compute of the engine's kernels, one report per case of
#   ENGINEPROF_CASES (default 'decode:1:128 prefill:1:8192'): `nvrar-llm bench --profile-range KIND` makes the
#   instrumented decode step or prefill (after the timed iterations) the only profiled range; the first
#   ENGINEPROF_COUNT (12) kernels matching ENGINEPROF_KERNELS (default per kind: the skinny GEMMs, RoPE, decode
#   attention, residual + RMSNorm, SwiGLU; or the prefill attention, RoPE, SwiGLU, residual + RMSNorm) get the
#   SpeedOfLight, memory, warp-state, scheduler, occupancy and launch sections, with --clock-control none (the clocks
#   are left as they are). Files OUT/engineprof_<kind>_b<B>_<L>.txt.
# longcheck: nvrar-llm against fp32 logits over the long-prompt shapes, chunked vs unchunked prefill
#   (scripts/engine-long-check.sh; LONG_CHECKS: a subset; LONG_CHECK_ENVS: kernel settings to check each under).
#   longbench: prefill and decode at long contexts beside the PyTorch reference and cuDNN attention
#   (scripts/engine-long-bench.sh; LONG_CASES, LONG_LAYERS; LONG_DECODE_AB=1: decode steps with two
#   NVRAR_LLM_DECODE_ATTENTION kernels alternately, LONG_DECODE_KERNELS (default 'splitk fused'),
#   OUT/longbench/decode_ab.md).
# ENGINE_TAG: suffix of the engine bench files (e.g. _nopdl for an NVRAR_PDL=0 rerun).
# ENGINE_BASELINE=DIR: a source tree of an earlier NVRAR (e.g. `git archive` of a commit) built beside this one; each
#   engine bench then runs ENGINE_AB_REPEAT times (default 2) with each build, alternating (…_base.json files).
# python: the C ABI on one GPU, `pip install ./python` offline, pytest python/tests, python/tests/torchrun_check.py and
#   examples/torch_tp_decode.py (--check, both all-reduces) at 1, 2, 4, 8 ranks up to the GPUs present
#   (docs/pytorch.md).
# multirank: the single-GPU multi-rank harness (tests/gpu/test_multirank: every algorithm at 2-8 ranks on one GPU),
#   then compute-sanitizer (MULTIRANK_SANITIZE: tools, default "memcheck racecheck") on its small scale.
# CORRECT_CFGS / BENCH_CFGS / TUNE_CFGS: 'ranks:gpus_per_node ...' to run a subset; BENCH_REPEAT: sweeps per config. Needs .deps/ (scripts/stage-deps.sh, run where apt works) unless the packages are installed. Logs go to $OUT
# (the device tool's output folder) or ./out. Prints a short summary last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
stages=" ${*:-all} "
want() { [[ "$stages" == *" $1 "* || "$stages" == *" all "* ]]; }

# Never NVLink multicast (it can take shared GPUs out of service).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
BUILD=build/gpu
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
summary=()
note() { summary+=("$1"); echo "== $1"; }
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x NCCL_NVLS_ENABLE -x NVSHMEM_DISABLE_NVLS
        -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x LD_LIBRARY_PATH -x NVRAR_GPUS_PER_NODE -x NVRAR_TIMEOUT_MS
        -x NVRAR_INTER_NODE_STORES -x NVRAR_MAX_BLOCKS -x NVRAR_CHUNK_UNITS -x NVRAR_POLL_SLEEP_NS -x NVRAR_BULK_MIN_BYTES
        -x NVRAR_TUNING_FILE -x NVRAR_TUNING_DIR -x NVRAR_ALGO -x NVRAR_BULK_SYNC -x NVRAR_REGISTERED_MIN_BYTES
        -x NVRAR_REGISTERED_OVER_LL128_BYTES -x NVRAR_PDL -x NVRAR_PUSH_PIECE_UNITS)

if want build; then
  nvidia-smi -L > "$OUT/gpus.txt"; nvidia-smi topo -m >> "$OUT/gpus.txt" 2>&1
  if cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
       -DNVRAR_MPI=ON > "$OUT/build.log" 2>&1 && cmake --build $BUILD -j 16 ${BUILD_TARGETS:+--target $BUILD_TARGETS} \
       >> "$OUT/build.log" 2>&1; then
    note "build: ok ($(grep -m1 'NVRAR:' "$OUT/build.log"))"
  else
    note "build: FAILED"; tail -40 "$OUT/build.log"; printf '%s\n' "${summary[@]}"; exit 1
  fi
fi

ab_pid=""
if want ab && [ -n "${AB_SWAP:-}" ]; then  # build the B side while the other stages run
  AB_DIR=/tmp/nvrar-ab; rm -rf $AB_DIR; mkdir -p $AB_DIR
  tar cf - --exclude=./build --exclude=./out . | tar xf - -C $AB_DIR
  for pair in $AB_SWAP; do cp "${pair#*=}" "$AB_DIR/${pair%%=*}"; done
  (cmake -S $AB_DIR -B $AB_DIR/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
     -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON && cmake --build $AB_DIR/build -j 8 --target nvrar-bench) \
    > "$OUT/ab-build.log" 2>&1 &
  ab_pid=$!
fi

base_pid=""
if want engine && [ -n "${ENGINE_BASELINE:-}" ]; then  # the earlier tree's engine, built while the other stages run
  (cmake -S "$ENGINE_BASELINE" -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
     -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH="$PWD/.deps" && \
   cmake --build /tmp/nvrar-base -j 8 --target nvrar-llm) > "$OUT/base-build.log" 2>&1 &
  base_pid=$!
fi

if want multirank; then
  timeout 540 $BUILD/tests/test_multirank --gtest_brief=1 > "$OUT/multirank.log" 2>&1
  note "multirank (one GPU, 2-8 ranks): rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/multirank.log" | tr '\n' ' ')"
  grep -E 'Failure|FAILED|error' "$OUT/multirank.log" | head -8
  for tool in ${MULTIRANK_SANITIZE:-memcheck racecheck}; do
    NVRAR_TEST_SCALE=small timeout "${MULTIRANK_SANITIZE_TIMEOUT:-300}" compute-sanitizer --tool "$tool" --error-exitcode 9 \
      $BUILD/tests/test_multirank --gtest_brief=1 ${MULTIRANK_FILTER:+--gtest_filter=$MULTIRANK_FILTER} \
      > "$OUT/multirank_$tool.log" 2>&1
    note "multirank under compute-sanitizer $tool: rc=$? $(grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED) ' \
      "$OUT/multirank_$tool.log" | tr '\n' ' ')"
  done
fi

if want unit; then
  (cd $BUILD && ctest -j 8 --output-on-failure -R "Gpu|gpu" > "$OUT/ctest.log" 2>&1)
  note "unit (ctest, GPU tests): $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
fi

run_split() {  # ranks gpus_per_node log args...
  local np=$1 g=$2 log=$3; shift 3
  NVRAR_GPUS_PER_NODE=$g timeout "${RUN_TIMEOUT:-240}" "${MPIRUN[@]}" -np "$np" "$@" > "$log" 2>&1
  echo $?
}

if want correct; then
  for cfg in ${CORRECT_CFGS:-1:1 2:2 2:1 4:4 4:2 4:1}; do
    set -- ${cfg/:/ }
    [ "$1" -le "$NGPU" ] || continue
    rc=$(run_split "$1" "$2" "$OUT/correct_np$1_g$2.log" $BUILD/tests/test_gpu_allreduce --suite correctness)
    note "correctness np=$1 G=$2: rc=$rc $(grep -E 'passed, .* failed' "$OUT/correct_np$1_g$2.log" | tail -1)"
  done
fi

if want timeout; then  # one rank absent: the others must fail with a message, for each NVRAR algorithm
  for cfg in ${TIMEOUT_CFGS:-oneshot:2 hierarchical:2 hierarchical:1 registered:2 ll128:2 push:2}; do
    set -- ${cfg/:/ }
    rc=$(NVRAR_TIMEOUT_MS=300 run_split 2 $2 "$OUT/timeout_$1_g$2.log" $BUILD/tests/test_gpu_allreduce --suite timeout \
         --algorithm $1)
    note "timeout suite np=2 G=$2 $1: rc=$rc $(grep -E 'passed, .* failed' "$OUT/timeout_$1_g$2.log" | tail -1)"
    grep -m1 -o "timed out.*" "$OUT/timeout_$1_g$2.log" | head -1
  done
  # Registered two-shot: rank 0 passes another offset; every rank must fail at once, naming another rank.
  rc=$(NVRAR_TIMEOUT_MS=300 run_split 2 2 "$OUT/mismatch_g2.log" $BUILD/tests/test_gpu_allreduce --suite mismatch)
  note "mismatch suite np=2 G=2 registered: rc=$rc $(grep -E 'passed, .* failed' "$OUT/mismatch_g2.log" | tail -1)"
  grep -m1 -o "called with another.*" "$OUT/mismatch_g2.log" | head -1
fi

if want sanitize; then  # compute-sanitizer on the small suite: 1 x 2 (intra-node phases) and 2 x 1 (puts)
  for tool in ${SANITIZE_TOOLS:-memcheck racecheck}; do
    for g in ${SANITIZE_GPUS:-2 1}; do
      log="$OUT/sanitize_${tool}_g$g.log"
      rc=$(run_split 2 $g "$log" compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 9 \
           $BUILD/tests/test_gpu_allreduce --suite sanitizer)
      note "compute-sanitizer $tool np=2 G=$g: rc=$rc $(grep -E 'ERROR SUMMARY|passed, .* failed' "$log" | sort | uniq -c | tr '\n' ' ')"
      grep -E -A4 '^========= (Invalid|Race|Error|Program hit)' "$log" | head -20
    done
  done
fi

if [[ "$stages" == *" engineprof "* ]]; then  # Nsight Compute of the engine's kernels (explicit only)
  for c in ${ENGINEPROF_CASES:-decode:1:128 prefill:1:8192}; do
    IFS=: read -r kind bs len <<< "$c"
    if [ "$kind" = decode ]; then
      kernels=${ENGINEPROF_KERNELS:-skinny|fused_attention|rope_kernel|residual_rmsnorm|swiglu}
    else
      kernels=${ENGINEPROF_KERNELS:-flash_prefill|rope_kernel|swiglu|residual_rmsnorm}
    fi
    report="$OUT/engineprof_${kind}_b${bs}_${len}.txt"
    timeout "${ENGINEPROF_TIMEOUT:-300}" ncu --profile-from-start off --clock-control none \
      --kernel-name "regex:$kernels" --launch-count "${ENGINEPROF_COUNT:-12}" --section SpeedOfLight \
      --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section Occupancy \
      --section LaunchStats $BUILD/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size "$bs" \
      --input-len "$len" --output-len 4 --num-iters-warmup 0 --num-iters 1 --profile-range "$kind" > "$report" 2>&1
    note "engineprof $c: rc=$? $(grep -c 'Section: GPU Speed Of Light' "$report") kernels profiled -> $report"
  done
fi

if want enginesan; then  # the engine's own kernels under compute-sanitizer (small shapes of their GPU tests)
  for tool in ${ENGINE_SANITIZE:-memcheck racecheck synccheck}; do
    for t in "test_flash_prefill_gpu:*" "test_engine_gpu:*AttentionMatchesCpuSoftmax*:*AttentionRepeats*:*Rope*" \
             "test_gemm_gpu:*Skinny*" "test_sampling_gpu:*" "test_residual_rmsnorm_gpu:*"; do
      bin=${t%%:*} filter=${t#*:}
      log="$OUT/enginesan_${tool}_$bin.log"
      timeout "${ENGINE_SANITIZE_TIMEOUT:-240}" compute-sanitizer --tool "$tool" --error-exitcode 9 \
        "$BUILD/tests/$bin" --gtest_filter="$filter" > "$log" 2>&1
      note "compute-sanitizer $tool $bin: rc=$? $(grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED) ' "$log" | tr '\n' ' ')"
      grep -E -A4 '^========= (Invalid|Race|Error|Program hit|Barrier)' "$log" | head -12
    done
  done
fi

if want launch; then  # the other launch paths: torchrun (NCCL bootstrap, no MPI) and from_nccl adoption
  NVRAR_DEBUG=1 NVSHMEM_DEBUG=${NVSHMEM_DEBUG:-WARN} NCCL_DEBUG=${NCCL_DEBUG:-WARN} NVRAR_GPUS_PER_NODE=2 \
    timeout "${TORCHRUN_TIMEOUT:-90}" python3 -m torch.distributed.run --no-python --nproc-per-node 4 \
    $BUILD/tests/test_gpu_allreduce --suite sanitizer > "$OUT/launch_torchrun.log" 2>&1
  note "torchrun --no-python 4 ranks G=2: rc=$? $(grep -E 'passed, .* failed' "$OUT/launch_torchrun.log" | tail -1)"
  grep -E '^nvrar: rank [0-9]+ setup' "$OUT/launch_torchrun.log" | tail -8
  grep -iE 'error|warn' "$OUT/launch_torchrun.log" | grep -v '^nvrar: rank' | head -8
  NVRAR_DEBUG=1 NVRAR_GPUS_PER_NODE=2 timeout "${TORCHRUN_TIMEOUT:-90}" bash scripts/srun-env.sh 4 \
    $BUILD/tests/test_gpu_allreduce --suite sanitizer > "$OUT/launch_srun_env.log" 2>&1
  note "srun environment (scripts/srun-env.sh, no Slurm here) 4 ranks G=2: rc=$? $(grep -E 'passed, .* failed' "$OUT/launch_srun_env.log" | tail -1)"
  grep -E 'launched by|bootstrap' "$OUT/launch_srun_env.log" | head -3
  rc=$(run_split 4 4 "$OUT/launch_from_nccl.log" $BUILD/tests/test_gpu_allreduce --suite sanitizer --from-nccl)
  note "from_nccl 1x4: rc=$rc $(grep -E 'passed, .* failed' "$OUT/launch_from_nccl.log" | tail -1)"
fi

if want shapes; then  # every algorithm and launch shape side by side (what --tune chooses from)
  for g in ${SHAPE_GPUS:-4}; do
    tag=g$g${SHAPES_TAG:-}
    run_split $g $g "$OUT/shapes_$tag.log" $BUILD/tools/nvrar-bench --backend gpu -e 4M --json "$OUT/shapes_$tag.json" \
      --algorithms ${SHAPES_ALGOS:-oneshot:t64,oneshot:t128,oneshot:t256,oneshot:t512,hierarchical:cells,hierarchical:bulk,nccl} > /dev/null
    echo "== shapes $tag (us)"; python3 scripts/compare_bench.py "$OUT/shapes_$tag.json"
  done
fi

if want profile; then  # Nsight Systems: kernel durations and the gaps between consecutive graph kernels, 1 x 4
  NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
  if [ -z "$NSYS" ]; then note "profile: no nsys on this machine"; else
    run_split 4 4 "$OUT/profile.log" "$NSYS" profile -t cuda --cuda-graph-trace=node -f true \
      -o "$OUT/prof_%q{OMPI_COMM_WORLD_RANK}" $BUILD/tools/nvrar-bench --backend gpu -b ${PROFILE_BYTES:-16K} \
      -e ${PROFILE_BYTES:-16K} --algorithms ${PROFILE_ALGOS:-oneshot:t64,hierarchical:cells,nccl-symmetric,nccl} > /dev/null
    "$NSYS" stats -q -r cuda_gpu_trace -f csv -o "$OUT/trace0" "$OUT/prof_0.nsys-rep" > /dev/null 2>&1
    python3 scripts/kernel_gaps.py "$OUT"/trace0*.csv
    rm -f "$OUT"/prof_*.nsys-rep "$OUT"/prof_*.sqlite
  fi
fi

if want tune; then  # tuning tables, written where the communicator looks for them (tuning/, NVRAR_TUNING_DIR)
  for cfg in ${TUNE_CFGS:-4:4 2:2}; do
    set -- ${cfg/:/ }
    [ "$1" -le "$NGPU" ] || continue
    rc=$(run_split "$1" "$2" "$OUT/tune_np$1_g$2.log" $BUILD/tools/nvrar-bench --backend gpu --check -e 64M \
         --tune "$OUT/tune_np$1_g$2.json" ${TUNE_ARGS:-})
    note "tune np=$1 G=$2: rc=$rc"; grep -vE '^#' "$OUT/tune_np$1_g$2.log" | awk '{print "   ", $1, $2, $3}'
    mkdir -p tuning
    if [ -n "${TUNE_MERGE_FROM:-}" ]; then  # a partial sweep (TUNE_ARGS -b ...) over the shipped table's upper range
      python3 scripts/merge_tuning.py "tuning/h100-sxm-np$1-g$2.json" "$OUT/tune_np$1_g$2.json" \
        "$OUT/tune_np$1_g$2_merged.json" --from "$TUNE_MERGE_FROM" &&
        cp "$OUT/tune_np$1_g$2_merged.json" "tuning/h100-np$1-g$2.json"
    else
      cp "$OUT/tune_np$1_g$2.json" "tuning/h100-np$1-g$2.json"
    fi
  done
fi

if want bench; then  # BENCH_REPEAT=n: n sweeps per configuration (bench_np4_g4.json, bench_np4_g4_r2.json, ...)
  for cfg in ${BENCH_CFGS:-2:2 2:1 4:4 4:2 4:1}; do
    set -- ${cfg/:/ }
    [ "$1" -le "$NGPU" ] || continue
    for rep in $(seq "${BENCH_REPEAT:-1}"); do
      tag="np$1_g$2$([ "$rep" -gt 1 ] && echo "_r$rep")"
      rc=$(run_split "$1" "$2" "$OUT/bench_$tag.log" $BUILD/tools/nvrar-bench --backend gpu --check \
           --json "$OUT/bench_$tag.json" ${BENCH_ARGS:-})
      note "bench $tag: rc=$rc"
      grep -E '^# .*decides by' "$OUT/bench_$tag.log" | head -1
      python3 scripts/compare_bench.py "$OUT/bench_$tag.json" $([ -f "$OUT/torch_np$1.json" ] && echo "$OUT/torch_np$1.json")
    done
  done
fi

if want engine; then  # nvrar-llm: logits against transformers at TP 1, 2, 4 with both all-reduces, then benches
  if [ "${ENGINE_CHECK:-1}" = 0 ]; then
    note "engine check skipped (ENGINE_CHECK=0)"
  elif python3 scripts/hf_reference.py --out "$OUT/tiny" --steps 32 > "$OUT/engine_ref.log" 2>&1; then
    for tp in ${ENGINE_CHECK_TPS:-1 2 4}; do
      [ "$tp" -le "$NGPU" ] || continue
      for ar in nccl nvrar; do
        rc=$(run_split $tp $tp "$OUT/engine_check_tp${tp}_$ar.log" $BUILD/tools/nvrar-llm check --model-dir "$OUT/tiny" \
             --reference "$OUT/tiny/reference.json" --tp $tp --allreduce $ar --tokens-out "$OUT/tokens_tp${tp}_$ar.json")
        note "engine check TP $tp $ar: rc=$rc $(grep -E 'PASSED|FAILED' "$OUT/engine_check_tp${tp}_$ar.log" | tail -1)"
        grep -E '^step' "$OUT/engine_check_tp${tp}_$ar.log" | grep -vE '^step +0:' | head -3
      done
    done
    tokens=("$OUT"/tokens_tp*.json)
    [ -e "${tokens[0]}" ] || tokens=()
    python3 scripts/compare_tokens.py "$OUT/tiny/reference.json" "${tokens[@]}" > "$OUT/engine_tokens.log" 2>&1
    note "engine greedy tokens across TP sizes and backends: $(tail -1 "$OUT/engine_tokens.log")"
    head -5 "$OUT/engine_tokens.log"
    if [ "$NGPU" -ge 2 ]; then  # the engine under torchrun (NCCL bootstrap, no MPI), TP 2
      timeout "${TORCHRUN_TIMEOUT:-90}" python3 -m torch.distributed.run --no-python --nproc-per-node 2 \
        $BUILD/tools/nvrar-llm check --model-dir "$OUT/tiny" --reference "$OUT/tiny/reference.json" --tp 2 \
        --allreduce nvrar > "$OUT/engine_check_torchrun_tp2.log" 2>&1
      note "engine check under torchrun TP 2 nvrar: rc=$? $(grep -E 'PASSED|FAILED' "$OUT/engine_check_torchrun_tp2.log" | tail -1)"
    fi
    rm -rf "$OUT/tiny"
  else
    note "engine: hf_reference.py failed"; tail -5 "$OUT/engine_ref.log"
  fi
  # ENGINE_BENCH entries: tp:model:batch:layers(0 = all):allreduce[:input_len:output_len]
  for cfg in ${ENGINE_BENCH:-"1:llama3.1-8b:1:0:auto" "1:llama3.1-8b:8:0:auto" "4:llama3.1-70b:8:20:nccl" "4:llama3.1-70b:8:20:nvrar"}; do
    IFS=: read -r tp model bs layers ar inlen outlen <<< "$cfg"
    [ "$tp" -le "$NGPU" ] || continue
    tag="${model}_tp${tp}_b${bs}_l${layers}_${ar}_${inlen:-128}_${outlen:-128}${ENGINE_TAG:-}"
    builds=("$BUILD/tools/nvrar-llm:")
    if [ -n "$base_pid" ]; then
      wait "$base_pid" && builds+=("/tmp/nvrar-base/tools/nvrar-llm:_base") || note "baseline build FAILED"
      base_pid=""
    fi
    [ -x /tmp/nvrar-base/tools/nvrar-llm ] && [ -n "${ENGINE_BASELINE:-}" ] && builds=("$BUILD/tools/nvrar-llm:" "/tmp/nvrar-base/tools/nvrar-llm:_base")
    for rep in $(seq "$([ ${#builds[@]} -gt 1 ] && echo "${ENGINE_AB_REPEAT:-2}" || echo 1)"); do
      for b in "${builds[@]}"; do
        llm=${b%%:*}; t="$tag${b#*:}$([ "$rep" -gt 1 ] && echo "_r$rep")"
        run_split $tp $tp "$OUT/engine_bench_$t.log" $llm bench --model $model \
          --tp $tp --batch-size $bs --input-len ${inlen:-128} --output-len ${outlen:-128} --num-iters-warmup 1 \
          --num-iters 3 --allreduce $ar $([ "$layers" != 0 ] && echo --num-layers $layers) \
          --json "$OUT/engine_bench_$t.json" > /dev/null
        echo "== engine bench $t ($llm) $model TP $tp batch $bs layers $layers $ar in ${inlen:-128} out ${outlen:-128}:"
        grep -E 'Decode step|Avg latency|split|GEMM kernels|rror' "$OUT/engine_bench_$t.log" | head -6
      done
    done
  done
fi

if want longcheck; then
  bash scripts/engine-long-check.sh $BUILD "$OUT/longcheck" > "$OUT/longcheck.log" 2>&1
  note "longcheck (fp32 truth, chunked prefill): rc=$? $(grep -c ': rc=0' "$OUT/longcheck.log") ok of $(grep -c ': rc=' "$OUT/longcheck.log")"
  grep -E '^==|against fp32' "$OUT/longcheck.log" | head -30
fi

if want longbench && [ -f scripts/engine-long-bench.sh ]; then
  bash scripts/engine-long-bench.sh $BUILD "$OUT/longbench" > "$OUT/longbench.log" 2>&1
  note "longbench: rc=$?"
  cat "$OUT/longbench/long_context.md" "$OUT/longbench/decode_ab.md" 2>/dev/null | head -30
fi

if want torch; then  # PyTorch anchors (NCCL through torch, symmetric-memory one-shot/two-shot), same timing method
  for np in ${TORCH_NP:-4 2}; do
    [ "$np" -le "$NGPU" ] || continue
    timeout "${RUN_TIMEOUT:-240}" python3 -m torch.distributed.run --nproc-per-node "$np" scripts/bench_torch_symm.py \
      --json "$OUT/torch_np$np.json" > "$OUT/torch_np$np.log" 2>&1
    note "torch anchors np=$np: rc=$?"; grep -vE '^\[' "$OUT/torch_np$np.log" | head -20
    [ -f "$OUT/bench_np${np}_g$np.json" ] && python3 scripts/compare_bench.py "$OUT/bench_np${np}_g$np.json" "$OUT/torch_np$np.json"
  done
fi

if want spread; then  # small-size run-to-run spread, with and without the start gate (nvrar-bench --no-start-gate)
  for rep in $(seq "${SPREAD_REPEAT:-3}"); do
    for gate in on off; do
      tag="spread_${gate}_r$rep"
      rc=$(run_split 4 4 "$OUT/$tag.log" $BUILD/tools/nvrar-bench --backend gpu -b 4K -e ${SPREAD_MAX:-256K} \
           --algorithms ${SPREAD_ALGOS:-nvrar,oneshot:t64,nccl-symmetric,nccl} --json "$OUT/$tag.json" \
           $([ $gate = off ] && echo --no-start-gate))
      note "$tag: rc=$rc"
    done
  done
  python3 scripts/compare_bench.py --spread "$OUT"/spread_on_r*.json -- "$OUT"/spread_off_r*.json || true
fi

if want ab; then
  if [ -z "$ab_pid" ]; then note "ab: set AB_SWAP"
  elif ! wait "$ab_pid"; then note "ab: B build FAILED"; tail -20 "$OUT/ab-build.log"
  else
    for cfg in ${AB_CFGS:-4:4}; do
      set -- ${cfg/:/ }
      for rep in $(seq "${AB_REPEAT:-2}"); do
        for side in a b; do
          bin=$BUILD/tools/nvrar-bench; [ $side = b ] && bin=$AB_DIR/build/tools/nvrar-bench
          tag="ab_np$1_g$2_${side}_r$rep"
          rc=$(run_split "$1" "$2" "$OUT/$tag.log" $bin --backend gpu --check -b ${AB_MIN:-64K} -e ${AB_MAX:-8M} \
               --algorithms ${AB_ALGOS:-ll128:t256,ll128:t512,ll128:t1024} --json "$OUT/$tag.json" ${AB_ARGS:-})
          note "$tag: rc=$rc"
        done
      done
      python3 scripts/compare_bench.py --spread "$OUT"/ab_np$1_g$2_a_r*.json -- "$OUT"/ab_np$1_g$2_b_r*.json || true
    done
  fi
fi

if want pieces; then
  for cfg in ${PIECE_CFGS:-2:2}; do
    set -- ${cfg/:/ }
    for units in ${PIECES:-256 512 2048}; do
      tag="pieces_np$1_g$2_u$units"
      rc=$(NVRAR_PUSH_PIECE_UNITS=$units run_split "$1" "$2" "$OUT/$tag.log" $BUILD/tools/nvrar-bench --backend gpu \
           --check -b ${PIECE_MIN:-1M} -e ${PIECE_MAX:-64M} --algorithms ${PIECE_ALGOS:-push:t256,push:t512} \
           --json "$OUT/$tag.json" --ll128-max-bytes 64M)
      note "$tag: rc=$rc"; python3 scripts/compare_bench.py "$OUT/$tag.json" | tail -8
    done
  done
fi

if want python; then  # the C ABI, the Python package and the PyTorch example (docs/pytorch.md)
  timeout 300 $BUILD/tests/test_capi_gpu --gtest_brief=1 > "$OUT/capi_gpu.log" 2>&1
  note "C ABI on one GPU (test_capi_gpu): rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/capi_gpu.log" | tr '\n' ' ')"
  python3 -m pip install -v --no-build-isolation --no-index --force-reinstall ./python > "$OUT/pip.log" 2>&1
  note "pip install --no-build-isolation --no-index ./python: rc=$? $(grep -o 'bundled .*libnvrar_c.so' "$OUT/pip.log")"
  pytest_path=""  # Debian's pytest staged in .deps (scripts/stage-deps.sh) where python3 has none
  python3 -c 'import pytest' 2>/dev/null || pytest_path=$PWD/.deps/lib/python3/dist-packages
  PYTHONPATH="$pytest_path${PYTHONPATH:+:$PYTHONPATH}" NVRAR_LIBRARY=$PWD/$BUILD/libnvrar_c.so timeout 900 \
    python3 -m pytest python/tests -q -rs -p no:cacheprovider > "$OUT/pytest.log" 2>&1
  note "pytest python/tests: rc=$? $(tail -1 "$OUT/pytest.log")"
  for np in 1 2 4 8; do
    [ "$np" -le "$NGPU" ] || continue
    timeout 300 python3 -m torch.distributed.run --nproc-per-node $np python/tests/torchrun_check.py \
      > "$OUT/torchrun_check_np$np.log" 2>&1
    note "torchrun_check np=$np: rc=$? $(grep -c ': PASSED' "$OUT/torchrun_check_np$np.log")/$np ranks passed"
    grep -E 'FAILED|rror' "$OUT/torchrun_check_np$np.log" | head -5
    model=llama3.1-70b; layers=20; [ "$np" = 1 ] && model=llama3.1-8b && layers=0
    for ar in nccl nvrar; do  # the installed package, its bundled library (no NVRAR_LIBRARY)
      timeout 480 python3 -m torch.distributed.run --nproc-per-node $np examples/torch_tp_decode.py --model $model \
        --num-layers $layers --batch-size 8 --allreduce $ar --check --json "$OUT/torch_tp_decode_np${np}_$ar.json" \
        > "$OUT/torch_tp_decode_np${np}_$ar.log" 2>&1
      note "torch_tp_decode TP $np $model $ar: rc=$? $(grep -E 'check:|ms per decode step' \
        "$OUT/torch_tp_decode_np${np}_$ar.log" | sed 's/torch_tp_decode: //' | tr '\n' ' ')"
    done
  done
fi

# firstuse (only when named, not in all): the first-use tune (docs/algorithms.md) on 4 GPUs as 1 x 4 and 2 x 2, with a
# fresh cache: measured at the first creation, the cache at the second, force measures again, off takes the cost
# model, a corrupt cache file is warned about and replaced; then scripts/cluster-check.sh on 1 x NGPU (srun-env) and
# 2 x NGPU/2 (mpirun, virtual nodes: the network fit must be refused with a note).
if [[ "$stages" == *" firstuse "* ]]; then
  export XDG_CACHE_HOME=$OUT/xdg; rm -rf "$XDG_CACHE_HOME"
  for g in 4 2; do
    for step in measure cache force off corrupt; do
      [ $step = corrupt ] && for f in "$XDG_CACHE_HOME"/nvrar/*-g$g-*.json; do [ -f "$f" ] && echo '{"broken' > "$f"; done
      mode=auto; [ $step = force ] && mode=force; [ $step = off ] && mode=off
      log="$OUT/firstuse_g${g}_$step.log" start=$(date +%s.%N)
      rc=$(NVRAR_TUNE=$mode NVRAR_DEBUG=1 run_split 4 $g "$log" $BUILD/tools/nvrar-bench --backend gpu --check -e 16M \
           --algorithms nvrar,nccl)
      secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      note "firstuse G=$g $step: rc=$rc ${secs}s $(grep -m1 -o 'decides by: .*' "$log") \
$(grep -m1 -o 'warning: .*' "$log" | cut -c1-160)"
      grep -m4 -E 'first-use tune|stage' "$log" | grep -E 'first-use|ready' | head -2
    done
  done
  ls -l "$XDG_CACHE_HOME/nvrar" > "$OUT/firstuse_cache.txt" 2>&1; unset XDG_CACHE_HOME
  half=$((NGPU / 2))
  bash scripts/cluster-check.sh --launcher srun-env --nodes 1 --gpus-per-node "$NGPU" --build $BUILD \
    --out "$OUT/cluster-1x$NGPU" > "$OUT/cluster-1x$NGPU.log" 2>&1
  note "cluster-check 1 x $NGPU (srun-env): rc=$? ($OUT/cluster-1x$NGPU/report.md)"
  bash scripts/cluster-check.sh --launcher mpirun --nodes 2 --gpus-per-node "$half" --build $BUILD \
    --steps correct,bench,model,report --out "$OUT/cluster-2x$half" > "$OUT/cluster-2x$half.log" 2>&1
  note "cluster-check 2 x $half (mpirun, virtual nodes): rc=$? $(grep -m1 -o 'not used for the network fit' \
    "$OUT/cluster-2x$half/report.md")"
fi

echo; echo "==== summary"; printf '%s\n' "${summary[@]}"
# The device tool brings back few files: everything in one archive.
tar czf /tmp/nvrar-out.tgz -C "$OUT" --exclude all.tgz . 2>/dev/null && mv /tmp/nvrar-out.tgz "$OUT/all.tgz"
