#!/usr/bin/env python3
"""vecprop on Ray Data and Ray Serve, against calling vecprop directly and against ONNX
Runtime and PyTorch in the same Ray jobs, side by side in one run.

The network is vecprop.ray's default, 784-512-256-10 (sigmoid, relu, linear), f32; ORT and
PyTorch get the same weights (an ONNX graph built from them, an nn.Sequential loaded with
them) and every engine the same thread count (all cores).

  * Ray Data: --rows x 784 float32 rows, put in Ray's object store once (from_numpy, 64
    blocks); then, in rounds that alternate the engines, `map_batches` with one actor
    (the engine uses every core) and batches of one block (or --batch-size rows), the outputs collected on
    the driver. "direct" is `Model.predict` on the same in-memory rows in this process.
    Cells: the best round's rows/s; overhead = direct rows/s / Ray rows/s - 1; and the CPU
    seconds each role used in that round (read from /proc), which shows where Ray's time
    goes and whether anything else on the machine ran.
  * Serve: one replica at a time (vecprop with @serve.batch, vecprop without, ORT with, and
    a deployment with no model that gives Serve's own floor on this machine),
    closed-loop aiohttp clients on 127.0.0.1 sending one-row application/x-npy requests
    for --seconds after a warm-up, at each --clients level: req/s, p50 and p99 latency.
    The clients run on the same machine and share its cores with Ray.

Usage: python3 scripts/bench_ray.py [--rows 1000000] [--rounds 2] [--seconds 8]
                                    [--clients 1,8,64] [--json out.json] [--write BENCHMARKS.md]
                                    [--skip-data|--skip-serve]
--write replaces the section between BEGIN and END in that file (or appends one).
Needs: pip install "./python[ray]" onnx onnxruntime torch aiohttp
"""

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import time
import warnings

import numpy as np
import ray
from ray import serve

import vecprop
import vecprop.ray
from bench_report import replace_section
from vecprop.ray._default_model import DEFAULT_ACTIVATIONS, default_layers

THREADS = os.cpu_count()


class OrtEngine:
    """The default network as an ONNX graph on ONNX Runtime's CPU provider."""

    def __init__(self, layers, activations):
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        nodes, weights, current = [], [], "x"
        ops = {"sigmoid": "Sigmoid", "relu": "Relu"}
        for i, ((w, b), activation) in enumerate(zip(layers, activations)):
            weights += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes += [helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"])]
            current = f"z{i}"
            if activation in ops:
                nodes.append(helper.make_node(ops[activation], [current], [f"a{i}"]))
                current = f"a{i}"
        self.input_width, self.output_width = layers[0][0].shape[0], layers[-1][0].shape[1]
        graph = helper.make_graph(
            nodes, "mlp",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, self.input_width])],
            [helper.make_tensor_value_info(current, TensorProto.FLOAT, [None, self.output_width])],
            initializer=weights,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        onnx.checker.check_model(model)

    def __call__(self, x):
        return self.session.run(None, {"x": x})[0]


