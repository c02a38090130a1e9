#!/usr/bin/env bash
# gpu-check.sh: builds everything CUDA on this machine (no GPU needed) and bundles it for a
# GPU machine that has no cargo and no network.
#
#   scripts/gpu-check.sh            # writes .gpu-bundle/ (gitignored), at most 48 MiB
#   # on the GPU machine, from a copy of the repository or of .gpu-bundle alone, one command:
#   OUT=/some/dir .gpu-bundle/run.sh [--quick]
#
# The bundle holds five stripped executables: the library's and the CLI's unit tests and the
# integration suite (`cargo test --release --features cuda`: tests/lib-vecprop,
# tests/bin-vecprop, tests/test-all), the criterion benches (benches/bench-all) and the
# `vecprop` binary; each embeds the kernel images once, zstd-compressed. Beside them: the
# test fixtures, the PyTorch and report scripts, and run.sh (scripts/gpu-run.sh).
# It exits 1 if the bundle is over 48 MiB (the device tool carries 64 MiB in all; the rest is
# room for fixtures and peer scripts), and prints its size last.
#
# nvcc: build.rs finds it through NVCC, CUDA_HOME, .toolchain/cuda (scripts/install-nvcc.sh)
# or PATH; this script also tries /opt/cuda-nvcc. The PTX must come from CUDA 13.0's nvcc:
# a newer one emits a PTX ISA that the GPU machine's 13.0 driver (580) rejects.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$repo_root/.gpu-bundle"
limit_bytes=$((48 * 1024 * 1024))
cd "$repo_root"

if [[ -z "${NVCC:-}" && -x /opt/cuda-nvcc/nvidia/cu13/bin/nvcc ]]; then
    export NVCC=/opt/cuda-nvcc/nvidia/cu13/bin/nvcc
fi

# Prints "<path> <kind>-<target>" for each test harness (a lib, bin or test target built with
# --test, or a bench target) that a cargo command run with --message-format=json builds; the
# plain `vecprop` binary that cargo also builds for the integration tests is left out. The
# lib's and the bin's harnesses are both called vecprop-<hash>, so the bundle names them
# lib-vecprop and bin-vecprop.
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") != "compiler-artifact" or not message.get("executable"):
        continue
    if message["profile"]["test"] or message["target"]["kind"] == ["bench"]:
        target = message["target"]
        print(message["executable"], target["kind"][0] + "-" + target["name"])
'
}

echo "== building test executables (release, cuda)"
mapfile -t tests < <(cargo test --release --features cuda --no-run \
    --message-format=json-render-diagnostics | executables)
echo "== building bench executables (cuda)"
mapfile -t benches < <(cargo bench --features cuda --no-run --bench all \
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

# run.sh and what it needs besides the executables: the fixtures the tests read and the
# PyTorch comparison scripts.
cp scripts/gpu-run.sh "$bundle/run.sh"
mkdir -p "$bundle/fixtures" "$bundle/scripts"
cp -R tests/fixtures/. "$bundle/fixtures/"
cp scripts/torch_gpu_bench.py scripts/bench_report.py "$bundle/scripts/"
chmod +x "$bundle/run.sh"

cp scripts/gpu_targets.py "$bundle/scripts/"

size=$(du -sb "$bundle" | cut -f1)
ls -la "$bundle"/tests "$bundle"/benches "$bundle"/bin
echo "copy .gpu-bundle to the GPU machine and run: OUT=/some/dir .gpu-bundle/run.sh [--quick]"
mib=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')
if (( size > limit_bytes )); then
    echo "gpu-check: the bundle is $mib MiB ($size bytes), over the 48 MiB limit" >&2
    exit 1
fi
echo "== bundle: $bundle, $mib MiB ($size bytes), limit 48 MiB"
