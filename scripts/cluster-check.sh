#!/usr/bin/env bash
# NVRAR on a cluster of N nodes x G GPUs, one call: the correctness suite, nvrar-bench against NCCL (one node, then
# all N), a tuning table, the cost model calibrated from those runs (intra-node parameters from the one-node run, the
# network's from the N-node run) and one report with a speedup heatmap like the paper's Figure 8. docs/cluster.md.
#
#   bash scripts/cluster-check.sh --nodes 4 --gpus-per-node 4                 # inside a Slurm allocation: srun
#   bash scripts/cluster-check.sh --launcher mpirun --hostfile hosts --nodes 2 --gpus-per-node 8
#   bash scripts/cluster-check.sh --launcher srun-env --nodes 2 --gpus-per-node 4    # one 8-GPU host, virtual nodes
#   bash scripts/cluster-check.sh --dry-run --launcher srun --nodes 2 --gpus-per-node 4   # print the commands only
#
# Options:
#   --launcher auto|srun|mpirun|srun-env  auto (default): srun inside a Slurm job (SLURM_JOB_ID) where srun exists,
#                          else mpirun. srun-env: scripts/srun-env.sh on this host (srun's environment without Slurm;
#                          N > 1 then means virtual nodes of G GPUs, whose "network" is NVLink)
#   --nodes N, --gpus-per-node G   the job's shape (default 1 x the GPUs nvidia-smi lists)
#   --hostfile FILE        mpirun: the hosts (then ranks are placed G per node)
#   --build DIR            where NVRAR is built (default build/gpu, as scripts/gpu-check.sh builds it)
#   --out DIR              report folder (default cluster-report-<N>x<G>)
#   --preset NAME          cost-model preset the calibration starts from (default h100-ndr400)
#   --steps LIST           comma list of correct,bench,tune,model,report (default all); model and report read
#                          bench_n1_g<G>.json and bench_n<N>_g<G>.json from --out, so they can be rerun alone
#   --min-bytes/--max-bytes  the bench's sizes (default 4K, 64M)
#   --dry-run              print every command, run none
# Environment: BENCH_ALGOS (default nvrar,hierarchical,nccl), BENCH_CHECK (1, default: --check every size against a
# float64 reference, whose cost grows with the ranks; 0: times only), LAUNCH_ARGS (extra srun or mpirun arguments),
# RUN_TIMEOUT (seconds per launch, default 900). Exit status: 0 all steps passed, 1 a step failed, 2 bad usage.
set -uo pipefail
script_dir=${0%/*}; [ "$script_dir" = "$0" ] && script_dir=.
ROOT=$(cd "$script_dir/.." && pwd)

launcher=auto nodes=1 gpus="" hostfile="" build="$ROOT/build/gpu" out="" preset=h100-ndr400
steps=correct,bench,tune,model,report min_bytes=4K max_bytes=64M dry_run=0
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "cluster-check: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --launcher) launcher=${2:-}; shift 2 ;;
    --nodes) nodes=${2:-}; shift 2 ;;
    --gpus-per-node) gpus=${2:-}; shift 2 ;;
    --hostfile) hostfile=${2:-}; shift 2 ;;
    --build) build=${2:-}; shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    --preset) preset=${2:-}; shift 2 ;;
    --steps) steps=${2:-}; shift 2 ;;
    --min-bytes) min_bytes=${2:-}; shift 2 ;;
    --max-bytes) max_bytes=${2:-}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes '$nodes' is not a positive whole number"
if [ -z "$gpus" ]; then
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$gpus" -gt 0 ] || die "--gpus-per-node not given and nvidia-smi lists no GPU"
fi
[[ "$gpus" =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node '$gpus' is not a positive whole number"
for s in ${steps//,/ }; do
  [[ " correct bench tune model report " == *" $s "* ]] || die "--steps: unknown step '$s' (correct,bench,tune,model,report)"
done
want() { [[ ",$steps," == *",$1,"* ]]; }
[ -n "$hostfile" ] && [ ! -r "$hostfile" ] && [ $dry_run = 0 ] && die "--hostfile '$hostfile' cannot be read"

if [ "$launcher" = auto ]; then
  if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun > /dev/null; then
    launcher=srun
  elif command -v mpirun > /dev/null; then
    launcher=mpirun
  else
    die "--launcher auto: not inside a Slurm job with srun, and no mpirun on PATH (name one with --launcher)"
  fi
fi
case "$launcher" in
  srun|mpirun|srun-env) ;;
  *) die "--launcher '$launcher' is not one of auto, srun, mpirun, srun-env" ;;
esac
ranks=$((nodes * gpus))
out=${out:-cluster-report-${nodes}x${gpus}}
[ $dry_run = 1 ] || mkdir -p "$out" || die "cannot create --out '$out'"

# Never NVLink multicast (it can take shared GPUs out of service). G GPUs per (virtual) node: on real nodes it is the
# launcher's local size anyway; on one host it makes virtual nodes.
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVRAR_GPUS_PER_NODE=$gpus
EXPORTED="NCCL_NVLS_ENABLE NVSHMEM_DISABLE_NVLS TORCH_SYMM_MEM_DISABLE_MULTICAST NVRAR_GPUS_PER_NODE LD_LIBRARY_PATH
          NVRAR_TUNE NVRAR_TUNING_FILE NVRAR_TUNING_DIR NVRAR_TIMEOUT_MS XDG_CACHE_HOME"

# The launch prefix for n nodes of G ranks each, as words on stdout (one per line).
launch_prefix() {
  local n=$1 np=$(($1 * gpus))
  case "$launcher" in
    srun)
      printf '%s\n' srun -N "$n" --ntasks="$np" --ntasks-per-node="$gpus" --gpus-per-node="$gpus" \
        --kill-on-bad-exit=1 --export=ALL ;;
    mpirun)
      printf '%s\n' mpirun -np "$np" --bind-to none
      [ "$(id -u)" = 0 ] && printf '%s\n' --allow-run-as-root
      # Ranks G per node where mpirun knows several nodes (a hostfile or a batch allocation); else all on this host.
      if [ -n "$hostfile" ]; then printf '%s\n' --hostfile "$hostfile" --map-by "ppr:$gpus:node"
      elif [ -n "${SLURM_JOB_ID:-}${PBS_JOBID:-}${LSB_JOBID:-}" ]; then printf '%s\n' --map-by "ppr:$gpus:node"; fi
      for v in $EXPORTED; do printf '%s\n' -x "$v"; done ;;
    srun-env)
      printf '%s\n' bash "$ROOT/scripts/srun-env.sh" "$np" ;;
  esac
  for a in ${LAUNCH_ARGS:-}; do printf '%s\n' "$a"; done
}

failed=0
status_file="$out/steps.tsv"
[ $dry_run = 1 ] || : > "$status_file"
# run NAME LOG command...: runs (or, with --dry-run, prints) one step's command, its output in LOG.
run() {
  local name=$1 log=$2; shift 2
  if [ $dry_run = 1 ]; then printf '+ %s\n' "$*"; return 0; fi
  echo "== $name: $*"
  timeout "${RUN_TIMEOUT:-900}" "$@" > "$log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(basename "$log")" >> "$status_file"
  [ $rc -eq 0 ] || { failed=1; echo "== $name: FAILED (rc=$rc), last lines of $log:"; tail -5 "$log"; }
  return 0
}
launched() {  # NAME LOG NODES command...
  local name=$1 log=$2 n=$3; shift 3
  local -a prefix
  mapfile -t prefix < <(launch_prefix "$n")
  run "$name" "$log" "${prefix[@]}" "$@"
}

bench_args=(-b "$min_bytes" -e "$max_bytes" -d bf16 --algorithms "${BENCH_ALGOS:-nvrar,hierarchical,nccl}")
[ "${BENCH_CHECK:-1}" = 1 ] && bench_args+=(--check)  # every rank builds a float64 reference from all P inputs
one_json="$out/bench_n1_g$gpus.json" all_json="$out/bench_n${nodes}_g$gpus.json"

if want correct; then
  launched correct "$out/correct.log" "$nodes" "$build/tests/test_gpu_allreduce" --suite correctness
fi
if want bench; then
  [ "$nodes" -gt 1 ] && launched bench-1-node "$out/bench_n1_g$gpus.log" 1 "$build/tools/nvrar-bench" "${bench_args[@]}" \
    --json "$one_json"
  launched "bench-$nodes-nodes" "$out/bench_n${nodes}_g$gpus.log" "$nodes" "$build/tools/nvrar-bench" "${bench_args[@]}" \
    --json "$all_json"
fi
if want tune; then
  launched tune "$out/tune.log" "$nodes" "$build/tools/nvrar-bench" -b "$min_bytes" -e "$max_bytes" \
    --tune "$out/tuning_n${nodes}_g$gpus.json"
fi
if want model; then
  calibrate=() files=("$all_json")
  [ "$nodes" -gt 1 ] && files=("$one_json" "$all_json")  # one node: the intra-node fit; N nodes: the network's
  for f in "${files[@]}"; do
    if [ $dry_run = 1 ] || [ -f "$f" ]; then calibrate+=(--calibrate "$f"); fi
  done
  max_nodes=$((nodes > 64 ? nodes : 64))
  if [ ${#calibrate[@]} -eq 0 ]; then
    echo "== model: no bench JSON in $out (run the bench step first)"; failed=1
    printf 'model\t2\tmodel.txt\n' >> "$status_file"
  else
    run model "$out/model.txt" "$build/tools/nvrar-model" --preset "$preset" --gpus-per-node "$gpus" \
      "${calibrate[@]}" --nodes "1..$max_nodes" --sizes 4K..64M --json "$out/model.json"
    if command -v python3 > /dev/null; then
      run heatmap "$out/heatmap.txt" python3 "$ROOT/scripts/plot_model_heatmap.py" "$out/model.json" \
        --out "$out/heatmap.png" --csv "$out/heatmap.csv"
    elif [ $dry_run = 0 ]; then
      echo "== heatmap: no python3: the model's table (model.txt) stands for it"
    fi
  fi
fi
if want report; then
  info="launcher $launcher, $nodes x $gpus GPUs, preset $preset"
  if [ $dry_run = 1 ]; then
    printf '+ %s\n' "python3 $ROOT/scripts/cluster_report.py $out --nodes $nodes --gpus-per-node $gpus --info '$info'"
  elif command -v python3 > /dev/null; then
    python3 "$ROOT/scripts/cluster_report.py" "$out" --nodes "$nodes" --gpus-per-node "$gpus" --info "$info" \
      || failed=1
  else
    { echo "# NVRAR cluster check ($info)"; echo; echo "python3 not found: step status below, logs beside it."
      echo; echo '```'; cat "$status_file"; echo '```'; } > "$out/report.md"
  fi
  [ $dry_run = 1 ] || echo "== report: $out/report.md"
fi
exit $failed
