#!/usr/bin/env bash
# ci-cuda.sh: the CUDA side of CI (no GPU needed). Installs the pinned nvcc, builds the GPU
# bundle (scripts/gpu-check.sh: every test, bench and the CLI in release with the `cuda`
# feature, which is CI's one CUDA build; it fails above 48 MiB), lints the same build, then
# assembles the PTX for sm_80 and sm_90 and checks register use and spills
# (scripts/check-ptx.sh), then checks the Hopper and simt_warp kernels' SASS
# (scripts/check-sass.sh).
#
#   scripts/ci-cuda.sh [--out FILE]   # --out: also write the ptxas table to FILE
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# ABI.md: never fmaxf/fminf in a kernel (they drop a NaN operand); comments may name them.
if grep -nE '(fmaxf|fminf)\(' kernels/*.cu kernels/*.cuh | grep -vE '^[^:]+:[0-9]+: *//'; then
    echo "ci-cuda: fmaxf/fminf in kernels/ (use nan_max, common.cuh)" >&2
    exit 1
fi

scripts/install-nvcc.sh
export NVCC="$repo_root/.toolchain/cuda/nvidia/cu13/bin/nvcc"

scripts/gpu-check.sh
cargo clippy --features cuda --all-targets -- -D warnings

# Check the PTX of this build only (not stale modules from other profiles).
out_dirs=$(ls -d target/release/build/vecprop-*/out 2>/dev/null || true)
latest=""
for dir in $out_dirs; do
    compgen -G "$dir/*.ptx" >/dev/null || continue
    if [[ -z "$latest" || "$dir" -nt "$latest" ]]; then latest="$dir"; fi
done
if [[ -z "$latest" ]]; then
    echo "ci-cuda: build produced no PTX under target/release/build/vecprop-*/out" >&2
    exit 1
fi
scripts/check-ptx.sh "$@" "$latest"

# SASS: the Hopper kernels use HGMMA and TMA, simt_warp 128-bit shared loads, nothing spills
# to local memory (nvdisasm from its pinned wheel).
scripts/install-nvdisasm.sh
scripts/check-sass.sh
