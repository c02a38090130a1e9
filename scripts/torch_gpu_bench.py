#!/usr/bin/env python3
"""PyTorch on the same GPU as vecprop, measured the way `vecprop bench` measures.

Writes vecprop's JSON schema (`{"device", "results": [{m, k, n, variant, dtype, median_ms,
gflops, gbytes_per_s}]}`) plus "latency", "ceilings" and "compile", for scripts/bench_report.py:
  a. per layer, sigmoid(A·W + b), M in {1, 64, 1024, 16384, 65536} x (K, N) in {64², 256²,
     784x512, 1024², 4096²}, f32 (TF32 off) and bf16: `torch-eager` (addmm + sigmoid) and
     `torch-compile` (mode max-autotune-no-cudagraphs, budget permitting);
  b. the network 784-512-256-10 (sigmoid, relu, linear) at batch 65,536, f32 and bf16:
     `torch-eager-network`, `torch-compile-network` (m = batch, k = 784, n = 10);
  c. "latency": that network host to host at batch 1, 8, 64 in f32 (NumPy in, NumPy out,
     synchronised): `torch-eager`, `torch-eager-pinned` (static pinned buffers) and
     `torch-cudagraph` (copies and forward captured in one CUDA graph); median and p99;
  d. "ceilings": device-to-device copy bandwidth and an 8192³ bf16 matmul, TFLOP/s.
Method (as src/bench/cuda.rs): random non-zero data; each repeat runs once on each of several
buffer sets covering twice the L2 (at most 16) between two CUDA events; the median over
repeats after warm-up. Combinations needing more than 20 GB are skipped.
Time budget: --budget-s (340, or 200 with --quick). Compiled per-layer rows run last, largest
first, with max-autotune while more than 45% of the budget is left, then the default mode,
then not at all; the JSON is rewritten after each part, so a run cut short keeps its rows.

Usage: python3 scripts/torch_gpu_bench.py --json torch.json [--quick]
       python3 scripts/torch_gpu_bench.py --dry-run    (CPU, tiny shapes: checks the script)
Progress goes to stderr; a summary table to stdout.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import torch
except ImportError:
    sys.exit("error: this script needs PyTorch (pip install torch numpy)")

LAYER_MS = [1, 64, 1024, 16384, 65536]
LAYER_KN = [(64, 64), (256, 256), (784, 512), (1024, 1024), (4096, 4096)]
NETWORK = [784, 512, 256, 10]
NETWORK_ACTIVATIONS = ["sigmoid", "relu", "linear"]
NETWORK_BATCH = 65536
LATENCY_BATCHES = [1, 8, 64]
COMPILE_MODE = "max-autotune-no-cudagraphs"
MAX_BYTES = 20e9
MAX_SETS = 16

START = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - START:6.1f}s] {message}", file=sys.stderr, flush=True)


class Settings:
    """What to run and how long, from the command line."""

    def __init__(self, args):
        self.dry_run = args.dry_run
        self.quick = args.quick or args.dry_run
        self.warmup = 2 if self.quick else 3
        self.repeats = 10 if self.quick else 30
        self.latency_iters = 1000 if self.quick else 2000
        self.budget_s = args.budget_s or (200.0 if args.quick else 340.0)
        self.compile_mode = args.compile_mode
        self.compile = not args.no_compile
        if self.dry_run:
            self.layer_ms = [1, 8, 96]
            self.layer_kn = [(16, 16), (48, 40)]
            self.network_batch = 256
            self.copy_bytes = 8 << 20
            self.gemm_n = 256
            self.max_bytes = 64 << 20
        else:
            self.layer_ms = LAYER_MS
            self.layer_kn = LAYER_KN
            self.network_batch = NETWORK_BATCH
            self.copy_bytes = 1 << 30
            self.gemm_n = 8192
            self.max_bytes = MAX_BYTES

    def remaining_s(self):
        return self.budget_s - (time.monotonic() - START)


class Gpu:
    """The device, its clock and its random data; the CPU stands in under --dry-run."""

    def __init__(self, torch, settings):
        self.torch = torch
        self.cuda = not settings.dry_run
        if self.cuda and not torch.cuda.is_available():
            sys.exit("error: no CUDA device visible to torch (use --dry-run to check the script on the CPU)")
        self.device = torch.device("cuda" if self.cuda else "cpu")
        if self.cuda:
            props = torch.cuda.get_device_properties(0)
            self.l2_bytes = getattr(props, "L2_cache_size", 0) or (50 << 20)
        else:
            self.l2_bytes = 1 << 20
        self.generator = torch.Generator(device=self.device).manual_seed(0)

    def describe(self):
        torch = self.torch
        if not self.cuda:
            return f"cpu (dry run) / torch {torch.__version__}"
        return f"{torch.cuda.get_device_name(0)} / driver {driver_version(torch)} / torch {torch.__version__}"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def random(self, shape, dtype, scale=1.0):
        """Uniform in ±[0.05, 1]·scale: random, and never zero."""
        torch = self.torch
        magnitude = torch.rand(shape, device=self.device, generator=self.generator) * (0.95 * scale) + 0.05 * scale
        negative = torch.rand(shape, device=self.device, generator=self.generator) < 0.5
        return torch.where(negative, -magnitude, magnitude).to(dtype)

    def median_ms(self, work, warmup, repeats):
        """The median time of `work(i)` over `repeats` runs after `warmup`, each between
        two CUDA events and synchronised (wall clock on the CPU)."""
        torch = self.torch
        for i in range(warmup):
            work(i)
        self.sync()
        times = []
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            for i in range(repeats):
                start.record()
                work(i)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for i in range(repeats):
                t0 = time.perf_counter()
                work(i)
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def free(self):
        if self.cuda:
            self.torch.cuda.empty_cache()


def driver_version(torch):
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip().splitlines()
        if out:
            return out[0].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        v = torch._C._cuda_getDriverVersion()  # the driver's CUDA API version, e.g. 13000
        return f"CUDA {v // 1000}.{v % 1000 // 10}"
    except Exception:  # noqa: BLE001 - a private API; the name is only decoration
        return "unknown"


def dtype_of(torch, name):
    return {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[name]


def dtype_bytes(name):
    return 4 if name == "f32" else 2


def row(m, k, n, variant, dtype, median_ms, flops, nbytes):
    seconds = median_ms / 1e3
    return {
        "m": m, "k": k, "n": n, "variant": variant, "dtype": dtype,
        "median_ms": median_ms,
        "gflops": flops / seconds / 1e9 if seconds > 0 else 0.0,
        "gbytes_per_s": nbytes / seconds / 1e9 if seconds > 0 else 0.0,
    }


def layer_bytes(m, k, n, dtype):
    """vecprop's Shape::min_bytes: A, W and bias read once, the output written once."""
    return (m * k + k * n + n + m * n) * dtype_bytes(dtype)


