#!/usr/bin/env bash
# check-sass.sh: assembles the sm_90a PTX that build.rs produced (kernels/*_sm90a.cu) with the
# pinned ptxas, disassembles the cubin with nvdisasm, and checks that every `wgmma_*` kernel
# uses the instructions it was written for: HGMMA (warpgroup MMA) and UTMALDG (TMA loads),
# with no local-memory traffic (LDL/STL). Also checks the compute_80 `simt_warp_*` kernels,
# assembled for sm_90, for LDL/STL and for 128-bit shared loads (LDS.128).
#
#   scripts/check-sass.sh [PTX_DIR]      # default: the build output with the newest sm_90a PTX
#
# ptxas: $PTXAS, else next to $NVCC, else .toolchain/cuda (scripts/install-nvcc.sh).
# nvdisasm: $NVDISASM, else .toolchain/nvdisasm (scripts/install-nvdisasm.sh).
# Prints one row per kernel with instruction counts; exits non-zero on any missing one.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Default: the build directory holding the newest sm_90a PTX (directory times are not reliable).
newest_ptx="$(ls -t "$repo_root"/target/*/build/vecprop-*/out/*_sm90a.ptx 2>/dev/null | head -n 1 || true)"
ptx_dir="${1:-${newest_ptx%/*}}"
[[ -d "$ptx_dir" ]] || { echo "check-sass: no PTX directory (build with --features cuda first)" >&2; exit 1; }
ptxas="${PTXAS:-}"
if [[ -z "$ptxas" && -n "${NVCC:-}" ]]; then ptxas="$(dirname "$NVCC")/ptxas"; fi
ptxas="${ptxas:-$repo_root/.toolchain/cuda/nvidia/cu13/bin/ptxas}"
nvdisasm="${NVDISASM:-$repo_root/.toolchain/nvdisasm/nvidia/cu13/bin/nvdisasm}"
for tool in "$ptxas" "$nvdisasm"; do
    [[ -x "$tool" ]] || { echo "check-sass: $tool not found (scripts/install-nvcc.sh, scripts/install-nvdisasm.sh)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0

# Disassembles $1.ptx for arch $2 and prints "kernel count(pattern)..." for the patterns.
count_per_kernel() {
    local ptx="$1" arch="$2"
    "$ptxas" -arch="$arch" "$ptx" -o "$work/module.cubin"
    "$nvdisasm" "$work/module.cubin" > "$work/module.sass"
    awk '
        /^\.text\./ { kernel = substr($1, 7); sub(/:$/, "", kernel); next }
        kernel == "" { next }
        /HGMMA/ { hgmma[kernel]++ }
        /UTMALDG/ { tma[kernel]++ }
        /LDS\.128/ { lds128[kernel]++ }
        /[^A-Z](LDL|STL)[. ]/ { local_mem[kernel]++ }
        { seen[kernel] = 1 }
        END {
            for (k in seen) printf "%s %d %d %d %d\n", k, hgmma[k], tma[k], lds128[k], local_mem[k]
        }' "$work/module.sass" | sort
}

printf '%-28s %-7s %6s %8s %8s %8s\n' kernel arch HGMMA UTMALDG LDS.128 LDL/STL
for ptx in "$ptx_dir"/*_sm90a.ptx "$ptx_dir"/simt_warp.ptx; do
    [[ -f "$ptx" ]] || continue
    arch=sm_90a
    [[ "$ptx" == *_sm90a.ptx ]] || arch=sm_90
    while read -r kernel hgmma tma lds128 local_mem; do
        printf '%-28s %-7s %6d %8d %8d %8d\n' "$kernel" "$arch" "$hgmma" "$tma" "$lds128" "$local_mem"
        if [[ "$kernel" == wgmma_* && ( "$hgmma" -eq 0 || "$tma" -eq 0 ) ]]; then
            echo "check-sass: $kernel lacks HGMMA or UTMALDG" >&2; status=1
        fi
        if [[ "$kernel" == simt_warp_* && "$lds128" -eq 0 ]]; then
            echo "check-sass: $kernel has no 128-bit shared loads" >&2; status=1
        fi
        if [[ "$local_mem" -gt 0 ]]; then
            echo "check-sass: $kernel uses local memory (LDL/STL)" >&2; status=1
        fi
    done < <(count_per_kernel "$ptx" "$arch")
done
exit "$status"
