#!/usr/bin/env python3
"""Small-batch latency on the CPU: vecprop against ONNX Runtime and PyTorch, side by side.

Cases (f32):
  * the 784-512-256-10 network (sigmoid, relu, linear) at batch 1, 8 and 64;
  * one 64 -> 64 dense+sigmoid layer on 65,536 rows (a narrow layer at a large batch).
Engines, each in its own worker process (so that no engine's idle thread pool spins against
another's timing; the driver sends a case, the worker returns its median), on the same
weights:
  * vecprop from Python: model(x), x a C-contiguous float32 array (vecprop.from_arrays);
  * ONNX Runtime: InferenceSession.run (the model exported with torch.onnx.export), and
  * PyTorch: model(torch.from_numpy(x)) under torch.inference_mode(),
each of ORT and PyTorch with 1 and with 2 intra-op threads (the better is reported);
vecprop uses all cores (its default, rayon's pool size). Rounds alternate the engines
(rotating the order each round), every cell is the best round's median over --calls calls.
vecprop through the Rust API is `vecprop bench --device cpu --latency` (host to host,
Plan::forward_into into a preallocated output, median of 1000) and `--shapes 65536x64x64`
run once per round between the Python engines.

The Python call path is measured apart: a 1 -> 1 model at batch 1 gives the fixed cost of
a call (argument checks, GIL release and re-acquire, output allocation); the difference
between Python and Rust at batch 1 is the same cost measured on the real model.

The FMA peak is `vecprop bench --peak` (all cores, the widest SIMD level), measured in the
same run; batch 1 is also given as the weight bytes read per second (the floor there is
reading 2.1 MB of weights once).

Usage: python3 scripts/bench_latency.py [--vecprop target/release/vecprop] [--rounds 5]
       [--write BENCHMARKS.md]   # replace the small-batch section between its markers
Needs: numpy, torch, onnx, onnxruntime and the vecprop module (pip install ./python).
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import sys

import numpy as np
from bench_report import replace_section
import onnxruntime as ort
import torch
from torch import nn

BATCHES = (1, 8, 64)
CASES = [str(b) for b in BATCHES] + ["narrow"]
NARROW_ROWS = 65_536
BEGIN = "<!-- small-batch:begin (scripts/bench_latency.py --write) -->"
END = "<!-- small-batch:end -->"


def network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 512), nn.Sigmoid(), nn.Linear(512, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    return net.eval(), ["sigmoid", "relu", "linear"]


def narrow_layer():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(64, 64), nn.Sigmoid()).eval(), ["sigmoid"]


def tiny_layer():
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(1, 1)).eval(), ["linear"]


MODELS = {"net": network, "narrow": narrow_layer, "tiny": tiny_layer}
WIDTHS = {"net": 784, "narrow": 64, "tiny": 1}


def model_of(case):
    return "narrow" if case == "narrow" else "tiny" if case == "tiny" else "net"


def rows_of(case):
    return NARROW_ROWS if case == "narrow" else 1 if case == "tiny" else int(case)


def median_us(fn, calls):
    for _ in range(max(3, calls // 10)):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def prepare(tmp):
    """Weights (.npz, in vecprop's (inputs, units) layout), ONNX files and inputs."""
    rng = np.random.default_rng(0)
    for name, make in MODELS.items():
        net, acts = make()
        linear = [m for m in net if isinstance(m, nn.Linear)]
        arrays = {}
        for i, m in enumerate(linear):
            arrays[f"w{i}"] = m.weight.detach().numpy().T.copy()
            arrays[f"b{i}"] = m.bias.detach().numpy().copy()
        np.savez(os.path.join(tmp, f"{name}.npz"), activations=np.array(acts), **arrays)
        torch.onnx.export(net, (torch.zeros(2, WIDTHS[name]),), os.path.join(tmp, f"{name}.onnx"),
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}}, dynamo=False)
    for case in CASES + ["tiny"]:
        x = rng.standard_normal((rows_of(case), WIDTHS[model_of(case)]), dtype=np.float32)
        np.save(os.path.join(tmp, f"x_{case}.npy"), x)


