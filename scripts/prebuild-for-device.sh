#!/usr/bin/env bash
# Builds GPU targets on a machine without a GPU and stages them, with the shared libraries they need beyond the CUDA
# toolkit's, into one folder a GPU machine can run from: the device time a call would spend compiling (40-70 s for
# nvrar-llm and a test on 16 cores) is spent here instead.
#
#   bash scripts/prebuild-for-device.sh [--out DIR] TARGET...       e.g. nvrar-llm test_gemm_gpu
#   then, on the GPU machine, from the repository root:
#   source DIR/env.sh && DIR/bin/nvrar-llm bench ...
#
# The build: build/prebuilt, Release, sm_90 only, NVSHMEM and MPI off (the GPU machine's NVSHMEM and MPI need not
# match this machine's; nvrar-llm at TP 1 and the single-GPU tests use neither). DIR (default .prebuilt, ignored by
# git): bin/ the targets' executables, lib/ libnvrar_gpu.so and every library they resolve under .deps/ (fmt, PCRE2),
# BUILT_FROM (the commit, "+changes" for a dirty tree) and env.sh, which prints BUILT_FROM, puts lib/, the CUDA
# toolkit's and the Python NCCL wheel's library folders on LD_LIBRARY_PATH and fails, naming the library, where an
# executable still misses one. Keep DIR under the 64 MiB a device call carries; the script warns above 60 MiB.
set -euo pipefail

out=.prebuilt
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?"prebuild-for-device.sh: --out needs a folder"}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "prebuild-for-device.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || { echo "prebuild-for-device.sh: name at least one target, e.g. nvrar-llm" >&2; exit 2; }
nvcc=${CUDACXX:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "prebuild-for-device.sh: no CUDA compiler at $nvcc (set CUDACXX)" >&2; exit 2; }

build=build/prebuilt
cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_CUDA=ON \
  -DNVRAR_NVSHMEM=OFF -DNVRAR_MPI=OFF -DCMAKE_CUDA_COMPILER="$nvcc" > /dev/null
cmake --build $build --target "${targets[@]}"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for t in "${targets[@]}"; do
  exe=$(find $build -type f -name "$t" -perm -u+x -not -path '*/CMakeFiles/*' | head -1)
  [ -n "$exe" ] || { echo "prebuild-for-device.sh: target $t built no executable under $build" >&2; exit 1; }
  cp "$exe" "$out/bin/"
  # The libraries this build made or .deps provides; the toolkit's (cudart, cuBLASLt, NCCL) are the device's own.
  ldd "$exe" | awk -v deps="$PWD/.deps/" -v b="$PWD/$build/" \
    '$3 ~ "^" deps || $3 ~ "^" b { print $3 }' | while read -r lib; do cp -L "$lib" "$out/lib/"; done
done

# What the binaries were built from, printed by env.sh into the call's log: a stale folder shows itself.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || commit+="+changes"
echo "$commit" > "$out/BUILT_FROM"
cat > "$out/env.sh" <<'EOF'
# Sourced on the GPU machine from the repository root (prebuild-for-device.sh): the staged libraries first, then the
# CUDA toolkit's and the NCCL wheel's folders; returns 1, naming the library, if an executable still misses one.
_prebuilt=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_nccl=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null || true)
for _d in "$_nccl" /usr/local/cuda/lib /usr/local/cuda/lib64 "$_prebuilt/lib"; do
  [ -n "$_d" ] && [ -d "$_d" ] && export LD_LIBRARY_PATH="$_d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
echo "prebuilt: built from $(cat "$_prebuilt/BUILT_FROM")"
_missing=$(for _e in "$_prebuilt"/bin/*; do
  ldd "$_e" | sed -n "s|^\s*\(\S*\) => not found|$(basename "$_e"): \1|p"
done)
if [ -n "$_missing" ]; then
  echo "prebuilt executables miss libraries on this machine:"; echo "$_missing"; return 1
fi
EOF

size=$(du -sm "$out" | cut -f1)
echo "prebuild-for-device.sh: $out holds ${targets[*]} (${size} MiB); on the GPU machine: source $out/env.sh"
[ "$size" -le 60 ] || echo "prebuild-for-device.sh: warning: $out is ${size} MiB, over the 60 MiB a call can carry" >&2
