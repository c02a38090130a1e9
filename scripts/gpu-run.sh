#!/usr/bin/env bash
# gpu-run.sh: the whole GPU check of vecprop, in one call, on a GPU machine that has no cargo,
# no pip and no network (bash, coreutils, python3; PyTorch if present). scripts/gpu-check.sh
# copies it into its bundle as run.sh, beside the executables it runs.
#
#   OUT=/dir .gpu-bundle/run.sh           # everything, at most 8 minutes on an H100
#   OUT=/dir .gpu-bundle/run.sh --quick   # the tests and one bench row per target, <= 3 minutes
#
# Phases, in order; each has its own time limit, cut further so that the run as a whole stays
# inside its budget (RUN_BUDGET_S: 470 s, quick 175 s), and each writes $OUT/phase-<name>.json
# (status, exit code, seconds, tests passed and failed) and $OUT/<name>.log as it finishes:
#   cold      every integration test with `cuda` in its name (the cuda_* modules and each
#             per-device test's cuda variant) first thing, CUDA_MODULE_LOADING=LAZY, empty
#             JIT cache
#   devices   `vecprop devices` and `vecprop demo --device cuda`
#   tests     every other test: the library's unit tests, the CLI's, the integration suite
#   memcheck  compute-sanitizer memcheck over the parity tests (full run only)
#   bench     `vecprop bench --device cuda` at the shapes of issues 8 and 9 (vecprop-bench.json)
#   e2e       latency, whole-batch throughput, streaming (vecprop-e2e.json)
#   images    the criterion bench of decoding the kernel images, and every bench once
#   torch     scripts/torch_gpu_bench.py on the same GPU (torch.json), when PyTorch has CUDA
#   report    tables.md (scripts/bench_report.py) and targets.json (scripts/gpu_targets.py)
# The last thing printed is the table of every target of issues 8, 9 and 10: target,
# measured, met or missed. The exit status is non-zero if any phase failed.
set -uo pipefail

quick=0
[[ "${1:-}" == --quick ]] && quick=1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export VECPROP_BIN="$here/bin/vecprop"
export VECPROP_FIXTURES="$here/fixtures"
vecprop="$VECPROP_BIN"
tests_exe="$here/tests/test-all"
budget_s="${RUN_BUDGET_S:-$(( quick ? 175 : 470 ))}"
started=$SECONDS
failed_phases=()
log="$OUT/run.log"
: > "$log"
say() { echo "$@" | tee -a "$log"; }

# Puts the folder holding library $1 on LD_LIBRARY_PATH unless the loader already finds it.
find_library() {
    local lib="$1" found
    if ldconfig -p 2>/dev/null | grep -q "[[:space:]]$lib "; then
        say "library $lib: found by ldconfig"
        return 0
    fi
    found="$(find /usr /usr/local /opt -xdev \( -name "$lib" -o -name "$lib.*" \) \
        \( -type f -o -type l \) 2>/dev/null | head -n 1)"
    if [[ -n "$found" ]]; then
        export LD_LIBRARY_PATH="$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "library $lib: $found"
    else
        say "library $lib: NOT FOUND under /usr, /usr/local, /opt"
    fi
}

# phase NAME LIMIT_S COMMAND...: runs one step of a phase under min(LIMIT_S, what is left of
# the budget), appending to $OUT/NAME.log, then (re)writes $OUT/phase-NAME.json with the
# phase's totals so far. A phase may call this several times; any failing step fails it.
declare -A phase_status phase_seconds phase_passed phase_failed
phase() {
    local name="$1" limit="$2"; shift 2
    local left=$(( budget_s - (SECONDS - started) ))
    (( left < limit )) && limit=$left
    local phase_log="$OUT/$name.log" status t0=$SECONDS before=0
    [[ -f "$phase_log" ]] && before=$(wc -l < "$phase_log")
    say "== $name: $* (limit ${limit}s)"
    if (( limit < 5 )); then
        echo "skipped: the run's ${budget_s}s budget is spent" >> "$phase_log"
        status=124
    else
        timeout --kill-after=10 "$limit" "$@" >> "$phase_log" 2>&1
        status=$?
    fi
    local passed failed
    read -r passed failed < <(tail -n +"$((before + 1))" "$phase_log" | sed -n \
        's/.*test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' \
        | awk '{p += $1; f += $2} END {print p + 0, f + 0}')
    phase_seconds[$name]=$(( ${phase_seconds[$name]:-0} + SECONDS - t0 ))
    phase_passed[$name]=$(( ${phase_passed[$name]:-0} + passed ))
    phase_failed[$name]=$(( ${phase_failed[$name]:-0} + failed ))
    if [[ $status -ne 0 ]]; then
        phase_status[$name]="failed (exit $status$([[ $status -eq 124 ]] && echo ', time limit'))"
        [[ " ${failed_phases[*]} " == *" $name "* ]] || failed_phases+=("$name")
    elif [[ -z "${phase_status[$name]:-}" ]]; then
        phase_status[$name]=ok
    fi
    printf '{"phase": "%s", "status": "%s", "last_exit": %d, "seconds": %d, "tests_passed": %d, "tests_failed": %d, "quick": %s}\n' \
        "$name" "${phase_status[$name]}" "$status" "${phase_seconds[$name]}" \
        "${phase_passed[$name]}" "${phase_failed[$name]}" "$([[ $quick -eq 1 ]] && echo true || echo false)" \
        > "$OUT/phase-$name.json"
    say "-- $name: ${phase_status[$name]} after ${phase_seconds[$name]}s (tests: $passed passed, $failed failed)"
    return "$status"
}

