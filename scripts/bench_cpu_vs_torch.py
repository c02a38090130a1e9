#!/usr/bin/env python3
"""vecprop's CPU dense layer against PyTorch's, side by side in one run.

For each shape MxKxN this times, alternately and on the same machine:
  * PyTorch: torch.sigmoid(torch.nn.functional.linear(x, w, b)), f32, 2 threads
    (torch.set_num_threads), median of repeats after warm-up, inputs rotated;
  * vecprop: `vecprop bench --device cpu --shapes MxKxN --json ...` (same method).
Rounds alternate (torch, vecprop, torch, vecprop, ...) so that clock drift or a noisy
neighbour hits both. The table reports the best-of-rounds median for each, GFLOP/s, the
ratio, and the share of the measured f32 FMA peak (`vecprop bench --peak`).

Usage: python3 scripts/bench_cpu_vs_torch.py [--vecprop target/release/vecprop] [--rounds 3]
Needs: pip install torch numpy (PyPI's CUDA wheel runs on the CPU).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = [(64, 784, 512), (4096, 784, 512), (16384, 1024, 1024), (65536, 64, 64)]


def torch_median_ms(torch, m, k, n, repeats):
    gen = torch.Generator().manual_seed(0)
    sets = max(1, min(4, (64 << 20) // (m * k * 4)))
    xs = [torch.rand(m, k, generator=gen) * 2 - 1 for _ in range(sets)]
    w = torch.rand(n, k, generator=gen) * 2 - 1  # nn.Linear layout
    b = torch.rand(n, generator=gen) * 2 - 1
    f = torch.nn.functional
    with torch.inference_mode():
        for i in range(2):
            torch.sigmoid(f.linear(xs[i % sets], w, b))
        times = []
        for i in range(repeats):
            start = time.perf_counter()
            torch.sigmoid(f.linear(xs[i % sets], w, b))
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def vecprop_median_ms(binary, m, k, n, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.json")
        subprocess.run(
            [binary, "bench", "--device", "cpu", "--shapes", f"{m}x{k}x{n}",
             "--repeats", str(repeats), "--json", path],
            check=True, stdout=subprocess.DEVNULL,
        )
        with open(path) as fh:
            return json.load(fh)["results"][0]["median_ms"]


def peak_gflops(binary):
    out = subprocess.run([binary, "bench", "--peak"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "GFLOP/s" in line:
            return float(line.split()[-2])
    raise RuntimeError(f"no peak in: {out}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vecprop", default="target/release/vecprop")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(2)
    peak = peak_gflops(args.vecprop)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"measured f32 FMA peak {peak:.1f} GFLOP/s", file=sys.stderr)

    rows = []
    for (m, k, n) in SHAPES:
        flops = 2.0 * m * k * n
        repeats = 5 if flops > 1e10 else 20
        t_torch, t_vp = [], []
        for _ in range(args.rounds):
            t_torch.append(torch_median_ms(torch, m, k, n, repeats))
            t_vp.append(vecprop_median_ms(args.vecprop, m, k, n, repeats))
        best_t, best_v = min(t_torch), min(t_vp)
        g = lambda ms: flops / (ms / 1e3) / 1e9
        rows.append((f"{m}x{k}x{n}", best_t, g(best_t), best_v, g(best_v), best_t / best_v, g(best_v) / peak))

    print("| shape MxKxN | PyTorch ms | PyTorch GFLOP/s | vecprop ms | vecprop GFLOP/s | vecprop speed-up | vecprop % of FMA peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.1f} | {r[3]:.3f} | {r[4]:.1f} | {r[5]:.2f}x | {100 * r[6]:.0f}% |")


if __name__ == "__main__":
    main()
