#!/usr/bin/env bash
# The Python module's CI: a fresh virtual environment, the pinned test requirements from
# PyPI, `pip install ./python` (maturin, pinned in python/pyproject.toml, builds the CPU
# extension in release mode), then the pytest suite on the CPU.
#
# Usage: scripts/python-ci.sh            (PYTHON=python3.12 to pick the interpreter)
# On a GPU machine with a CUDA build, VECPROP_TEST_CUDA=1 runs the suite on "cuda" too;
# build that with  pip install ./python --config-settings=build-args="--features cuda".
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=$(mktemp -d "${TMPDIR:-/tmp}/vecprop-python-ci.XXXXXX")
trap 'rm -rf "$VENV"' EXIT

echo "== python: lint the extension crate"
cargo clippy -p vecprop-python --all-targets -- -D warnings

echo "== python: fresh venv ($("$PYTHON" --version)) in $VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r python/tests/requirements.txt

echo "== python: pip install ./python"
"$VENV/bin/python" -m pip install --disable-pip-version-check ./python

echo "== python: NumPy reads the .npy files the Rust library writes (the test plain cargo test ignores)"
numpy_test=$(PATH="$VENV/bin:$PATH" cargo test --test all -- --ignored --exact io::numpy_reads_what_we_write 2>&1) \
    || { echo "$numpy_test"; exit 1; }
# A renamed test would match nothing and "pass": insist that exactly this one ran.
grep -q "test result: ok. 1 passed" <<< "$numpy_test" || { echo "$numpy_test"; echo "the numpy test did not run"; exit 1; }

echo "== python: pytest"
# From python/tests' parent, but against the installed package, not the source folder.
cd python/tests
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --import-mode=prepend --rootdir=. .