def load_weights(tmp, name):
    data = np.load(os.path.join(tmp, f"{name}.npz"))
    count = (len(data.files) - 1) // 2
    return [(data[f"w{i}"], data[f"b{i}"]) for i in range(count)], list(data["activations"])


def worker(engine, tmp):
    """Serves `case calls` lines on stdin with `median_us` lines (best over thread counts)."""
    runners = {}
    if engine == "vecprop":
        import vecprop
        for name in MODELS:
            layers, acts = load_weights(tmp, name)
            model = vecprop.from_arrays(layers, acts)
            runners[name] = [lambda x, model=model: model(x)]
    elif engine == "ort":
        import onnxruntime as ort
        for name in MODELS:
            runners[name] = []
            for threads in (1, 2):
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                session = ort.InferenceSession(os.path.join(tmp, f"{name}.onnx"), options,
                                               providers=["CPUExecutionProvider"])
                runners[name].append(lambda x, s=session: s.run(None, {"x": x})[0])
    else:
        for name in MODELS:
            layers, acts = load_weights(tmp, name)
            modules = []
            for (w, b), act in zip(layers, acts):
                linear = nn.Linear(w.shape[0], w.shape[1])
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(w.T.copy()))
                    linear.bias.copy_(torch.from_numpy(b))
                modules.append(linear)
                modules += {"sigmoid": [nn.Sigmoid()], "relu": [nn.ReLU()]}.get(act, [])
            net = nn.Sequential(*modules).eval()

            def run(x, net=net, threads=1):
                torch.set_num_threads(threads)
                with torch.inference_mode():
                    return net(torch.from_numpy(x)).numpy()
            runners[name] = [lambda x, run=run: run(x, threads=1),
                             lambda x, run=run: run(x, threads=2)]
    inputs = {c: np.load(os.path.join(tmp, f"x_{c}.npy")) for c in CASES + ["tiny"]}
    for c in CASES:
        np.save(os.path.join(tmp, f"y_{engine}_{c}.npy"), runners[model_of(c)][0](inputs[c]))
    print("ready", flush=True)
    for line in sys.stdin:
        case, calls = line.split()
        x = inputs[case]
        best = min(median_us(lambda: run(x), int(calls)) for run in runners[model_of(case)])
        print(best, flush=True)


