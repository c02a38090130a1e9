#!/usr/bin/env python3
"""Small-batch latency on the CPU: vecprop against ONNX Runtime and PyTorch, side by side.

Cases (f32):
  * the 784-512-256-10 network (sigmoid, relu, linear) at batch 1, 8 and 64;
  * one 64 -> 64 dense+sigmoid layer on 65,536 rows (a narrow layer at a large batch).
Engines, all in this process, on the same weights:
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

import numpy as np
import onnxruntime as ort
import torch
import vecprop
from torch import nn

BATCHES = (1, 8, 64)
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


def vecprop_model(net, activations):
    layers = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
              for m in net if isinstance(m, nn.Linear)]
    return vecprop.from_arrays(layers, activations)


def ort_sessions(net, width, tmp, name):
    path = os.path.join(tmp, f"{name}.onnx")
    torch.onnx.export(net, (torch.zeros(2, width),), path, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}},
                      dynamo=False)
    sessions = {}
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sessions[threads] = ort.InferenceSession(path, options,
                                                 providers=["CPUExecutionProvider"])
    return sessions


def median_us(fn, calls):
    # Let the previous engine's thread pools (ORT's and OpenMP's spin after each call) go
    # idle first, so that no engine is timed against another's spinning threads.
    time.sleep(0.1)
    for _ in range(max(3, calls // 10)):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


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
            out = {r["batch"]: r["median_us"] for r in json.load(f)["latency"]}
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
    args = parser.parse_args()

    net, acts = network()
    narrow, narrow_acts = narrow_layer()
    tiny, tiny_acts = tiny_layer()
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((b, 784), dtype=np.float32) for b in BATCHES}
    inputs["narrow"] = rng.standard_normal((NARROW_ROWS, 64), dtype=np.float32)
    cases = list(BATCHES) + ["narrow"]
    calls = {1: args.calls, 8: args.calls // 2, 64: args.calls // 8, "narrow": 10}

    with tempfile.TemporaryDirectory() as tmp:
        models = {"vecprop": vecprop_model(net, acts)}
        narrow_vp = vecprop_model(narrow, narrow_acts)
        tiny_vp = vecprop_model(tiny, tiny_acts)
        sessions, narrow_sessions = ort_sessions(net, 784, tmp, "net"), \
            ort_sessions(narrow, 64, tmp, "narrow")

    def model_for(case):
        return (narrow, narrow_vp, narrow_sessions) if case == "narrow" else \
            (net, models["vecprop"], sessions)

    # The three agree before anything is timed.
    for case in cases:
        torch_net, vp, ort_s = model_for(case)
        x = inputs[case]
        with torch.inference_mode():
            want = torch_net(torch.from_numpy(x)).numpy()
        for got in (vp(x), ort_s[1].run(None, {"x": x})[0]):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    def vecprop_cell(case):
        _, vp, _ = model_for(case)
        x = inputs[case]
        return median_us(lambda: vp(x), calls[case])

    def ort_cell(case):
        _, _, ort_s = model_for(case)
        x = inputs[case]
        return min(median_us(lambda: ort_s[t].run(None, {"x": x}), calls[case]) for t in (1, 2))

    def torch_cell(case):
        torch_net, _, _ = model_for(case)
        x = inputs[case]
        best = float("inf")
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                best = min(best, median_us(lambda: torch_net(torch.from_numpy(x)), calls[case]))
        return best

    engines = {"vecprop (Python)": vecprop_cell, "ONNX Runtime": ort_cell, "PyTorch": torch_cell}
    best = {name: {c: float("inf") for c in cases} for name in list(engines) + ["vecprop (Rust)"]}
    call_cost = float("inf")
    x_tiny = np.zeros((1, 1), np.float32)
    peak = fma_peak_gflops(args.vecprop)
    order = list(engines)
    for round_ in range(args.rounds):
        for name in order[round_ % len(order):] + order[:round_ % len(order)]:
            for case in cases:
                best[name][case] = min(best[name][case], engines[name](case))
        for case, us in rust_round(args.vecprop).items():
            best["vecprop (Rust)"][case] = min(best["vecprop (Rust)"][case], us)
        call_cost = min(call_cost, median_us(lambda: tiny_vp(x_tiny), args.calls))
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    peak = max(peak, fma_peak_gflops(args.vecprop))

    flops = {b: 2.0 * b * (784 * 512 + 512 * 256 + 256 * 10) for b in BATCHES}
    flops["narrow"] = 2.0 * NARROW_ROWS * 64 * 64
    weight_bytes = 4 * (784 * 512 + 512 * 256 + 256 * 10 + 512 + 256 + 10)
    label = {1: "batch 1", 8: "batch 8", 64: "batch 64", "narrow": "65536x64x64 dense+sigmoid"}
    names = ["vecprop (Python)", "vecprop (Rust)", "ONNX Runtime", "PyTorch"]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"FMA peak measured in the same run: {peak:.1f} GFLOP/s (`vecprop bench --peak`). "
        f"{args.rounds} alternating rounds; each cell the best round's median. vecprop: "
        f"{vecprop.__name__} on all cores; ORT {ort.__version__} and PyTorch "
        f"{torch.__version__}: best of 1 and 2 intra-op threads.",
        "",
        "| case | " + " | ".join(names) + " | vecprop (Python) vs faster peer | vecprop "
        "(Python) % of FMA peak |",
        "|" + "---|" * (len(names) + 3),
    ]
    for case in cases:
        cells = [f"{best[n][case]:.1f} us" if best[n][case] < 1e4
                 else f"{best[n][case] / 1e3:.2f} ms" for n in names]
        peer = min(best["ONNX Runtime"][case], best["PyTorch"][case])
        ours = best["vecprop (Python)"][case]
        pct = flops[case] / (ours * 1e-6) / 1e9 / peak * 100
        extra = f"{pct:.0f}%"
        if case == 1:
            extra += f" (weights read at {weight_bytes / (ours * 1e-6) / 1e9:.0f} GB/s)"
        lines.append(f"| {label[case]} | " + " | ".join(cells) +
                     f" | {peer / ours:.2f}x | {extra} |")
    lines += ["", f"Python call path, a 1 -> 1 model at batch 1: {call_cost:.1f} us per call "
              f"(argument checks, GIL release, output allocation); on the real model at batch 1 "
              f"Python adds {best['vecprop (Python)'][1] - best['vecprop (Rust)'][1]:.1f} us "
              f"to the Rust API's time."]
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(args.write) as f:
            text = f.read()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            text = head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + table + "\n" + END + "\n"
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