say "== vecprop GPU check$([[ $quick -eq 1 ]] && echo ' (quick)'), $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), budget ${budget_s}s"
find_library libcuda.so.1
find_library libcublas.so.13
find_library libcublasLt.so.13
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"

# ---- cold start: the CUDA tests first, with no JIT cache --------------------------------
rm -rf "${HOME:-/root}/.nv/ComputeCache"
cold_cache="$(mktemp -d)"
CUDA_MODULE_LOADING=LAZY CUDA_CACHE_PATH="$cold_cache" phase cold 150 "$tests_exe" cuda
phase devices 30 "$vecprop" devices
phase devices 60 "$vecprop" demo --device cuda

# ---- every test ------------------------------------------------------------------------------
phase tests 90 "$here/tests/lib-vecprop"
phase tests 30 "$here/tests/bin-vecprop"
phase tests 120 "$tests_exe" --skip cuda

# ---- compute-sanitizer memcheck over the parity tests ----------------------------------------
sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)"
if [[ $quick -eq 0 ]]; then
    if [[ -n "$sanitizer" ]]; then
        phase memcheck 120 "$sanitizer" --tool memcheck --error-exitcode 99 \
            "$tests_exe" cuda_parity --test-threads=1
    else
        phase memcheck 5 sh -c 'echo "compute-sanitizer not found"; exit 1'
    fi
fi

# ---- benches -----------------------------------------------------------------------------------
# The shapes of the targets of issues 8 and 9; quick: one of each kind, fewer repeats.
if [[ $quick -eq 1 ]]; then
    shapes=65536x64x64,65536x256x256,64x4096x4096,16384x4096x4096,65536x784x512
    bench_args=(--repeats 3)
    e2e_args=(--latency --network-throughput)
    torch_args=(--quick --no-compile --budget-s 40)
else
    shapes=16384x64x64,65536x64x64,65536x256x256,1x1024x1024,1x4096x4096,64x1024x1024
    shapes+=,64x4096x4096,16384x4096x4096,65536x4096x4096,65536x784x512,16384x1024x1024
    shapes+=,65536x1024x1024
    bench_args=(--repeats 10)
    e2e_args=(--latency --network-throughput --streaming)
    torch_args=(--budget-s 100)
fi
phase bench 150 "$vecprop" bench --device cuda --shapes "$shapes" "${bench_args[@]}" \
    --json "$OUT/vecprop-bench.json" --plot "$OUT/vecprop-bench.svg"
phase e2e 120 "$vecprop" bench --device cuda "${e2e_args[@]}" --json "$OUT/vecprop-e2e.json"
phase images 40 "$here/benches/bench-all" --bench kernel_images \
    --warm-up-time 0.5 --measurement-time 1
[[ $quick -eq 0 ]] && phase images 60 "$here/benches/bench-all" --test

# ---- PyTorch on the same GPU ---------------------------------------------------------------
torch_json=()
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    if phase torch 110 python3 "$here/scripts/torch_gpu_bench.py" --json "$OUT/torch.json" \
        "${torch_args[@]}"; then
        torch_json=(--torch "$OUT/torch.json")
    fi
else
    say "== torch: skipped (python3 with CUDA torch not found)"
fi

# ---- report: the tables, then the targets, printed last -------------------------------------
report=()
[[ -s "$OUT/vecprop-bench.json" ]] && report+=(--vecprop "$OUT/vecprop-bench.json")
[[ -s "$OUT/vecprop-e2e.json" ]] && report+=(--e2e "$OUT/vecprop-e2e.json")
if (( ${#report[@]} )); then
    budget_s=$(( budget_s + 20 ))  # the report always gets its few seconds
    phase report 15 python3 "$here/scripts/bench_report.py" "${report[@]}" "${torch_json[@]}" \
        --markdown "$OUT/tables.md"
fi
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
{
    echo "device:     ${gpu:-unknown (nvidia-smi failed)}"
    echo "driver:     ${driver:-unknown}"
    echo "date:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "wall time:  $((SECONDS - started)) s of a ${budget_s} s budget$([[ $quick -eq 1 ]] && echo ' (quick)')"
    for name in cold devices tests memcheck bench e2e images torch report; do
        [[ -n "${phase_status[$name]:-}" ]] || continue
        printf 'phase %-9s %s, %ss, tests %s passed %s failed\n' "$name" "${phase_status[$name]}" \
            "${phase_seconds[$name]}" "${phase_passed[$name]}" "${phase_failed[$name]}"
    done
    echo "outputs:    $(cd "$OUT" && ls | tr '\n' ' ')"
    echo
    python3 "$here/scripts/gpu_targets.py" --bench "$OUT/vecprop-bench.json" \
        --e2e "$OUT/vecprop-e2e.json" --torch "$OUT/torch.json" --json "$OUT/targets.json"
} > "$OUT/summary.txt" 2>&1
say ""
say "== summary"
tee -a "$log" < "$OUT/summary.txt"
[[ ${#failed_phases[@]} -eq 0 ]]