class Worker:
    def __init__(self, engine, tmp):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", engine, "--tmp", tmp],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready", engine

    def median_us(self, case, calls):
        self.process.stdin.write(f"{case} {calls}\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def rust_round(binary):
    """Batch 1/8/64 latency and the narrow layer through the Rust API, in microseconds."""
    with tempfile.TemporaryDirectory() as tmp:
        lat, shape = os.path.join(tmp, "lat.json"), os.path.join(tmp, "shape.json")
        subprocess.run([binary, "bench", "--device", "cpu", "--latency", "--json", lat],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([binary, "bench", "--device", "cpu", "--shapes",
                        f"{NARROW_ROWS}x64x64", "--repeats", "10", "--json", shape],
                       check=True, stdout=subprocess.DEVNULL)
        with open(lat) as f:
            out = {str(r["batch"]): r["median_us"] for r in json.load(f)["latency"]}
        with open(shape) as f:
            (row,) = json.load(f)["results"]
        out["narrow"] = row["median_ms"] * 1e3
    return out


def fma_peak_gflops(binary):
    text = subprocess.run([binary, "bench", "--device", "cpu", "--peak"], check=True,
                          capture_output=True, text=True).stdout
    return float(text.split(":")[1].split()[0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vecprop", default="target/release/vecprop")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400, help="calls per cell at batch 1")
    parser.add_argument("--write", metavar="BENCHMARKS.md")
    parser.add_argument("--worker", choices=["vecprop", "ort", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.tmp)

    calls = {"1": args.calls, "8": args.calls // 2, "64": args.calls // 8, "narrow": 10,
             "tiny": args.calls}
    with tempfile.TemporaryDirectory() as tmp:
        prepare(tmp)
        workers = {"vecprop (Python)": Worker("vecprop", tmp), "ONNX Runtime": Worker("ort", tmp),
                   "PyTorch": Worker("torch", tmp)}
        # The three agree before anything is timed.
        for case in CASES:
            want = np.load(os.path.join(tmp, f"y_torch_{case}.npy"))
            for engine in ("vecprop", "ort"):
                got = np.load(os.path.join(tmp, f"y_{engine}_{case}.npy"))
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        best = {name: {c: float("inf") for c in CASES}
                for name in list(workers) + ["vecprop (Rust)"]}
        call_cost = float("inf")
        peak = fma_peak_gflops(args.vecprop)
        order = list(workers)
        for round_ in range(args.rounds):
            for name in order[round_ % len(order):] + order[:round_ % len(order)]:
                for case in CASES:
                    best[name][case] = min(best[name][case],
                                           workers[name].median_us(case, calls[case]))
            for case, us in rust_round(args.vecprop).items():
                best["vecprop (Rust)"][case] = min(best["vecprop (Rust)"][case], us)
            call_cost = min(call_cost, workers["vecprop (Python)"].median_us("tiny", args.calls))
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)
        peak = max(peak, fma_peak_gflops(args.vecprop))
        for w in workers.values():
            w.close()

    flops = {str(b): 2.0 * b * (784 * 512 + 512 * 256 + 256 * 10) for b in BATCHES}
    flops["narrow"] = 2.0 * NARROW_ROWS * 64 * 64
    weight_bytes = 4 * (784 * 512 + 512 * 256 + 256 * 10 + 512 + 256 + 10)
    label = {"1": "batch 1", "8": "batch 8", "64": "batch 64",
             "narrow": "65536x64x64 dense+sigmoid"}
    names = ["vecprop (Python)", "vecprop (Rust)", "ONNX Runtime", "PyTorch"]
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; FMA peak measured in the "
        f"same run: {peak:.1f} GFLOP/s (`vecprop bench --peak`, AVX-512 where the CPU has it). "
        f"{args.rounds} alternating rounds, each engine in its own process; each cell the "
        f"best round's median. vecprop on all cores (its default); ORT {ort.__version__} and "
        f"PyTorch {torch.__version__}: the better of 1 and 2 intra-op threads.",
        "",
        "| case | " + " | ".join(names) + " | vecprop (Python) vs faster peer | vecprop "
        "(Python) % of FMA peak |",
        "|" + "---|" * (len(names) + 3),
    ]
    for case in CASES:
        cells = [f"{best[n][case]:.1f} us" if best[n][case] < 1e4
                 else f"{best[n][case] / 1e3:.2f} ms" for n in names]
        peer = min(best["ONNX Runtime"][case], best["PyTorch"][case])
        ours = best["vecprop (Python)"][case]
        extra = f"{flops[case] / (ours * 1e-6) / 1e9 / peak * 100:.0f}%"
        if case == "1":
            extra += f" (weights read at {weight_bytes / (ours * 1e-6) / 1e9:.0f} GB/s)"
        lines.append(f"| {label[case]} | " + " | ".join(cells) +
                     f" | {peer / ours:.2f}x | {extra} |")
    lines += ["", f"Python call path, a 1 -> 1 model at batch 1: {call_cost:.1f} us per call "
              f"(argument checks, GIL release, output allocation); on the real model at batch 1 "
              f"Python adds {best['vecprop (Python)']['1'] - best['vecprop (Rust)']['1']:.1f} us "
              f"to the Rust API's time."]
    table = "\n".join(lines)
    print(table)
    if args.write:
        replace_section(args.write, BEGIN, END, table)


if __name__ == "__main__":
    sys.exit(main())