def set_count(nbytes, l2_bytes):
    """As vecprop: enough buffer sets to cover twice the L2 cache, at most 16."""
    return max(1, min(MAX_SETS, math.ceil(2 * l2_bytes / nbytes), int((2 << 30) // nbytes) or 1))


# The functions timed. Module-level, so that torch.compile sees the same code each time.

def layer(x, w, b):
    return torch.sigmoid(torch.addmm(b, x, w))


def network(x, params):
    h = x
    for (w, b), activation in zip(params, NETWORK_ACTIVATIONS):
        h = torch.addmm(b, h, w)
        if activation == "sigmoid":
            h = torch.sigmoid(h)
        elif activation == "relu":
            h = torch.relu(h)
    return h


class Compiler:
    """torch.compile with the mode the time budget allows, falling back to the default mode
    when the asked-for mode fails. Records each attempt."""

    def __init__(self, torch, gpu, settings):
        self.torch = torch
        self.gpu = gpu
        self.settings = settings
        self.records = []
        try:
            torch._dynamo.config.cache_size_limit = 256
        except AttributeError:
            pass

    def mode_for_now(self):
        left = self.settings.remaining_s()
        if left > 0.45 * self.settings.budget_s:
            return self.settings.compile_mode
        if left > 15:
            return "default"
        return None

    def compile(self, fn, args, label):
        """The compiled `fn`, already run once on `args`, and its mode; (None, reason) if
        it cannot be compiled or the budget is spent."""
        torch = self.torch
        mode = self.mode_for_now()
        record = dict(label, mode=mode, compile_s=None, note="")
        self.records.append(record)
        if mode is None:
            record["note"] = "skipped: time budget spent"
            return None, record["note"]
        tries = [mode] if mode == "default" else [mode, "default"]
        for attempt in tries:
            # A fresh dynamo cache for every shape: static shapes, and no recompile limit.
            torch._dynamo.reset()
            t0 = time.monotonic()
            try:
                kwargs = {"dynamic": False}
                if attempt != "default":
                    kwargs["mode"] = attempt
                compiled = torch.compile(fn, **kwargs)
                with torch.inference_mode():
                    compiled(*args)
                self.gpu.sync()
            except Exception as error:  # noqa: BLE001 - any compiler failure falls back
                message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                log(f"  torch.compile mode={attempt} failed: {message[:200]}")
                record["note"] += f"mode {attempt} failed ({message[:120]}); "
                continue
            record["mode"] = attempt
            record["compile_s"] = round(time.monotonic() - t0, 2)
            return compiled, attempt
        record["mode"] = None
        return None, "torch.compile failed"


def bench_layers(torch, gpu, settings, compiler, results, errors, compiled_phase):
    """Part a. Eager for every shape, or (compiled_phase) torch.compile, largest first."""
    combos = [(m, k, n, d) for (k, n) in settings.layer_kn for m in settings.layer_ms for d in ("f32", "bf16")]
    if compiled_phase:
        combos.sort(key=lambda c: -c[0] * c[1] * c[2])
    variant = "torch-compile" if compiled_phase else "torch-eager"
    for index, (m, k, n, dname) in enumerate(combos):
        nbytes = layer_bytes(m, k, n, dname)
        sets = set_count(nbytes, gpu.l2_bytes)
        need = sets * nbytes + 2 * m * n * dtype_bytes(dname)  # + addmm's and sigmoid's outputs
        tag = f"{variant} {m}x{k}x{n} {dname}"
        if need > settings.max_bytes:
            log(f"skip {tag}: needs {need / 1e9:.1f} GB")
            errors.append({"what": tag, "error": f"skipped: needs {need / 1e9:.1f} GB"})
            continue
        log(f"[{index + 1}/{len(combos)}] {tag} ({sets} buffer sets)")
        dtype = dtype_of(torch, dname)
        try:
            data = [
                (gpu.random((m, k), dtype), gpu.random((k, n), dtype, 1 / math.sqrt(k)), gpu.random((n,), dtype))
                for _ in range(sets)
            ]
            fn = layer
            if compiled_phase:
                fn, mode = compiler.compile(layer, data[0], {"m": m, "k": k, "n": n, "dtype": dname, "variant": variant})
                if fn is None:
                    log(f"  no {variant} row: {mode}")
                    continue

            def work(_, fn=fn, data=data):
                for x, w, b in data:
                    fn(x, w, b)

            with torch.inference_mode():
                ms = gpu.median_ms(work, settings.warmup, settings.repeats) / sets
            results.append(row(m, k, n, variant, dname, ms, 2.0 * m * k * n, nbytes))
        except Exception as error:  # noqa: BLE001 - one failing shape must not end the run
            log(f"  failed: {type(error).__name__}: {error}")
            errors.append({"what": tag, "error": f"{type(error).__name__}: {error}"})
        finally:
            data = None
            gpu.free()


def network_params(gpu, dtype):
    return [
        (gpu.random((k, n), dtype, 1 / math.sqrt(k)), gpu.random((n,), dtype))
        for k, n in zip(NETWORK[:-1], NETWORK[1:])
    ]


def network_flops_bytes(batch, dname):
    flops = sum(2.0 * batch * k * n for k, n in zip(NETWORK[:-1], NETWORK[1:]))
    elements = batch * NETWORK[0] + batch * NETWORK[-1]
    elements += sum(k * n + n for k, n in zip(NETWORK[:-1], NETWORK[1:]))
    return flops, elements * dtype_bytes(dname)


def bench_network(torch, gpu, settings, compiler, results, errors):
    """Part b: the 784-512-256-10 network's throughput at a large batch."""
    batch = settings.network_batch
    for dname in ("f32", "bf16"):
        dtype = dtype_of(torch, dname)
        flops, nbytes = network_flops_bytes(batch, dname)
        sets = set_count(nbytes, gpu.l2_bytes)
        try:
            params = network_params(gpu, dtype)
            xs = [gpu.random((batch, NETWORK[0]), dtype) for _ in range(sets)]
            variants = [("torch-eager-network", network)]
            if settings.compile:
                compiled, mode = compiler.compile(
                    network, (xs[0], params),
                    {"m": batch, "k": NETWORK[0], "n": NETWORK[-1], "dtype": dname, "variant": "torch-compile-network"},
                )
                if compiled is not None:
                    variants.append(("torch-compile-network", compiled))
                else:
                    log(f"  no torch-compile-network row: {mode}")
            for variant, fn in variants:
                log(f"{variant} batch {batch} {dname} ({sets} buffer sets)")

                def work(_, fn=fn):
                    for x in xs:
                        fn(x, params)

                with torch.inference_mode():
                    ms = gpu.median_ms(work, settings.warmup, settings.repeats) / sets
                results.append(row(batch, NETWORK[0], NETWORK[-1], variant, dname, ms, flops, nbytes))
        except Exception as error:  # noqa: BLE001
            log(f"  network {dname} failed: {type(error).__name__}: {error}")
            errors.append({"what": f"network {dname}", "error": f"{type(error).__name__}: {error}"})
        finally:
            params = xs = None
            gpu.free()


class GraphReplay:
    """Copy-in, forward and copy-out captured once as a CUDA graph; on the CPU (dry run)
    the same closure is simply called."""

    def __init__(self, torch, gpu, step):
        self.torch = torch
        self.step = step
        self.graph = None
        if gpu.cuda:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm-up on a side stream, as torch.cuda.graphs asks
                    step()
            torch.cuda.current_stream().wait_stream(stream)
            torch.cuda.synchronize()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                step()
            torch.cuda.synchronize()

    def replay(self):
        if self.graph is None:
            self.step()
        else:
            self.graph.replay()


def bench_latency(torch, gpu, settings, errors):
    """Part c: host-to-host latency of the network, f32, NumPy in and out."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = []
    params = network_params(gpu, torch.float32)
    pin = gpu.cuda
    for batch in LATENCY_BATCHES:
        x_host = rng.uniform(0.05, 1.0, (batch, NETWORK[0])).astype(np.float32)
        pinned_in = torch.empty((batch, NETWORK[0]), dtype=torch.float32, pin_memory=pin)
        pinned_out = torch.empty((batch, NETWORK[-1]), dtype=torch.float32, pin_memory=pin)
        pinned_in_np, pinned_out_np = pinned_in.numpy(), pinned_out.numpy()
        device_in = torch.empty((batch, NETWORK[0]), dtype=torch.float32, device=gpu.device)
        device_out = torch.empty((batch, NETWORK[-1]), dtype=torch.float32, device=gpu.device)

        def eager():
            y = network(torch.from_numpy(x_host).to(gpu.device), params)
            return y.cpu().numpy()

        def step():
            device_in.copy_(pinned_in, non_blocking=True)
            device_out.copy_(network(device_in, params))
            pinned_out.copy_(device_out, non_blocking=True)

        def eager_pinned():
            np.copyto(pinned_in_np, x_host)
            step()
            gpu.sync()
            return pinned_out_np.copy()

        try:
            with torch.inference_mode():
                graph = GraphReplay(torch, gpu, step)

                def replayed():
                    np.copyto(pinned_in_np, x_host)
                    graph.replay()
                    gpu.sync()
                    return pinned_out_np.copy()

                expected = eager()
                for variant, fn in (("torch-eager", eager), ("torch-eager-pinned", eager_pinned),
                                    ("torch-cudagraph", replayed)):
                    got = fn()
                    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
                        raise RuntimeError(f"{variant} disagrees with eager: max diff {np.abs(got - expected).max()}")
                    median_us, p99_us = host_latency_us(fn, settings.latency_iters)
                    log(f"latency {variant} batch {batch}: median {median_us:.1f} µs, p99 {p99_us:.1f} µs")
                    out.append({"batch": batch, "variant": variant, "median_us": median_us, "p99_us": p99_us})
        except Exception as error:  # noqa: BLE001
            log(f"  latency batch {batch} failed: {type(error).__name__}: {error}")
            errors.append({"what": f"latency batch {batch}", "error": f"{type(error).__name__}: {error}"})
    return out


def host_latency_us(fn, iterations):
    for _ in range(max(50, iterations // 20)):
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e3)
    times.sort()
    p99 = times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)]
    return statistics.median(times), p99


def bench_ceilings(torch, gpu, settings, errors):
    """Part d: device-to-device copy bandwidth and a large bf16 GEMM."""
    ceilings = {}
    repeats = max(10, settings.repeats)
    try:
        count = settings.copy_bytes // 4
        src = gpu.random((count,), torch.float32)
        dst = torch.empty_like(src)
        ms = gpu.median_ms(lambda _: dst.copy_(src), settings.warmup, repeats)
        ceilings["d2d_copy_bytes"] = 2 * settings.copy_bytes
        ceilings["d2d_copy_median_ms"] = ms
        ceilings["d2d_copy_gbytes_per_s"] = 2 * settings.copy_bytes / (ms / 1e3) / 1e9
        log(f"ceiling: copy {ceilings['d2d_copy_gbytes_per_s']:.0f} GB/s (read + write)")
    except Exception as error:  # noqa: BLE001
        errors.append({"what": "copy ceiling", "error": f"{type(error).__name__}: {error}"})
    finally:
        src = dst = None
        gpu.free()
    try:
        n = settings.gemm_n
        a = gpu.random((n, n), torch.bfloat16)
        b = gpu.random((n, n), torch.bfloat16)
        c = torch.empty((n, n), dtype=torch.bfloat16, device=gpu.device)
        ms = gpu.median_ms(lambda _: torch.mm(a, b, out=c), max(settings.warmup, 5), repeats)
        ceilings["bf16_gemm_n"] = n
        ceilings["bf16_gemm_median_ms"] = ms
        ceilings["bf16_gemm_tflops"] = 2.0 * n**3 / (ms / 1e3) / 1e12
        log(f"ceiling: bf16 {n}³ GEMM {ceilings['bf16_gemm_tflops']:.1f} TFLOP/s")
    except Exception as error:  # noqa: BLE001
        errors.append({"what": "GEMM ceiling", "error": f"{type(error).__name__}: {error}"})
    finally:
        a = b = c = None
        gpu.free()
    return ceilings


def save(path, report):
    """Writes `report` to `path` atomically (a temporary file in the same directory, renamed)."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".torch_gpu_bench.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def print_summary(report):
    results = report["results"]
    by_key = {(r["m"], r["k"], r["n"], r["dtype"], r["variant"]): r for r in results}
    print(f"device: {report['device']}")
    shapes = sorted({(r["k"], r["n"], r["dtype"], r["m"]) for r in results if not r["variant"].endswith("-network")})
    print(f"{'MxKxN':<18} {'dtype':<5} {'eager ms':>10} {'TFLOP/s':>8} {'compile ms':>11} {'TFLOP/s':>8} {'mode':<8}")
    modes = {(c["m"], c["k"], c["n"], c["dtype"], c["variant"]): c.get("mode") for c in report.get("compile", [])}
    for k, n, dname, m in shapes:
        cells = []
        for variant in ("torch-eager", "torch-compile"):
            r = by_key.get((m, k, n, dname, variant))
            cells += [f"{r['median_ms']:.4f}", f"{r['gflops'] / 1e3:.3g}"] if r else ["-", "-"]
        mode = modes.get((m, k, n, dname, "torch-compile")) or "-"
        mode = "autotune" if mode.startswith("max-autotune") else mode
        print(f"{f'{m}x{k}x{n}':<18} {dname:<5} {cells[0]:>10} {cells[1]:>8} {cells[2]:>11} {cells[3]:>8} {mode:<8}")
    for r in results:
        if r["variant"].endswith("-network"):
            print(f"{r['variant']:<24} batch {r['m']} {r['dtype']:<5} {r['median_ms']:.3f} ms  "
                  f"{r['gflops'] / 1e3:.3g} TFLOP/s")
    for lat in report.get("latency", []):
        print(f"latency {lat['variant']:<19} batch {lat['batch']:<3} median {lat['median_us']:8.1f} µs  "
              f"p99 {lat['p99_us']:8.1f} µs")
    c = report.get("ceilings", {})
    if c:
        copy = c.get("d2d_copy_gbytes_per_s")
        gemm = c.get("bf16_gemm_tflops")
        print("ceilings: " + ", ".join(filter(None, [
            f"D2D copy {copy:.0f} GB/s (read + write)" if copy else None,
            f"bf16 {c.get('bf16_gemm_n')}³ GEMM {gemm:.1f} TFLOP/s" if gemm else None,
        ])))
    for e in report.get("errors", []):
        print(f"not measured: {e['what']}: {e['error']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="OUT.json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a 200 s budget")
    parser.add_argument("--dry-run", action="store_true", help="run everything on the CPU with tiny shapes")
    parser.add_argument("--budget-s", type=float, help="time the whole run aims at (default 340, quick 200)")
    parser.add_argument("--compile-mode", default=COMPILE_MODE, help=f"torch.compile mode (default {COMPILE_MODE})")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    args = parser.parse_args()
    settings = Settings(args)
    log(f"torch {torch.__version__}")
    # Full f32 precision, as vecprop's f32 GEMMs (no TF32). Only this legacy flag is set:
    # mixing it with the newer fp32_precision API makes some torch versions raise.
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = Gpu(torch, settings)
    compiler = Compiler(torch, gpu, settings)
    report = {
        "device": gpu.describe(),
        "results": [],
        "latency": [],
        "ceilings": {},
        "compile": compiler.records,
        "errors": [],
        "settings": {
            "quick": settings.quick, "dry_run": settings.dry_run, "repeats": settings.repeats,
            "warmup": settings.warmup, "latency_iterations": settings.latency_iters,
            "tf32": False, "budget_s": settings.budget_s, "torch": torch.__version__,
        },
    }
    log(f"device: {report['device']}; L2 {gpu.l2_bytes >> 20} MiB")
    errors = report["errors"]

    report["ceilings"] = bench_ceilings(torch, gpu, settings, errors)
    save(args.json, report)
    bench_layers(torch, gpu, settings, compiler, report["results"], errors, compiled_phase=False)
    save(args.json, report)
    bench_network(torch, gpu, settings, compiler, report["results"], errors)
    save(args.json, report)
    report["latency"] = bench_latency(torch, gpu, settings, errors)
    save(args.json, report)
    if settings.compile:
        bench_layers(torch, gpu, settings, compiler, report["results"], errors, compiled_phase=True)
    order = {"torch-eager": 0, "torch-compile": 1}
    report["results"].sort(key=lambda r: (r["k"], r["n"], r["dtype"], r["m"], order.get(r["variant"], 2), r["variant"]))
    save(args.json, report)
    log(f"done in {time.monotonic() - START:.0f} s" + (f"; wrote {args.json}" if args.json else ""))
    print_summary(report)


if __name__ == "__main__":
    main()
