#!/usr/bin/env bash
# gpu-check.sh: builds everything CUDA on this machine (no GPU needed) and bundles it for a
# GPU machine that has no cargo and no network.
#
#   scripts/gpu-check.sh            # writes .gpu-bundle/ (gitignored), under 64 MiB
#   # on the GPU machine, from a copy of the repository or of .gpu-bundle alone:
#   OUT=/some/dir .gpu-bundle/run.sh
#
# The bundle holds the release test executables (`cargo test --release --features cuda`),
# the bench executables (`cargo bench --features cuda`) and the `vecprop` binary, all
# stripped, plus run.sh. run.sh finds libcuda and cuBLAS 13, runs every test executable and
# the CUDA CLI commands, writes everything to $OUT/gpu-check.log and ends with a summary.
#
# nvcc: build.rs finds it through NVCC, CUDA_HOME, .toolchain/cuda (scripts/install-nvcc.sh)
# or PATH; this script also tries /opt/cuda-nvcc. The PTX must come from CUDA 13.0's nvcc:
# a newer one emits a PTX ISA that the GPU machine's 13.0 driver (580) rejects.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$repo_root/.gpu-bundle"
limit_bytes=$((64 * 1024 * 1024))
cd "$repo_root"

if [[ -z "${NVCC:-}" && -x /opt/cuda-nvcc/nvidia/cu13/bin/nvcc ]]; then
    export NVCC=/opt/cuda-nvcc/nvidia/cu13/bin/nvcc
fi

# Prints "<path> <kind>-<target>" for each executable that a cargo command run with
# --message-format=json builds. The lib's and the bin's test harnesses are both called
# vecprop-<hash>, so the bundle names them lib-vecprop and bin-vecprop.
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        target = message["target"]
        print(message["executable"], target["kind"][0] + "-" + target["name"])
'
}

echo "== building test executables (release, cuda)"
mapfile -t tests < <(cargo test --release --features cuda --no-run \
    --message-format=json-render-diagnostics | executables)
echo "== building bench executables (cuda)"
mapfile -t benches < <(cargo bench --features cuda --no-run \
    --message-format=json-render-diagnostics | executables)
echo "== building the vecprop binary (release, cuda)"
cargo build --release --features cuda --bin vecprop

rm -rf "$bundle"
mkdir -p "$bundle/tests" "$bundle/benches" "$bundle/bin"
for entry in "${tests[@]}"; do
    read -r exe name <<< "$entry"
    cp "$exe" "$bundle/tests/$name"
done
for entry in "${benches[@]}"; do
    read -r exe name <<< "$entry"
    cp "$exe" "$bundle/benches/$name"
done
cp target/release/vecprop "$bundle/bin/vecprop"
strip "$bundle"/tests/* "$bundle"/benches/* "$bundle"/bin/*

cat > "$bundle/run.sh" <<'RUNEOF'
#!/usr/bin/env bash
# run.sh: runs vecprop's CUDA checks on a GPU machine. No cargo or network needed.
#   OUT=/dir ./run.sh        # default OUT: ./gpu-out; exits non-zero on any failure
# BENCH_MODE=full also runs the criterion benches fully (default: one quick pass each).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log="$OUT/gpu-check.log"
: > "$log"
# Tests that read fixtures by relative path expect the repository root as working directory.
if [[ -f "$here/../Cargo.toml" ]]; then cd "$here/.."; fi
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

say "== vecprop gpu-check, $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
find_library libcuda.so.1
find_library libcublas.so.13
find_library libcublasLt.so.13
say "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
say "== nvidia-smi"
nvidia-smi 2>&1 | tee -a "$log"

passed=0
failed=0
failures=()
# Runs a command with a time limit, logging its output; counts it as one check.
check() {
    local label="$1"; shift
    say ""
    say "== $label: $*"
    timeout "${CHECK_TIMEOUT:-1800}" "$@" 2>&1 | tee -a "$log"
    local status=${PIPESTATUS[0]}
    if [[ $status -eq 0 ]]; then
        say "-- $label: ok"
    else
        say "-- $label: FAILED (exit $status)"
        failures+=("$label")
    fi
    return "$status"
}

# --- cold start (issue 14 item 9) ------------------------------------------------------
# First thing on the GPU: the CUDA suites in fresh processes with lazy module loading and
# an empty JIT cache (CUDA_CACHE_PATH stands in for an emptied ~/.nv/ComputeCache), so
# that anything loaded on first use meets a graph capture as on a fresh machine. A
# capture that fails shows as a failed graph_status check in cuda_e2e.
cold_cache="$(mktemp -d)"
for suite in cuda_e2e cuda_parity; do
    exe="$(ls "$here"/tests/*"$suite" 2>/dev/null | head -n 1)"
    [[ -n "$exe" ]] || { say "cold start: no $suite executable"; continue; }
    if check "cold start $suite" env CUDA_MODULE_LOADING=LAZY CUDA_CACHE_PATH="$cold_cache" "$exe"; then
        passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
rm -rf "$cold_cache"
# --- end cold start ------------------------------------------------------------------

tests_passed=0
tests_failed=0
for exe in "$here"/tests/*; do
    name="$(basename "$exe")"
    before=$(wc -l < "$log")
    if check "test $name" "$exe"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    # Add up libtest's "test result: ... N passed; M failed" lines of this executable.
    while read -r p f; do
        tests_passed=$((tests_passed + p))
        tests_failed=$((tests_failed + f))
    done < <(tail -n +"$((before + 1))" "$log" \
        | sed -n 's/.*test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p')
done

for exe in "$here"/benches/*; do
    [[ -e "$exe" ]] || continue
    mode=(--test)
    [[ "${BENCH_MODE:-}" == full ]] && mode=(--bench)
    if check "bench $(basename "$exe")" "$exe" "${mode[@]}"; then
        passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

vecprop="$here/bin/vecprop"
for command in "devices" "demo --device cuda" "bench --device cuda --json $OUT/bench.json" \
    "bench --device cuda --latency --network-throughput --streaming --callers 1,2,4,8 --json $OUT/e2e.json"; do
    # shellcheck disable=SC2086 # the command is split into words on purpose
    if check "vecprop $command" "$vecprop" $command; then
        passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
say ""
say "== summary"
say "device:  ${gpu:-unknown (nvidia-smi failed)}"
say "driver:  ${driver:-unknown}"
say "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "checks:  $passed passed, $failed failed (test executables, benches, CLI commands)"
say "tests:   $tests_passed passed, $tests_failed failed (individual #[test]s)"
for label in "${failures[@]}"; do say "FAILED:  $label"; done
say "log:     $log"
[[ $failed -eq 0 ]]
RUNEOF
chmod +x "$bundle/run.sh"

size=$(du -sb "$bundle" | cut -f1)
echo "== bundle: $bundle ($((size / 1024 / 1024)) MiB)"
ls -la "$bundle"/tests "$bundle"/benches "$bundle"/bin
if (( size > limit_bytes )); then
    echo "gpu-check: the bundle is $size bytes, over the 64 MiB limit" >&2
    exit 1
fi
echo "copy .gpu-bundle to the GPU machine and run: OUT=/some/dir .gpu-bundle/run.sh"