class TorchEngine:
    """The default network as a torch.nn.Sequential, under inference_mode."""

    def __init__(self, layers, activations):
        import torch
        from torch import nn

        torch.set_num_threads(THREADS)
        modules = []
        for (w, b), activation in zip(layers, activations):
            linear = nn.Linear(*w.shape)
            linear.weight.data = torch.from_numpy(w.T.copy())
            linear.bias.data = torch.from_numpy(b.copy())
            modules += [linear] + ([] if activation == "linear" else [{"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[activation]()])
        self.torch, self.net = torch, nn.Sequential(*modules).eval()
        self.input_width, self.output_width = layers[0][0].shape[0], layers[-1][0].shape[1]

    def __call__(self, x):
        # Ray's batches are read-only views; torch reads them in place (it warns that it
        # could write to them, which this network never does).
        with warnings.catch_warnings(), self.torch.inference_mode():
            warnings.simplefilter("ignore", UserWarning)
            return self.net(self.torch.from_numpy(x)).numpy()


def ort_loader(model, device):
    return OrtEngine(default_layers(), DEFAULT_ACTIVATIONS)


def torch_loader(model, device):
    return TorchEngine(default_layers(), DEFAULT_ACTIVATIONS)


LOADERS = {"vecprop": None, "onnxruntime": ort_loader, "pytorch": torch_loader}


TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds_by_role():
    """CPU seconds (user + system) every live process has used so far, summed by role:
    "actor" (Ray Data's map workers), "driver" (this process), "ray" (Ray's other processes:
    raylet, GCS, idle workers, ...) and "other" (everything else on the machine, which a
    quiet run keeps near zero)."""
    totals = dict.fromkeys(("actor", "driver", "ray", "other"), 0.0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        seconds = (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime
        if int(pid) == os.getpid():
            role = "driver"
        elif command.startswith("ray::MapWorker"):
            role = "actor"
        elif "ray" in command:
            role = "ray"
        else:
            role = "other"
        totals[role] += seconds
    return totals


def cpu_used(before, after):
    """CPU seconds by role between two :func:`cpu_seconds_by_role` readings (a process that
    ended in between is missing from ``after``; its seconds are lost, never negative)."""
    return {role: round(max(0.0, after[role] - before[role]), 2) for role in before}


def ray_data_job(dataset, loader, batch_size):
    """(seconds, rows, seconds after the first output batch, rows after it) for one
    map_batches pass over ``dataset``, outputs collected on the driver. The second pair
    leaves out the actor's start (process, imports, model load) and the first batch."""
    start = time.perf_counter()
    predicted = dataset.map_batches(
        vecprop.ray.Predictor,
        fn_constructor_kwargs={"model": None, "device": "cpu", "loader": loader},
        batch_format="numpy",
        batch_size=batch_size,
        # As vecprop.ray.infer runs it, for every engine: Ray batches the next input while
        # the engine computes this one.
        compute=ray.data.ActorPoolStrategy(
            size=1, max_concurrent_calls_per_actor=vecprop.ray._infer.OVERLAPPED_CALLS
        ),
        num_cpus=1,
    )
    rows, first, first_rows = 0, None, 0
    cpu_before = cpu_seconds_by_role()
    for batch in predicted.iter_batches(batch_format="numpy", batch_size=None):
        rows += len(batch["output"])
        if first is None:
            first, first_rows = time.perf_counter(), rows
    end = time.perf_counter()
    # Read before the actor exits (Ray ends it once the job is done).
    cpu = cpu_used(cpu_before, cpu_seconds_by_role())
    return end - start, rows, end - first, rows - first_rows, cpu


def bench_data(args):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(args.rows, 784)).astype(np.float32)
    dataset = ray.data.from_numpy(np.array_split(x, 64)).materialize()
    model = vecprop.ray.default_model()
    expected_sum = None
    times = {name: [] for name in ["direct vecprop", *("Ray Data + " + n for n in LOADERS)]}
    warm = {name: [] for name in times}
    cpu = {name: [] for name in times}
    for _ in range(args.rounds):
        cpu_before = cpu_seconds_by_role()
        start = time.perf_counter()
        y = model.predict(x)
        times["direct vecprop"].append(time.perf_counter() - start)
        cpu["direct vecprop"].append(cpu_used(cpu_before, cpu_seconds_by_role()))
        warm["direct vecprop"].append(args.rows / times["direct vecprop"][-1])
        expected_sum = float(y.sum(dtype=np.float64))
        del y
        for name, loader in LOADERS.items():
            seconds, rows, after_first_s, after_first_rows, used = ray_data_job(
                dataset, loader, args.batch_size or None
            )
            assert rows == args.rows, (name, rows)
            times["Ray Data + " + name].append(seconds)
            cpu["Ray Data + " + name].append(used)
            warm["Ray Data + " + name].append(after_first_rows / after_first_s)
    results = {
        name: {"best_s": min(t), "rounds_s": t, "rows_per_s": args.rows / min(t),
               "warm_rows_per_s": max(warm[name]), "cpu_s_of_best": cpu[name][t.index(min(t))]}
        for name, t in times.items()
    }
    direct = results["direct vecprop"]["rows_per_s"]
    for name, cell in results.items():
        cell["overhead_vs_direct"] = direct / cell["rows_per_s"] - 1
        cell["warm_overhead_vs_direct"] = direct / cell["warm_rows_per_s"] - 1
    return {"rows": args.rows, "batch_size": args.batch_size, "checksum": expected_sum, "jobs": results}


async def closed_loop(url, body, clients, seconds, warmup_s=1.0):
    """Each client sends, waits for the reply, sends again; latencies after the warm-up."""
    import aiohttp

    latencies, failures = [], 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from, end = start + warmup_s, start + warmup_s + seconds

        async def client():
            nonlocal failures
            while True:
                sent = time.perf_counter()
                if sent >= end:
                    return
                async with session.post(url, data=body, headers={"Content-Type": "application/x-npy"}) as r:
                    await r.read()
                    ok = r.status == 200
                done = time.perf_counter()
                if sent >= measure_from:
                    latencies.append(done - sent) if ok else None
                    failures += not ok

        await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": 1e3 * latencies[len(latencies) // 2],
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "requests": len(latencies),
        "failures": failures,
    }


@serve.deployment(max_ongoing_requests=256)
class ServeAlone:
    """Serve's own floor: reads the body and answers a fixed one-row reply, no model."""

    def __init__(self):
        from starlette.responses import Response

        buffer = io.BytesIO()
        np.save(buffer, np.zeros((1, 10), np.float32))
        self.reply, self.response = buffer.getvalue(), Response

    async def __call__(self, request):
        await request.body()
        return self.response(self.reply, media_type="application/x-npy")

    def batch_sizes(self):
        return []


def bench_serve(args, port):
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(1).uniform(-1, 1, (1, 784)).astype(np.float32))
    body = buffer.getvalue()
    deployments = {
        "vecprop, @serve.batch": dict(batching=True),
        "vecprop, unbatched": dict(batching=False),
        "ORT, @serve.batch": dict(batching=True, loader=ort_loader),
    }
    levels = [int(c) for c in args.clients.split(",")]
    results = {}
    for name, options in [*deployments.items(), ("Serve alone, no model", None)]:
        application = ServeAlone.bind() if options is None else vecprop.ray.deployment(
            None, device="cpu", max_batch_size=args.max_batch_size,
            batch_wait_timeout_s=args.batch_wait_timeout_s, **options,
        )
        serve.run(application, name="bench", route_prefix="/")
        url = f"http://127.0.0.1:{port}/"
        results[name] = {}
        for clients in levels:
            results[name][clients] = asyncio.run(closed_loop(url, body, clients, args.seconds))
            print(name, clients, results[name][clients], flush=True)
        handle = serve.get_app_handle("bench")
        sizes = handle.batch_sizes.remote().result(timeout_s=30)
        results[name]["mean_merged_requests"] = statistics.fmean(sizes) if sizes else None
        serve.delete("bench")
    return {"max_batch_size": args.max_batch_size, "batch_wait_timeout_s": args.batch_wait_timeout_s,
            "seconds": args.seconds, "deployments": results}


BEGIN = "<!-- ray:begin (scripts/bench_ray.py --write) -->"
END = "<!-- ray:end -->"


def markdown(report):
    """The report as BENCHMARKS.md's tables."""
    lines = [f"Machine: {report['machine']}; Ray {report['ray']}, vecprop {report['vecprop']}. "
             f"Run {report['date']}, load average before the run {report['load_before']}."]
    if "data" in report:
        data = report["data"]
        batches = data["batch_size"] or f"one block ({data['rows'] // 64:,} rows)"
        lines += ["", f"Ray Data, {data['rows']:,} x 784 rows (784-512-256-10), one actor using every core, "
                  f"batches of {batches}, best of {len(next(iter(data['jobs'].values()))['rounds_s'])} "
                  "alternating rounds. \"whole job\" includes the actor's start; \"steady\" counts from "
                  "the first output batch.", "",
                  "| job | whole job | rows/s | overhead vs direct | steady rows/s | steady overhead "
                  "| CPU s: actor / driver / Ray's others / rest of machine |",
                  "|---|---|---|---|---|---|---|"]
        for name, cell in data["jobs"].items():
            used = cell["cpu_s_of_best"]
            lines.append(f"| {name} | {cell['best_s']:.2f} s | {cell['rows_per_s']:,.0f} | "
                         f"{100 * cell['overhead_vs_direct']:+.1f}% | {cell['warm_rows_per_s']:,.0f} | "
                         f"{100 * cell['warm_overhead_vs_direct']:+.1f}% | {used['actor']:.1f} / "
                         f"{used['driver']:.1f} / {used['ray']:.1f} / {used['other']:.1f} |")
    if "serve" in report:
        serve_report = report["serve"]
        deployments = serve_report["deployments"]
        # Client levels are the int keys (strings once the report went through JSON).
        levels = sorted((key for key in next(iter(deployments.values())) if str(key).isdigit()), key=int)
        lines += ["", f"Ray Serve, one replica, batch-1 `application/x-npy` requests from closed-loop "
                  f"aiohttp clients on 127.0.0.1 for {serve_report['seconds']:g} s per level; "
                  f"`@serve.batch(max_batch_size={serve_report['max_batch_size']}, "
                  f"batch_wait_timeout_s={serve_report['batch_wait_timeout_s']:g})`. Cells: req/s, p50 / p99 ms.", "",
                  "| deployment | " + " | ".join(f"{c} client{'s' * (int(c) > 1)}" for c in levels) + " | requests per forward pass |",
                  "|---|" + "---|" * (len(levels) + 1)]
        for name, cells in deployments.items():
            row = [f"{cells[c]['requests_per_s']:,.0f} req/s, {cells[c]['p50_ms']:.2f} / {cells[c]['p99_ms']:.2f} ms"
                   for c in levels]
            merged = cells.get("mean_merged_requests")
            lines.append(f"| {name} | " + " | ".join(row) + (f" | {merged:.1f} |" if merged else " | - |"))
        ours, ort, unbatched = (deployments.get(k) for k in
                                ("vecprop, @serve.batch", "ORT, @serve.batch", "vecprop, unbatched"))
        if ours and ort and unbatched:
            ratios = ", ".join(f"{c}: {ours[c]['requests_per_s'] / ort[c]['requests_per_s']:.2f}x ORT, "
                               f"{ours[c]['requests_per_s'] / unbatched[c]['requests_per_s']:.2f}x unbatched"
                               for c in levels)
            lines += ["", f"vecprop with @serve.batch, by clients: {ratios}."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=0,
                        help="rows per map_batches batch; 0 (the default): whole blocks, no re-batching copies")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.002)
    parser.add_argument("--json")
    parser.add_argument("--write", help="Markdown file whose Ray section to replace")
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    ray.init(num_cpus=THREADS, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    report = {"machine": f"{platform.processor() or platform.machine()}, {THREADS} cores, no GPU",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "ray": ray.__version__, "vecprop": vecprop.__version__,
              "load_before": "%.2f" % os.getloadavg()[0]}
    if not args.skip_data:
        report["data"] = bench_data(args)
        print(json.dumps(report["data"], indent=1), flush=True)
    if not args.skip_serve:
        port = 8000
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        report["serve"] = bench_serve(args, port)
        serve.shutdown()
    ray.shutdown()
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)
    if args.write:
        replace_section(args.write, BEGIN, END, markdown(json.loads(text)))


if __name__ == "__main__":
    main()
