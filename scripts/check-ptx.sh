#!/usr/bin/env bash
# check-ptx.sh: assemble every PTX module that build.rs produced with `ptxas -v` and report the
# resources of each kernel.
#
#   scripts/check-ptx.sh [--out FILE] [PTX_DIR_OR_FILE ...]
#
# Without arguments it checks target/*/build/vecprop-*/out/*.ptx (every profile and build hash
# present; one set per distinct file name is enough, the newest wins). Each module is assembled
# for sm_80 and sm_90; a module whose name ends in _sm90a is assembled for sm_90a only.
# Prints one row per (kernel, arch): registers, static shared memory, spill stores/loads,
# stack frame. --out FILE also writes the table to FILE.
#
# Exits non-zero on any ptxas error, and on any spill or non-zero stack frame in a `fused_*`,
# `simt_warp_*` or `wgmma_*` kernel (those must keep their accumulators in registers to be
# fast).
#
# ptxas comes from $PTXAS, else next to $NVCC, else the toolchain of scripts/install-nvcc.sh,
# else /opt/cuda-nvcc, else PATH.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_file=""
inputs=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out_file="${2:?--out needs a file name}"; shift 2 ;;
        --out=*) out_file="${1#--out=}"; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) inputs+=("$1"); shift ;;
    esac
done

find_ptxas() {
    if [[ -n "${PTXAS:-}" ]]; then echo "$PTXAS"; return; fi
    local candidates=()
    [[ -n "${NVCC:-}" ]] && candidates+=("$(dirname "$NVCC")/ptxas")
    [[ -n "${CUDA_HOME:-}" ]] && candidates+=("$CUDA_HOME/bin/ptxas")
    candidates+=("$repo_root/.toolchain/cuda/nvidia/cu13/bin/ptxas" /opt/cuda-nvcc/nvidia/cu13/bin/ptxas)
    for c in "${candidates[@]}"; do
        if [[ -x "$c" ]]; then echo "$c"; return; fi
    done
    command -v ptxas || { echo "check-ptx: no ptxas found (run scripts/install-nvcc.sh or set PTXAS)" >&2; exit 2; }
}
ptxas="$(find_ptxas)"

# Collect PTX files: explicit files/directories, or the build outputs (newest per name).
ptx_files=()
if [[ ${#inputs[@]} -eq 0 ]]; then
    shopt -s nullglob
    declare -A newest=()
    for f in "$repo_root"/target/*/build/vecprop-*/out/*.ptx; do
        name="$(basename "$f")"
        if [[ -z "${newest[$name]:-}" || "$f" -nt "${newest[$name]}" ]]; then newest[$name]="$f"; fi
    done
    for name in $(printf '%s\n' "${!newest[@]}" | sort); do ptx_files+=("${newest[$name]}"); done
else
    for input in "${inputs[@]}"; do
        if [[ -d "$input" ]]; then
            while IFS= read -r f; do ptx_files+=("$f"); done < <(find "$input" -maxdepth 1 -name '*.ptx' | sort)
        elif [[ -f "$input" ]]; then
            ptx_files+=("$input")
        else
            echo "check-ptx: no such file or directory: $input" >&2; exit 2
        fi
    done
fi
if [[ ${#ptx_files[@]} -eq 0 ]]; then
    echo "check-ptx: no PTX found (build with --features cuda first, or pass a directory)" >&2
    exit 2
fi

status=0
table="$(mktemp)"
trap 'rm -f "$table"' EXIT
printf '%-34s %-7s %5s %7s %7s %7s %6s  %s\n' kernel arch regs smem spill_st spill_ld stack module >"$table"
for ptx in "${ptx_files[@]}"; do
    module="$(basename "$ptx" .ptx)"
    if [[ "$module" == *_sm90a ]]; then archs=(sm_90a); else archs=(sm_80 sm_90); fi
    for arch in "${archs[@]}"; do
        if ! log="$("$ptxas" -v -arch="$arch" "$ptx" -o /dev/null 2>&1)"; then
            echo "check-ptx: ptxas failed on $ptx for $arch:" >&2
            echo "$log" >&2
            status=1
            continue
        fi
        # One row per entry: the "Compiling entry" line names it, the "stack frame" and "Used"
        # lines that follow carry its numbers.
        echo "$log" | awk -v arch="$arch" -v module="$module" '
            function num(pattern,    s) {
                if (match($0, pattern)) { s = substr($0, RSTART, RLENGTH); sub(/ .*/, "", s); return s }
                return 0
            }
            /Compiling entry function/ { match($0, /function \047[^\047]+\047/); kernel = substr($0, RSTART + 10, RLENGTH - 11); stack = st = ld = 0 }
            /bytes stack frame/ { stack = num("[0-9]+ bytes stack frame"); st = num("[0-9]+ bytes spill stores"); ld = num("[0-9]+ bytes spill loads") }
            /Used [0-9]+ registers/ {
                regs = num("[0-9]+ registers"); smem = num("[0-9]+ bytes smem")
                printf "%-34s %-7s %5d %7d %7d %7d %6d  %s\n", kernel, arch, regs, smem, st, ld, stack, module
            }' >>"$table"
    done
done

cat "$table"
if [[ -n "$out_file" ]]; then cp "$table" "$out_file"; fi

# No kernel may spill; the GEMM kernels may not use a stack frame either (the others' frames
# hold softmax's per-row arrays, which ptxas places in local memory without spilling).
bad="$(awk 'NR > 1 && ($5 > 0 || $6 > 0 || ($1 ~ /^(fused_|simt_warp_|wgmma_)/ && $7 > 0))' "$table")"
if [[ -n "$bad" ]]; then
    echo "check-ptx: kernels with spills (or, for the GEMM kernels, a stack frame):" >&2
    echo "$bad" >&2
    status=1
fi
if [[ $status -ne 0 ]]; then echo "check-ptx: FAILED" >&2; else echo "check-ptx: OK (${#ptx_files[@]} modules, ptxas: $ptxas)"; fi
exit $status
