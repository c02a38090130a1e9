#!/usr/bin/env bash
# In-process fuzzing of vecprop's parsers (cargo-fuzz, libFuzzer), a bounded time per target,
# on the STABLE toolchain: a fresh CI machine cannot download a nightly.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 60 s each for npy_header, npy_reader, safetensors_model, activation_list
# (fuzz/fuzz_targets/). Each starts from its committed seed corpus fuzz/corpus/<target>
# (read-only here: new inputs go to a scratch folder, so the committed corpus stays small).
# A crash stops the script with libFuzzer's report and the input under fuzz/artifacts/;
# turn that input into a regression test (tests/all/safe_io.rs or the parser's unit tests).
#
# Environment: FUZZ_SANITIZER=address (default where the stable ASan runtime ships, as on
# x86_64 Linux) or none.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(npy_header npy_reader safetensors_model activation_list)
fi

cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
    echo "installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

# cargo-fuzz passes flags that rustc accepts only on nightly (-Zsanitizer, ...); stable rustc
# accepts them under RUSTC_BOOTSTRAP=1. libFuzzer itself is built by libfuzzer-sys with the
# system C++ compiler.
export RUSTC_BOOTSTRAP=1
sysroot="$(rustc --print sysroot)"
host="$(rustc -vV | sed -n 's/^host: //p')"
if [ -z "${FUZZ_SANITIZER:-}" ]; then
    if ls "$sysroot/lib/rustlib/$host/lib/"librustc-*_rt.asan.a >/dev/null 2>&1; then
        FUZZ_SANITIZER=address
    else
        FUZZ_SANITIZER=none
    fi
fi
echo "fuzzing ${targets[*]} for ${seconds} s each, sanitizer: $FUZZ_SANITIZER, $(rustc --version)"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "== fuzz $target"
    (cd fuzz && cargo fuzz run --sanitizer "$FUZZ_SANITIZER" "$target" \
        "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1)
done
