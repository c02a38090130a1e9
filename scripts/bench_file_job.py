#!/usr/bin/env python3
"""The whole file job against `np.load` of the same file, side by side in one run.

Issue 10's CPU target: `vecprop infer --device cpu` with a 784->1 model on a 200,000x784 f32
.npy takes at most 1.25x the time `np.load` takes to read the same file.

This makes the input (f32, and optionally its f16 copy) and a 784->1 sigmoid model in
`--dir`, reads the input once so that it sits in the page cache, checks vecprop's output
against numpy's float64 answer, and then alternates, `--rounds` times:
  * np.load(x), timed in this process around the call (interpreter start-up excluded);
  * the whole `vecprop infer` process, timed from spawn to exit (its start-up included).
Alternating means a noisy neighbour hits both. It reports the best and the median of each
and their ratios, vecprop / np.load.

`--baseline OTHER_BINARY` times a second vecprop build (e.g. an older commit) in the same
alternation, for a before/after figure from one run.

Usage: python3 scripts/bench_file_job.py [--vecprop target/release/vecprop] [--rows 200000]
         [--cols 784] [--rounds 9] [--dir target/bench-file-job] [--f16] [--json out.json]
         [--baseline OLD_BINARY]
Needs: numpy.
"""
import argparse
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import time

import numpy as np


def write_model(path, cols, seed=1):
    """A 784->1 sigmoid layer in safetensors, torch.nn.Linear layout."""
    rng = np.random.default_rng(seed)
    weight = ((rng.random((1, cols)) * 2 - 1) / np.sqrt(cols)).astype(np.float32)
    bias = np.array([0.25], dtype=np.float32)
    w_bytes, b_bytes = weight.tobytes(), bias.tobytes()
    header = {
        "__metadata__": {"activations": "sigmoid"},
        "0.weight": {"dtype": "F32", "shape": [1, cols], "data_offsets": [0, len(w_bytes)]},
        "0.bias": {"dtype": "F32", "shape": [1],
                   "data_offsets": [len(w_bytes), len(w_bytes) + len(b_bytes)]},
    }
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + w_bytes + b_bytes)
    return weight.astype(np.float64), bias.astype(np.float64)


def make_input(path, rows, cols, dtype, seed=2):
    if os.path.exists(path):
        return
    rng = np.random.default_rng(seed)
    x = np.empty((rows, cols), dtype=dtype)
    step = 8192
    for start in range(0, rows, step):
        end = min(rows, start + step)
        x[start:end] = (rng.random((end - start, cols), dtype=np.float32) * 2 - 1).astype(dtype)
    np.save(path, x)


def time_np_load(path):
    start = time.perf_counter()
    x = np.load(path)
    elapsed = time.perf_counter() - start
    del x
    return elapsed


def time_vecprop(binary, model, x_path, y_path):
    cmd = [binary, "infer", "--device", "cpu", "--model", model, "--input", x_path,
           "--output", y_path, "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def check_output(x_path, y_path, weight, bias):
    x = np.load(x_path, mmap_mode="r")
    y = np.load(y_path)
    want = np.empty((x.shape[0], 1))
    for start in range(0, x.shape[0], 8192):
        z = x[start:start + 8192].astype(np.float64) @ weight.T + bias
        want[start:start + 8192] = 1 / (1 + np.exp(-z))
    error = np.max(np.abs(y - want)) / np.max(np.abs(want))
    if y.shape != want.shape or not error <= 1e-5:
        sys.exit(f"vecprop's output is wrong: shape {y.shape}, relative error {error}")
    return float(error)


def summary(name, times):
    return {"name": name, "best_s": min(times), "median_s": statistics.median(times),
            "times_s": times}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vecprop", default="target/release/vecprop")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=784)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--dir", default="target/bench-file-job")
    parser.add_argument("--f16", action="store_true", help="also time an f16 copy of the input")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--baseline", help="another vecprop binary to time alongside")
    args = parser.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    model = os.path.join(args.dir, "784-1.safetensors")
    weight, bias = write_model(model, args.cols)
    inputs = [("f32", np.float32)] + ([("f16", np.float16)] if args.f16 else [])
    results = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "rows": args.rows, "cols": args.cols, "rounds": args.rounds, "inputs": []}
    for label, dtype in inputs:
        x_path = os.path.join(args.dir, f"x-{args.rows}x{args.cols}-{label}.npy")
        y_path = os.path.join(args.dir, f"y-{label}.npy")
        make_input(x_path, args.rows, args.cols, dtype)
        time_np_load(x_path)  # into the page cache
        time_vecprop(args.vecprop, model, x_path, y_path)
        error = check_output(x_path, y_path, weight, bias)
        # An older build may not read f16 input: the baseline runs on f32 only.
        baseline = args.baseline if label == "f32" else None
        loads, infers, baselines = [], [], []
        for _ in range(args.rounds):
            loads.append(time_np_load(x_path))
            infers.append(time_vecprop(args.vecprop, model, x_path, y_path))
            if baseline:
                baselines.append(time_vecprop(baseline, model, x_path, y_path))
        load, infer = summary("np.load", loads), summary("vecprop infer", infers)
        shown = [load, infer]
        size = os.path.getsize(x_path)
        entry = {"dtype": label, "bytes": size, "relative_error": error, "np_load": load,
                 "vecprop_infer": infer,
                 "ratio_best": infer["best_s"] / load["best_s"],
                 "ratio_median": infer["median_s"] / load["median_s"]}
        if baseline:
            entry["baseline"] = summary("baseline infer", baselines)
            entry["baseline_ratio_median"] = entry["baseline"]["median_s"] / load["median_s"]
            shown.append(entry["baseline"])
        results["inputs"].append(entry)
        print(f"{label}: {args.rows}x{args.cols} ({size / 1e6:.0f} MB), {args.rounds} rounds, "
              f"output error {error:.1e}")
        for s in shown:
            print(f"  {s['name']:<14} best {s['best_s']:.3f} s ({size / s['best_s'] / 1e9:.2f} GB/s)"
                  f"  median {s['median_s']:.3f} s")
        print(f"  vecprop / np.load: best {entry['ratio_best']:.2f}x, "
              f"median {entry['ratio_median']:.2f}x (target <= 1.25x)")
        if baseline:
            print(f"  baseline / np.load: median {entry['baseline_ratio_median']:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
