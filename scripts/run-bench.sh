#!/usr/bin/env bash
# The main job: install, build, and run the nvrar-bench sweep. Without a GPU it runs the CPU executor
# (12 ranks as 3 nodes x 4 GPUs, results checked against a float64 reference). Extra arguments go to nvrar-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target nvrar-bench
if [ $# -eq 0 ]; then set -- --backend host --ranks 12 --gpus-per-node 4 --check; fi
exec ./build/release/tools/nvrar-bench "$@"
