#!/usr/bin/env python3
"""The Python module's overhead and throughput against the Rust library, side by side.

For each case it times, in alternating rounds in one run on one machine:
  * rust:    Plan::forward on the model file (python/examples/forward_timing.rs, release);
  * python:  vecprop.load(file)(x), x a C-contiguous float32 array;
  * pytorch: model(torch.from_numpy(x)) under torch.inference_mode(), the same weights as
             torch.nn.Sequential, if torch is importable.
Cases: batch 1 on the worked example (2-3 sigmoid: nearly pure call overhead) and on a
784-512-256-10 MLP, and 65,536 rows on that MLP (throughput). Each round runs CALLS calls
and reports seconds per call; the table shows each side's median over rounds, the Python
overhead (python - rust) at batch 1 and the throughput ratio at 65,536 rows.

Usage: python3 scripts/bench_python.py [--rounds 5] [--device cpu] [--json out.json] [--only 65,536]
Needs: vecprop installed (pip install ./python), numpy; torch optional.
Builds the Rust side with: cargo build --release -p vecprop-python --example forward_timing
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import vecprop

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RUST_BIN = os.path.join(ROOT, "target", "release", "examples", "forward_timing")

WORKED = ([(np.array([[1, -3, 5], [-2, 4, -6]], np.float32), np.array([-1, 1, 2], np.float32))], ["sigmoid"])


def mlp():
    rng = np.random.default_rng(0)
    widths = [784, 512, 256, 10]
    layers = [
        (rng.uniform(-1, 1, (i, o)).astype(np.float32) / np.sqrt(i), np.zeros(o, np.float32))
        for i, o in zip(widths[:-1], widths[1:])
    ]
    return layers, ["sigmoid", "relu", "softmax"]


CASES = [  # name, network, rows, calls per round
    ("worked example, batch 1", WORKED, 1, 20000),
    ("784-512-256-10, batch 1", mlp(), 1, 2000),
    ("784-512-256-10, 65,536 rows", mlp(), 65536, 3),
]


def time_python(model, x, calls):
    model(x)
    began = time.perf_counter()
    for _ in range(calls):
        model(x)
    return (time.perf_counter() - began) / calls


def time_rust(path, rows, calls, device):
    out = subprocess.run(
        [RUST_BIN, path, str(rows), str(calls), "1", device], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)["median_s"]


def torch_model(torch, layers, activations):
    modules = []
    for (w, b), name in zip(layers, activations):
        linear = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.copy_(torch.from_numpy(b))
        modules.append(linear)
        modules.append(
            {"sigmoid": torch.nn.Sigmoid(), "relu": torch.nn.ReLU(), "softmax": torch.nn.Softmax(dim=1)}[name]
        )
    return torch.nn.Sequential(*modules).eval()


def time_torch(torch, model, x, calls):
    with torch.inference_mode():
        model(torch.from_numpy(x))
        began = time.perf_counter()
        for _ in range(calls):
            model(torch.from_numpy(x))
        return (time.perf_counter() - began) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write every round's figures here")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = parser.parse_args()
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "vecprop-python", "--example", "forward_timing"],
        cwd=ROOT,
        check=True,
    )
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not importable: the pytorch column is left out", file=sys.stderr)

    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name, (layers, activations), rows, calls in CASES:
            if args.only not in name:
                continue
            path = os.path.join(folder, "model.safetensors")
            vecprop.from_arrays(layers, activations).save(path)
            model = vecprop.load(path, device=args.device)
            x = np.random.default_rng(1).uniform(-1, 1, (rows, model.input_width)).astype(np.float32)
            reference = torch_model(torch, layers, activations) if torch and args.device == "cpu" else None
            if reference is not None:
                with torch.inference_mode():
                    want = reference(torch.from_numpy(x)).numpy()
                np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-5)
            rounds = {"rust": [], "python": [], "pytorch": []}
            for _ in range(args.rounds):  # alternate, so that drift and neighbours hit every side
                rounds["rust"].append(time_rust(path, rows, calls, args.device))
                rounds["python"].append(time_python(model, x, calls))
                if reference is not None:
                    rounds["pytorch"].append(time_torch(torch, reference, x, calls))
            med = {k: statistics.median(v) for k, v in rounds.items() if v}
            results.append({"case": name, "rows": rows, "calls_per_round": calls, "median_s": med, "rounds_s": rounds})

    print(f"# {platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}, vecprop {vecprop.__version__}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ""))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, device {args.device}, "
          f"median of {args.rounds} alternating rounds\n")
    print("| case | rust forward | python call | python - rust | rust / python throughput | pytorch |")
    print("|---|---|---|---|---|---|")
    for r in results:
        m, lo = r["median_s"], {k: min(v) for k, v in r["rounds_s"].items() if v}
        if r["rows"] > 1:
            cell = lambda k: f"{m[k] * 1e3:.0f} ms ({r['rows'] / m[k] / 1e3:.1f} k rows/s; best {lo[k] * 1e3:.0f})"
            diff, ratio = "", f"{m['rust'] / m['python']:.3f}"
        else:
            cell = lambda k: f"{m[k] * 1e6:.2f} µs (best {lo[k] * 1e6:.2f})"
            diff, ratio = f"{(m['python'] - m['rust']) * 1e6:+.2f} µs", ""
        torch_cell = cell("pytorch") if "pytorch" in m else "n/a"
        print(f"| {r['case']} | {cell('rust')} | {cell('python')} | {diff} | {ratio} | {torch_cell} |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
