#!/usr/bin/env bash
# The main job: install, build, and run the nvrar-bench sweep where it is run.
#   - With GPUs (nvidia-smi lists them): NVRAR (auto) against NCCL on all of them, one process per GPU under mpirun,
#     every size checked against a float64 reference (built with the CUDA toolkit; NVSHMEM where found, else NCCL
#     only).
#   - Without: the CPU executor, 12 ranks as 3 nodes x 4 GPUs, checked against a float64 reference.
# Extra arguments go to nvrar-bench (and replace the defaults above).
set -euo pipefail
cd "$(dirname "$0")/.."
# Installs the Debian packages where apt can; a machine that cannot (no network) builds with what it has, or with
# .deps/ (scripts/stage-deps.sh).
bash scripts/install-deps.sh || echo "run-bench: install-deps.sh failed; building with the packages found (or .deps/)"
cmake --preset release >/dev/null
cmake --build --preset release --target nvrar-bench
bench=./build/release/tools/nvrar-bench
# Never NVLink multicast (it can take shared GPUs out of service).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
# NVSHMEM from the Python wheel, where that is where CMake found it.
nvshmem=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${nvshmem:+$nvshmem/lib:}${LD_LIBRARY_PATH:-}"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "$gpus" -gt 0 ]; then
  [ $# -gt 0 ] || set -- --backend gpu --check
  echo "run-bench: $gpus GPU(s): NVRAR against NCCL under mpirun -np $gpus"
  exec mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$gpus" -x NCCL_NVLS_ENABLE \
    -x NVSHMEM_DISABLE_NVLS -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x LD_LIBRARY_PATH "$bench" "$@"
fi
[ $# -gt 0 ] || set -- --backend host --ranks 12 --gpus-per-node 4 --check
exec "$bench" "$@"
