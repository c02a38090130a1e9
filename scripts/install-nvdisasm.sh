#!/usr/bin/env bash
# install-nvdisasm.sh: installs nvdisasm (SASS disassembler) from a pinned PyPI wheel, for
# checking which instructions ptxas made of our PTX (scripts/check-sass.sh).
#
#   scripts/install-nvdisasm.sh          # into .toolchain/nvdisasm (or $NVDISASM_HOME)
#
# PyPI has no CUDA 13.0 build of nvidia-cuda-nvdisasm (the oldest 13.x wheel is 13.2.51), so
# this pins 13.2.51: nvdisasm only reads cubins, and it reads the sm_90a cubins that the pinned
# 13.0 ptxas (scripts/install-nvcc.sh) writes. Idempotent.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${NVDISASM_HOME:-$repo_root/.toolchain/nvdisasm}"
nvdisasm="$target/nvidia/cu13/bin/nvdisasm"
python="${PYTHON:-python3}"

if [[ -x "$nvdisasm" ]]; then
    echo "nvdisasm already installed: $nvdisasm"
    exit 0
fi
echo "installing nvdisasm into $target"
"$python" -m pip install --disable-pip-version-check --no-deps --upgrade --target "$target" \
    nvidia-cuda-nvdisasm==13.2.51
if [[ ! -x "$nvdisasm" ]]; then
    found="$(find "$target" -name nvdisasm -type f | head -n 1)"
    [[ -n "$found" ]] || { echo "install-nvdisasm: no nvdisasm under $target" >&2; exit 1; }
    nvdisasm="$found"
fi
"$nvdisasm" --version | tail -n 1
echo "nvdisasm: $nvdisasm"
