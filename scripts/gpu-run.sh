#!/usr/bin/env bash
# gpu-run.sh: the whole GPU check of vecprop on a GPU machine that has no cargo and no network.
# scripts/gpu-check.sh copies it into its bundle as run.sh, beside the executables it runs.
#
#   OUT=/dir .gpu-bundle/run.sh      # default OUT: ./gpu-out; exits non-zero on any failure
#
# Phases, in order, all logged to $OUT/gpu-check.log:
#   1. cold start: the CUDA suites first thing in this process tree, CUDA_MODULE_LOADING=LAZY,
#      with the driver's ~/.nv compute cache emptied (issue 14: a capture that failed only cold);
#   2. every test executable (VECPROP_BIN and VECPROP_FIXTURES point into the bundle, so
#      they run from any folder);
#   3. compute-sanitizer: memcheck over each CUDA suite, then racecheck, synccheck and initcheck
#      on one test per kernel family, one test at a time (all at once did not finish);
#   4. the kernel bench (vecprop-bench.json, vecprop-bench.svg) and the end-to-end bench
#      (vecprop-e2e.json);
#   5. when python3 with torch is present: scripts/torch_gpu_bench.py (torch.json) and
#      scripts/bench_report.py (tables.md);
#   6. the summary, printed last and kept in summary.txt.
# Time: the whole run aims at ~9 minutes (one device call). SANITIZER_BUDGET_S (default 150)
# and TORCH_BUDGET_S (default 150) bound phases 3 and 5; BENCH_MODE=full runs the criterion
# benches fully (default: one quick pass each).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log="$OUT/gpu-check.log"
sanitizer_log="$OUT/sanitizer.log"
: > "$log"
: > "$sanitizer_log"
export VECPROP_BIN="$here/bin/vecprop"
export VECPROP_FIXTURES="$here/fixtures"
vecprop="$VECPROP_BIN"
started=$SECONDS
say() { echo "$@" | tee -a "$log"; }

# Puts the folder holding $1 on LD_LIBRARY_PATH unless the loader already finds it.
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

passed=0
failed=0
failures=()
tests_passed=0
tests_failed=0
# Runs a command with a time limit, logging its output; counts it as one check, and adds up
# libtest's "test result: ... N passed; M failed" lines.
check() {
    local label="$1"; shift
    local before
    before=$(wc -l < "$log")
    say ""
    say "== $label: $*"
    timeout "${CHECK_TIMEOUT:-300}" "$@" 2>&1 | tee -a "$log"
    local status=${PIPESTATUS[0]}
    if [[ $status -eq 0 ]]; then
        say "-- $label: ok"
        passed=$((passed + 1))
    else
        say "-- $label: FAILED (exit $status)"
        failures+=("$label")
        failed=$((failed + 1))
    fi
    while read -r p f; do
        tests_passed=$((tests_passed + p))
        tests_failed=$((tests_failed + f))
    done < <(tail -n +"$((before + 1))" "$log" \
        | sed -n 's/.*test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p')
    return "$status"
}

cuda_suites=()
for exe in "$here"/tests/test-cuda_*; do [[ -e "$exe" ]] && cuda_suites+=("$exe"); done

# ---- 1. cold start ---------------------------------------------------------------------
say "== vecprop gpu-check, $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
find_library libcuda.so.1
find_library libcublas.so.13
find_library libcublasLt.so.13
say "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
rm -rf "${HOME:-/root}/.nv/ComputeCache"
say "== cold start: ~/.nv/ComputeCache emptied, CUDA_MODULE_LOADING=LAZY, CUDA suites first"
cold_cache="$(mktemp -d)"   # CUDA_CACHE_PATH: an empty JIT cache, whatever ~/.nv holds
for exe in "${cuda_suites[@]}"; do
    CUDA_MODULE_LOADING=LAZY CUDA_CACHE_PATH="$cold_cache" \
        check "cold $(basename "$exe")" "$exe" || true
done
say "== nvidia-smi"
nvidia-smi 2>&1 | tee -a "$log"

