#!/usr/bin/env python3
"""vecprop against ONNX Runtime and PyTorch on the CPU, side by side in one run.

Two jobs, for the 784-512-256-10 network (sigmoid, relu, linear), f32:
  * the file job: a 200,000 x 784 f32 .npy in, the 200,000 x 10 outputs out as .npy.
      vecprop:  `vecprop infer --model m.safetensors --input x.npy --output y.npy --quiet`
                (wall clock of the process, start-up included);
      ORT:      np.load, InferenceSession.run (the same model exported with torch.onnx.export),
                np.save, in this process;
      PyTorch:  np.load, model(torch.from_numpy(x)) under inference_mode, np.save.
  * the in-memory network: 65,536 rows, compute alone.
      vecprop:  `vecprop bench --device cpu --network-throughput` (median of its repeats);
      ORT and PyTorch: median of --repeats calls after a warm-up, in this process.
Rounds alternate the three (vecprop, ORT, PyTorch, vecprop, ...) so that clock drift or a
noisy neighbour hits all; each cell is the best round's time, with the spread over rounds.
Every engine is given the same thread count (--threads, default: all cores); vecprop's
CPU backend uses rayon's default (all cores), so the default is the fair comparison.
The three outputs of the file job are checked to agree to 1e-4.

Usage: python3 scripts/bench_peers.py [--vecprop target/release/vecprop] [--rounds 3]
Needs: pip install -r scripts/requirements-models.txt (torch, onnx, onnxruntime, numpy).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
from safetensors.torch import save_file
from torch import nn

FILE_ROWS = 200_000
MEMORY_ROWS = 65_536


def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 512), nn.Sigmoid(), nn.Linear(512, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    return net.eval()


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def vecprop_file(binary, tmp):
    out = os.path.join(tmp, "y_vecprop.npy")
    return timed(lambda: subprocess.run(
        [binary, "infer", "--model", os.path.join(tmp, "m.safetensors"),
         "--input", os.path.join(tmp, "x.npy"), "--output", out, "--quiet"], check=True))


def ort_file(session, tmp):
    def job():
        x = np.load(os.path.join(tmp, "x.npy"))
        y = session.run(None, {"x": x})[0]
        np.save(os.path.join(tmp, "y_ort.npy"), y)
    return timed(job)


def torch_file(net, tmp):
    def job():
        x = np.load(os.path.join(tmp, "x.npy"))
        with torch.inference_mode():
            y = net(torch.from_numpy(x)).numpy()
        np.save(os.path.join(tmp, "y_torch.npy"), y)
    return timed(job)


def vecprop_memory(binary, tmp, repeats):
    path = os.path.join(tmp, "bench.json")
    subprocess.run([binary, "bench", "--device", "cpu", "--network-throughput",
                    "--repeats", str(repeats), "--json", path], check=True,
                   stdout=subprocess.DEVNULL)
    with open(path) as f:
        report = json.load(f)
    (row,) = [r for r in report["network_throughput"] if r["dtype"] == "f32"]
    assert row["rows"] == MEMORY_ROWS, row
    return row["median_ms"] / 1e3


def median_of(fn, repeats):
    fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def cell(times):
    return f"{min(times):.3f} s ({min(times):.2f}–{max(times):.2f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vecprop", default="target/release/vecprop")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads

    net = model()
    with tempfile.TemporaryDirectory() as tmp:
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, os.path.join(tmp, "m.safetensors"),
                  metadata={"activations": "sigmoid,relu,linear"})
        onnx_path = os.path.join(tmp, "m.onnx")
        torch.onnx.export(net, (torch.zeros(2, 784),), onnx_path, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}},
                          dynamo=False)
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        np.save(os.path.join(tmp, "x.npy"), rng.standard_normal((FILE_ROWS, 784), dtype=np.float32))
        x_mem = rng.standard_normal((MEMORY_ROWS, 784), dtype=np.float32)
        x_torch = torch.from_numpy(x_mem)

        def torch_memory():
            with torch.inference_mode():
                net(x_torch)

        file_times = {"vecprop": [], "ONNX Runtime": [], "PyTorch": []}
        memory_times = {"vecprop": [], "ONNX Runtime": [], "PyTorch": []}
        vecprop_file(args.vecprop, tmp)  # warm the page cache and the binary
        for _ in range(args.rounds):
            file_times["vecprop"].append(vecprop_file(args.vecprop, tmp))
            file_times["ONNX Runtime"].append(ort_file(session, tmp))
            file_times["PyTorch"].append(torch_file(net, tmp))
            memory_times["vecprop"].append(vecprop_memory(args.vecprop, tmp, args.repeats))
            memory_times["ONNX Runtime"].append(
                median_of(lambda: session.run(None, {"x": x_mem}), args.repeats))
            memory_times["PyTorch"].append(median_of(torch_memory, args.repeats))

        outputs = [np.load(os.path.join(tmp, f"y_{n}.npy")) for n in ["vecprop", "ort", "torch"]]
        for other in outputs[1:]:
            err = np.max(np.abs(outputs[0] - other) / np.maximum(np.abs(other), 1.0))
            assert err <= 1e-4, f"outputs disagree: {err}"

    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    print(f"threads: {args.threads}; torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"{args.rounds} rounds, best (range)")
    print()
    print(f"| engine | file job ({FILE_ROWS:,}x784 .npy → .npy) | in memory ({MEMORY_ROWS:,} rows) |")
    print("|---|---|---|")
    for name in file_times:
        print(f"| {name} | {cell(file_times[name])} | {cell(memory_times[name])} |")
    base_file = min(file_times["vecprop"])
    base_mem = min(memory_times["vecprop"])
    print()
    for name in ["ONNX Runtime", "PyTorch"]:
        print(f"vecprop / {name}: file job {base_file / min(file_times[name]):.2f}x the time, "
              f"in memory {base_mem / min(memory_times[name]):.2f}x the time")


if __name__ == "__main__":
    main()
