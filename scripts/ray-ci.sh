#!/usr/bin/env bash
# vecprop on Ray (issue 22): a fresh venv, the pinned ray[serve,data] from a wheel cache,
# pip install "./python[ray]", the Ray tests (a real local Ray, a two-node Cluster, Serve;
# loopback only) under a hard timeout, then the README's "At scale" snippets as written: the
# laptop one on a local Ray, the cluster one against a head node started with `ray start`.
#
# Usage: scripts/ray-ci.sh         (PYTHON=python3.11 to pick the interpreter)
# Wheels are cached in ${VECPROP_WHEELS:-${XDG_CACHE_HOME:-~/.cache}/vecprop-wheels}: the first
# run downloads ray and its dependencies there, later runs install from it without the index.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
RAY_PIN="ray[serve,data]==2.60.0"
WHEELS=${VECPROP_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/vecprop-wheels}
TESTS_TIMEOUT_S=${VECPROP_RAY_TESTS_TIMEOUT_S:-420}
SNIPPET_TIMEOUT_S=120
VENV=$(mktemp -d "${TMPDIR:-/tmp}/vecprop-ray-ci.XXXXXX")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vecprop-ray-snippets.XXXXXX")
RAY_STARTED=
cleanup() {
    if [ -n "$RAY_STARTED" ]; then "$VENV/bin/ray" stop --force >/dev/null 2>&1 || true; fi
    rm -rf "$VENV" "$WORK"
}
trap cleanup EXIT

# Every Ray process of this step on 127.0.0.1 (Ray's switch for it, despite its name).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# The tests fail, never skip, when ray is missing.
export VECPROP_TEST_RAY=1

echo "== ray: fresh venv ($("$PYTHON" --version)) in $VENV, wheels cached in $WHEELS"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
mkdir -p "$WHEELS"
if ! "${PIP[@]}" install --quiet --no-index --find-links "$WHEELS" "$RAY_PIN" -r python/tests/requirements.txt 2>/dev/null; then
    echo "== ray: filling the wheel cache (pip download $RAY_PIN)"
    "${PIP[@]}" download --quiet --dest "$WHEELS" "$RAY_PIN" -r python/tests/requirements.txt
    "${PIP[@]}" install --quiet --no-index --find-links "$WHEELS" "$RAY_PIN" -r python/tests/requirements.txt
fi

echo "== ray: pip install ./python[ray]"
"${PIP[@]}" install --quiet --find-links "$WHEELS" "./python[ray]"
"$VENV/bin/python" - <<'EOF'
import subprocess, sys
# The core package must not import ray.
code = "import sys, vecprop; assert 'ray' not in sys.modules, 'import vecprop imported ray'"
subprocess.run([sys.executable, "-c", code], check=True)
EOF

echo "== ray: pytest python/tests/test_ray*.py (timeout ${TESTS_TIMEOUT_S}s)"
(
    cd python/tests
    timeout --kill-after=20 "$TESTS_TIMEOUT_S" "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
        -W ignore::DeprecationWarning --import-mode=prepend --rootdir=. \
        test_ray_data.py test_ray_serve.py test_ray_cluster.py
)

echo "== ray: the README's 'At scale' snippets, unchanged (timeout ${SNIPPET_TIMEOUT_S}s each)"
python3 scripts/readme_snippets.py laptop > "$WORK/laptop.py"
python3 scripts/readme_snippets.py laptop --expected > "$WORK/laptop.expected"
python3 scripts/readme_snippets.py cluster > "$WORK/cluster.sh"
export PATH="$VENV/bin:$PATH"
(cd "$WORK" && timeout --kill-after=10 "$SNIPPET_TIMEOUT_S" python laptop.py > laptop.out 2> laptop.err) \
    || { tail -20 "$WORK/laptop.err"; echo "the laptop snippet failed"; exit 1; }
# Ray forwards its processes' log lines to the driver's stdout as "(name pid=...) ...", in
# colour; what is left must be what the snippet's comments say it prints.
grep -avE $'^(\x1b\\[[0-9;]*m)?\\([A-Za-z_][^ )]*( pid=[0-9]+[^)]*)?\\)' "$WORK/laptop.out" | diff -u "$WORK/laptop.expected" - \
    || { echo "the laptop snippet printed other than its comments say"; exit 1; }

# "An existing cluster": a head node started the way users start one, on loopback.
mkdir -p "$WORK/ray-tmp"
RAY_STARTED=1
ray start --head --num-cpus 2 --include-dashboard=false --disable-usage-stats \
    --temp-dir "$WORK/ray-tmp" > "$WORK/ray-start.log" 2>&1 || { cat "$WORK/ray-start.log"; exit 1; }
(cd "$WORK" && timeout --kill-after=10 "$SNIPPET_TIMEOUT_S" bash -euo pipefail cluster.sh > cluster.out 2> cluster.err) \
    || { tail -20 "$WORK/cluster.err"; echo "the cluster snippet failed"; exit 1; }
python3 - "$WORK" <<'EOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
manifest = json.loads((work / "predictions" / "manifest.json").read_text())
assert manifest["rows"] == 10000, manifest
lines = (work / "cluster.out").read_text().strip().splitlines()
outputs = json.loads(lines[-1])["outputs"]
assert len(outputs) == 1 and len(outputs[0]) == 10, lines[-1][:200]
print(f"   cluster snippet: {lines[0]}; serve answered {len(outputs)}x{len(outputs[0])}")
EOF
serve shutdown -y --address auto > /dev/null 2>&1 || true
echo "== ray: ok"
