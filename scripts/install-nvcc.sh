#!/usr/bin/env bash
# install-nvcc.sh: installs CUDA 13.0's nvcc (with ptxas and the NVVM back end) from pinned
# PyPI wheels into .toolchain/cuda in the repository root, where build.rs looks for it
# (.toolchain/cuda/nvidia/cu13/bin/nvcc). No system CUDA installation or GPU is needed.
#
#   scripts/install-nvcc.sh        # then: cargo build --features cuda
#
# All four wheels are pinned: an unpinned nvidia-nvvm pulls a newer compiler whose PTX ISA
# version a CUDA 13.0 driver rejects. Idempotent: does nothing if a 13.0 nvcc is already there.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$repo_root/.toolchain/cuda"
nvcc="$target/nvidia/cu13/bin/nvcc"
python="${PYTHON:-python3}"

if [[ -x "$nvcc" ]] && "$nvcc" --version 2>/dev/null | grep -q "release 13\.0"; then
    echo "nvcc 13.0 already installed: $nvcc"
    exit 0
fi

echo "installing CUDA 13.0 nvcc into $target"
"$python" -m pip install --disable-pip-version-check --no-deps --upgrade --target "$target" \
    nvidia-cuda-nvcc==13.0.88 \
    nvidia-nvvm==13.0.88 \
    nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96

if ! "$nvcc" --version | grep -q "release 13\.0"; then
    echo "install-nvcc: $nvcc is missing or is not CUDA 13.0" >&2
    exit 1
fi
echo "nvcc: $nvcc"
echo "use it with: NVCC=$nvcc cargo build --features cuda"