# ---- 2. every test executable ------------------------------------------------------------
for exe in "$here"/tests/*; do
    check "test $(basename "$exe")" "$exe" || true
done
for exe in "$here"/benches/*; do
    [[ -e "$exe" ]] || continue
    mode=(--test)
    [[ "${BENCH_MODE:-}" == full ]] && mode=(--bench)
    check "bench $(basename "$exe")" "$exe" "${mode[@]}" || true
done
check "vecprop devices" "$vecprop" devices || true
check "vecprop demo" "$vecprop" demo --device cuda || true

# ---- 3. compute-sanitizer -----------------------------------------------------------------
sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)"
sanitizer_runs=0
sanitizer_errors=0
sanitizer_skipped=0
# Runs one sanitizer tool on one test executable (optionally one test); its output goes to
# sanitizer.log, its verdict to the main log.
sanitize() {
    local tool="$1" exe="$2" test_name="${3:-}"
    local args=("$exe" --test-threads=1)
    [[ -n "$test_name" ]] && args+=(--exact "$test_name")
    if (( SECONDS - started > ${SANITIZER_DEADLINE_S:-0} && ${SANITIZER_DEADLINE_S:-0} > 0 )); then
        sanitizer_skipped=$((sanitizer_skipped + 1))
        say "-- $tool $(basename "$exe") ${test_name}: skipped (sanitizer time budget spent)"
        return 0
    fi
    echo "== $tool $(basename "$exe") $test_name" >> "$sanitizer_log"
    timeout "${SANITIZER_TIMEOUT:-120}" "$sanitizer" --tool "$tool" --error-exitcode 99 \
        "${args[@]}" >> "$sanitizer_log" 2>&1
    local status=$?
    sanitizer_runs=$((sanitizer_runs + 1))
    local summary
    summary="$(grep -a "ERROR SUMMARY" "$sanitizer_log" | tail -n 1)"
    if [[ $status -eq 0 ]]; then
        say "-- $tool $(basename "$exe") ${test_name}: ok (${summary:-no summary})"
    else
        sanitizer_errors=$((sanitizer_errors + 1))
        failures+=("$tool $(basename "$exe") $test_name (exit $status)")
        failed=$((failed + 1))
        say "-- $tool $(basename "$exe") ${test_name}: FAILED, exit $status (${summary:-no summary}; see sanitizer.log)"
    fi
}

# One test per kernel family of a suite: libtest names tests `<family>_<dtype>::<activation>`
# (tests outside such modules are covered by memcheck only); the family is the module with its dtype suffix removed, and the test
# chosen is a 16-bit one where there is one (the tensor-core paths share the most memory).
family_tests() {
    "$1" --list --format terse 2>/dev/null | sed -n 's/: test$//p' | grep '::' | awk '
        { module = $0; sub(/::[^:]*$/, "", module); family = module
          sub(/_(f32|tf32|f16|bf16)$/, "", family)
          if (!(family in pick) || (module ~ /_bf16$/ && pick[family] !~ /_bf16::/)) pick[family] = $0 }
        END { for (f in pick) print pick[f] }' | sort
}

if [[ -z "$sanitizer" ]]; then
    say ""
    say "== compute-sanitizer: NOT FOUND, skipped"
    failures+=("compute-sanitizer not found")
    failed=$((failed + 1))
else
    say ""
    say "== compute-sanitizer ($sanitizer): memcheck per CUDA suite, then racecheck, synccheck, initcheck per kernel family"
    SANITIZER_DEADLINE_S=$(( SECONDS - started + ${SANITIZER_BUDGET_S:-150} ))
    for exe in "${cuda_suites[@]}"; do sanitize memcheck "$exe"; done
    for exe in "${cuda_suites[@]}"; do
        while read -r test_name; do
            [[ -n "$test_name" ]] || continue
            for tool in racecheck synccheck initcheck; do sanitize "$tool" "$exe" "$test_name"; done
        done < <(family_tests "$exe")
    done
fi

# ---- 4. benches ------------------------------------------------------------------------------
check "vecprop bench" "$vecprop" bench --device cuda \
    --json "$OUT/vecprop-bench.json" --plot "$OUT/vecprop-bench.svg" || true
check "vecprop bench e2e" "$vecprop" bench --device cuda --latency --network-throughput \
    --streaming --callers 1,2,4,8 --json "$OUT/vecprop-e2e.json" || true

# ---- 5. PyTorch on the same GPU, and the tables ----------------------------------------
torch_json=()
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    if check "torch bench" python3 "$here/scripts/torch_gpu_bench.py" --json "$OUT/torch.json" \
        --budget-s "${TORCH_BUDGET_S:-150}"; then
        torch_json=(--torch "$OUT/torch.json")
    fi
else
    say ""
    say "== torch bench: skipped (python3 with CUDA torch not found)"
fi
report_inputs=()
[[ -s "$OUT/vecprop-bench.json" ]] && report_inputs+=(--vecprop "$OUT/vecprop-bench.json")
[[ -s "$OUT/vecprop-e2e.json" ]] && report_inputs+=(--e2e "$OUT/vecprop-e2e.json")
if (( ${#report_inputs[@]} )); then
    check "bench report" python3 "$here/scripts/bench_report.py" "${report_inputs[@]}" \
        "${torch_json[@]}" --markdown "$OUT/tables.md" > /dev/null || true
fi

# ---- 6. summary --------------------------------------------------------------------------
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
{
    echo "device:     ${gpu:-unknown (nvidia-smi failed)}"
    echo "driver:     ${driver:-unknown}"
    echo "date:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "wall time:  $((SECONDS - started)) s"
    echo "checks:     $passed passed, $failed failed (test executables, benches, CLI commands, sanitizer runs)"
    echo "tests:      $tests_passed passed, $tests_failed failed (individual #[test]s, cold phase included)"
    echo "sanitizer:  $sanitizer_runs runs, $sanitizer_errors with errors, $sanitizer_skipped skipped for time"
    for label in "${failures[@]}"; do echo "FAILED:     $label"; done
    echo "outputs:    $(cd "$OUT" && ls | tr '\n' ' ')"
} > "$OUT/summary.txt"
say ""
say "== summary"
tee -a "$log" < "$OUT/summary.txt"
[[ $failed -eq 0 ]]
