#!/usr/bin/env python3
"""BENCHMARKS.md tables from `vecprop bench --json` and scripts/torch_gpu_bench.py output.

    python3 scripts/bench_report.py --vecprop vecprop.json --torch torch.json [--markdown OUT.md]

Rows of both files are joined by (M, K, N, dtype). For each (K, N) and dtype there is one
table with a row per M and a column per variant: median time, TFLOP/s, and the share of
`cublas-gemm-only`'s throughput (the bare GEMM, the ceiling for a dense layer); then the
speed-up of each fused variant over `cublas+epilogue`, and over the faster of PyTorch's
eager and compiled layers when the torch file is given. Network rows (variants ending in
`-network`), a latency table and the measured ceilings (either file's `ceilings`) follow
when the files hold them.
Either file may be left out, and any variant may be missing from any shape.
Standard library only.
"""
import argparse
import json
import math
import os
import sys
import tempfile

# Known variants, in the order the tables show them; others follow, sorted.
ORDER = [
    "cublas-gemm-only",
    "cublas+epilogue",
    "cublaslt-bias+act",
    "fused",
    "fused_small",
    "narrow",
    "narrow_mma",
    "splitk",
    "simt_warp",
    "wgmma",
    "cublaslt-fused-relu",
    "auto",
    "cpu",
    "torch-eager",
    "torch-compile",
    "torch-eager-pinned",
    "torch-cudagraph",
]
GEMM_ONLY = "cublas-gemm-only"
UNFUSED = "cublas+epilogue"
TORCH = ("torch-eager", "torch-compile")
# vecprop's own kernels and Auto's pick, compared with cuBLAS + epilogue like the fused ones.
OWN = ("narrow", "narrow_mma", "splitk", "simt_warp", "wgmma", "auto")
DTYPE_ORDER = {"f32": 0, "f16": 1, "bf16": 2}


def replace_section(path, begin, end, text):
    """Puts ``text`` between the markers ``begin`` and ``end`` of the Markdown file ``path``
    (the old section's text goes), or appends markers and text when the file has none."""
    with open(path) as handle:
        whole = handle.read()
    section = begin + "\n" + text + "\n" + end
    if begin in whole and end in whole:
        head, rest = whole.split(begin, 1)
        whole = head + section + rest.split(end, 1)[1]
    else:
        whole = whole.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as handle:
        handle.write(whole)


def load(path, source):
    """The report in `path`, with each row tagged by its source; exits with a message if
    the file cannot be read."""
    try:
        with open(path) as fh:
            report = json.load(fh)
    except (OSError, ValueError) as error:
        sys.exit(f"error: cannot read {source} results from {path}: {error}")
    if not isinstance(report, dict) or not isinstance(report.get("results", []), list):
        sys.exit(f"error: {path} is not a vecprop bench JSON file (no \"results\" list)")
    rows = []
    for r in report.get("results", []):
        try:
            rows.append({
                "m": int(r["m"]), "k": int(r["k"]), "n": int(r["n"]),
                "variant": str(r["variant"]), "dtype": str(r["dtype"]),
                "median_ms": float(r["median_ms"]),
                "gflops": float(r.get("gflops", "nan")),
                "source": source,
            })
        except (KeyError, TypeError, ValueError) as error:
            print(f"warning: {path}: skipping a malformed row {r!r} ({error})", file=sys.stderr)
    report["rows"] = rows
    return report


def finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def fmt_ms(ms):
    if not finite(ms):
        return "–"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.4f}" if ms >= 0.001 else f"{ms:.2e}"


def fmt_tflops(gflops):
    if not finite(gflops):
        return "–"
    t = gflops / 1e3
    if t >= 100:
        return f"{t:.0f}"
    if t >= 10:
        return f"{t:.1f}"
    return f"{t:.3g}"


def fmt_percent(p):
    return f"{p:.0f}%" if p >= 1 else f"{p:.2g}%"


def fmt_ratio(x):
    return f"{x:.2f}×" if finite(x) else "–"


def variant_key(v):
    return (ORDER.index(v), "") if v in ORDER else (len(ORDER), v)


def shape_tables(rows):
    """One markdown table per (K, N, dtype), rows M."""
    layer_rows = [r for r in rows if not r["variant"].endswith("-network")]
    table = {}
    duplicates = 0
    for r in layer_rows:
        key = (r["k"], r["n"], r["dtype"])
        cell = (r["m"], r["variant"])
        bucket = table.setdefault(key, {})
        duplicates += cell in bucket
        bucket[cell] = r  # the later file (torch) or row wins
    out = []
    if duplicates:
        out.append(f"_{duplicates} duplicate rows: the last of each is shown._\n")
    for (k, n, dtype) in sorted(table, key=lambda t: (t[0] * t[1], t[0], t[1], DTYPE_ORDER.get(t[2], 9), t[2])):
        cells = table[(k, n, dtype)]
        variants = sorted({v for _, v in cells}, key=variant_key)
        fused = [v for v in variants if v.startswith("fused") or v in OWN]
        torch_variants = [v for v in variants if v in TORCH]
        has_ceiling = GEMM_ONLY in variants
        header = ["M"] + variants
        notes = []
        if UNFUSED in variants:
            header += [f"{v} vs {UNFUSED}" for v in fused]
        if torch_variants:
            header += [f"{v} vs best torch" for v in fused]
        out.append(f"### K×N = {k}×{n}, {dtype}\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---:"] * len(header)) + "|")
        for m in sorted({m for m, _ in cells}):
            line = [str(m)]
            ceiling = cells.get((m, GEMM_ONLY))
            for v in variants:
                r = cells.get((m, v))
                if r is None:
                    line.append("–")
                    continue
                text = f"{fmt_ms(r['median_ms'])} ms · {fmt_tflops(r['gflops'])}"
                if has_ceiling and v != GEMM_ONLY and ceiling and finite(ceiling["median_ms"]) and finite(r["median_ms"]):
                    text += f" · {fmt_percent(100 * ceiling['median_ms'] / r['median_ms'])}"
                line.append(text)
            speedups = []
            if UNFUSED in variants:
                base = cells.get((m, UNFUSED))
                for v in fused:
                    r = cells.get((m, v))
                    speedups.append(base["median_ms"] / r["median_ms"] if base and r and finite(r["median_ms"]) else None)
            if torch_variants:
                best = min((cells[(m, t)]["median_ms"] for t in torch_variants
                            if (m, t) in cells and finite(cells[(m, t)]["median_ms"])), default=None)
                for v in fused:
                    r = cells.get((m, v))
                    speedups.append(best / r["median_ms"] if best and r and finite(r["median_ms"]) else None)
            line += [fmt_ratio(s) for s in speedups]
            out.append("| " + " | ".join(line) + " |")
        if not has_ceiling:
            notes.append(f"no `{GEMM_ONLY}` rows, so no % column")
        out.append("")
        if notes:
            out.append("_" + "; ".join(notes) + "._\n")
    return out


# The network `vecprop bench --network-throughput` and torch_gpu_bench.py both time.
E2E_NETWORK = "784-512-256-10"
E2E_FLOPS_PER_ROW = 2 * (784 * 512 + 512 * 256 + 256 * 10)


def e2e_network_rows(reports):
    """vecprop's whole-network figures from `vecprop bench --network-throughput --streaming`,
    as rows of the network table: host to host, and the compute alone (inputs on the device,
    from the streaming bench's compute-alone rate)."""
    rows = []
    for source, report in reports:
        for e in report.get("network_throughput") or []:
            rows.append({"network": E2E_NETWORK, "m": int(e["rows"]), "dtype": str(e["dtype"]),
                         "variant": f"{source} host to host (--network-throughput)",
                         "median_ms": float(e["median_ms"]), "gflops": float(e.get("tflops", "nan")) * 1e3})
        for e in report.get("streaming") or []:
            rate = float(e.get("compute_alone_rows_per_s", "nan"))
            rows_per_batch = int(e.get("rows_per_batch", 0))
            if e.get("network") != E2E_NETWORK or not finite(rate) or not rows_per_batch:
                continue
            ms = rows_per_batch / rate * 1e3
            rows.append({"network": E2E_NETWORK, "m": rows_per_batch, "dtype": str(e["dtype"]),
                         "variant": f"{source} on device (compute alone, from --streaming)",
                         "median_ms": ms, "gflops": E2E_FLOPS_PER_ROW * rate / 1e9})
    return rows


def network_table(rows, reports=()):
    net = []
    for r in rows:
        if r["variant"].endswith("-network"):
            name = E2E_NETWORK if (r["k"], r["n"]) == (784, 10) else f"{r['k']}→…→{r['n']}"
            net.append(dict(r, network=name))
    net += e2e_network_rows(reports)
    if not net:
        return []
    out = ["## Network", "", "| network | batch | dtype | variant | median ms | TFLOP/s |", "|---|---:|---|---|---:|---:|"]
    for r in sorted(net, key=lambda r: (r["network"], r["m"], DTYPE_ORDER.get(r["dtype"], 9), r["variant"])):
        out.append(f"| {r['network']} | {r['m']} | {r['dtype']} | {r['variant']} | {fmt_ms(r['median_ms'])} | {fmt_tflops(r['gflops'])} |")
    out.append("")
    return out


def streaming_table(reports):
    """`vecprop bench --streaming`: many batches host to host through forward_stream."""
    out = []
    for source, report in reports:
        entries = report.get("streaming") or []
        if not entries:
            continue
        out += [f"## Streaming ({source}: batches host → device → host, overlapped)", "",
                "| network | dtype | batches × rows | rows/s | % of copy bound | % of compute alone | H2D GB/s | D2H GB/s |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        for e in entries:
            out.append(f"| {e['network']} | {e['dtype']} | {e['batches']} × {e['rows_per_batch']} | "
                       f"{e['rows_per_s'] / 1e6:.1f} M | {e['pct_of_copy_bound']:.0f}% | {e['pct_of_compute_alone']:.1f}% | "
                       f"{e['h2d_gb_per_s']:.1f} | {e['d2h_gb_per_s']:.1f} |")
        out.append("")
    return out


def callers_table(reports):
    """`vecprop bench --callers`: threads sharing one plan."""
    out = []
    for source, report in reports:
        entries = report.get("callers") or []
        if not entries:
            continue
        out += [f"## Concurrent callers ({source}: threads sharing one plan)", "",
                "| threads | batch | calls per thread | examples/s |", "|---:|---:|---:|---:|"]
        for e in entries:
            out.append(f"| {e['threads']} | {e['batch']} | {e['calls_per_thread']} | {e['examples_per_s'] / 1e6:.2f} M |")
        out.append("")
    return out


def latency_variant(source, entry):
    """torch_gpu_bench.py names its latency variants; `vecprop bench --latency` says
    whether CUDA graphs were on (and whether the capture worked)."""
    if "variant" in entry:
        return str(entry["variant"])
    if entry.get("cuda_graphs"):
        return f"{source}-cudagraph" if entry.get("graph_captured", True) else f"{source}-cudagraph (capture failed)"
    return source


def latency_table(reports):
    entries = []
    for source, report in reports:
        for e in report.get("latency") or []:
            try:
                entries.append((int(e["batch"]), latency_variant(source, e), float(e["median_us"]), float(e.get("p99_us", "nan"))))
            except (KeyError, TypeError, ValueError):
                print(f"warning: {source}: skipping a malformed latency entry {e!r}", file=sys.stderr)
    if not entries:
        return []
    variants = sorted({v for _, v, _, _ in entries}, key=variant_key)
    cells = {(b, v): (med, p99) for b, v, med, p99 in entries}
    out = ["## Latency, host to host (median / p99 µs)", "",
           "| batch | " + " | ".join(variants) + " |", "|---:|" + "|".join(["---:"] * len(variants)) + "|"]
    for b in sorted({b for b, _, _, _ in entries}):
        line = [str(b)]
        for v in variants:
            c = cells.get((b, v))
            if c is None:
                line.append("–")
            else:
                p99 = f"{c[1]:.1f}" if finite(c[1]) else "–"
                line.append(f"{c[0]:.1f} / {p99}")
        out.append("| " + " | ".join(line) + " |")
    out.append("")
    return out


# What vecprop's `ceilings` measures, when its JSON does not say: `vecprop bench` times
# these fixed sizes (src/bench/cuda.rs).
VECPROP_GEMM_N = {"bf16": 8192, "f32": 4096}


def ceilings_lines(reports):
    """One line per file that holds `ceilings`: torch_gpu_bench.py's keys
    (`d2d_copy_gbytes_per_s`, `bf16_gemm_tflops`, `bf16_gemm_n`) or vecprop's
    (`copy_gbytes_per_s`, `bf16_gemm_tflops`, `f32_gemm_tflops`)."""
    out = []
    for source, report in reports:
        c = report.get("ceilings")
        if not isinstance(c, dict) or not c:
            continue
        parts = []
        copy_key = next((k for k in ("d2d_copy_gbytes_per_s", "copy_gbytes_per_s") if finite(c.get(k))), None)
        if copy_key:
            bw = c[copy_key]
            bw = f"{bw / 1e3:.2f} TB/s" if bw >= 1e3 else f"{bw:.3g} GB/s"
            parts.append(f"device-to-device copy {bw} (read + write)")
        for dtype in ("bf16", "f32"):
            if finite(c.get(f"{dtype}_gemm_tflops")):
                default_n = VECPROP_GEMM_N[dtype] if source == "vecprop" else "?"
                n = c.get(f"{dtype}_gemm_n", default_n)
                note = " (no TF32)" if dtype == "f32" else ""
                parts.append(f"{dtype} {n}³ GEMM{note} {c[f'{dtype}_gemm_tflops']:.3g} TFLOP/s")
        known = {"d2d_copy_gbytes_per_s", "copy_gbytes_per_s", "bf16_gemm_tflops", "bf16_gemm_n",
                 "f32_gemm_tflops", "f32_gemm_n", "d2d_copy_bytes", "d2d_copy_median_ms",
                 "bf16_gemm_median_ms"}
        parts += [f"{k} = {v}" for k, v in sorted(c.items()) if k not in known]
        if parts:
            out.append(f"Ceilings measured by {source}: " + "; ".join(parts) + ".")
    if out:
        out.append("")
    return out


def compile_lines(reports):
    """Which torch.compile modes the compiled rows used (torch_gpu_bench.py's "compile")."""
    out = []
    for source, report in reports:
        records = report.get("compile") or []
        counts = {}
        for r in records:
            if isinstance(r, dict):
                mode = r.get("mode") or "not compiled"
                counts[mode] = counts.get(mode, 0) + 1
        if counts:
            parts = [f"{mode}: {count}" for mode, count in sorted(counts.items())]
            out += [f"torch.compile modes ({source}): " + ", ".join(parts) + ".", ""]
    return out


def device_lines(reports):
    out = []
    names = []
    for source, report in reports:
        device = str(report.get("device", "unknown"))
        names.append(device)
        out.append(f"- {source}: {device}")
    if len(names) == 2:
        gpu = names[1].split(" / ")[0].strip()
        if gpu and gpu.lower() not in names[0].lower():
            out.append(f"- **warning**: the two files name different devices (`{gpu}` is not in the vecprop device)")
    out.append("")
    return out


def render(reports):
    rows = [r for _, report in reports for r in report["rows"]]
    out = ["# Benchmarks", ""] + device_lines(reports)
    out += [
        "Each cell: median time per layer · TFLOP/s (2·M·K·N / time) · share of "
        f"`{GEMM_ONLY}`'s throughput. Speed-ups divide the other's median time by the fused one's.",
        "",
    ]
    out += shape_tables(rows) + network_table(rows, reports) + latency_table(reports)
    out += streaming_table(reports) + callers_table(reports) + ceilings_lines(reports)
    out += compile_lines(reports)
    errors = [(source, e) for source, report in reports for e in report.get("errors") or []]
    if errors:
        out.append("Not measured: " + "; ".join(f"{e.get('what')} ({source}: {e.get('error')})" for source, e in errors) + ".")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_atomically(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".bench_report.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def self_test():
    """Synthetic reports with missing variants and bad values; checks the tables."""
    def row(m, k, n, variant, dtype, ms):
        return {"m": m, "k": k, "n": n, "variant": variant, "dtype": dtype, "median_ms": ms,
                "gflops": 2 * m * k * n / (ms / 1e3) / 1e9}
    vec = {"device": "cuda:0 (NVIDIA H100 80GB HBM3, sm_90)",
           "ceilings": {"copy_gbytes_per_s": 2900.0, "bf16_gemm_tflops": 700.0, "f32_gemm_tflops": 51.0},
           "results": [
        row(1024, 784, 512, "cublas-gemm-only", "f32", 0.040),
        row(1024, 784, 512, "cublas+epilogue", "f32", 0.050),
        row(1024, 784, 512, "fused", "f32", 0.025),
        row(64, 784, 512, "cublas+epilogue", "f32", 0.010),  # no gemm-only, no fused
        dict(row(1, 64, 64, "cpu", "f32", 0.002), gflops=float("nan")),
        {"m": 1, "variant": "broken"},
    ]}
    tor = {"device": "NVIDIA H100 80GB HBM3 / driver 580 / torch 2.11", "results": [
        row(1024, 784, 512, "torch-eager", "f32", 0.060),
        row(1024, 784, 512, "torch-compile", "f32", 0.045),
        row(65536, 784, 10, "torch-eager-network", "bf16", 0.5),
    ], "latency": [{"batch": 1, "variant": "torch-cudagraph", "median_us": 20.0, "p99_us": 30.0}],
        "ceilings": {"d2d_copy_gbytes_per_s": 3000.0, "bf16_gemm_tflops": 790.0, "bf16_gemm_n": 8192},
        "compile": [{"mode": "max-autotune-no-cudagraphs"}, {"mode": None}]}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, report in (("v.json", vec), ("t.json", tor)):
            paths.append(os.path.join(tmp, name))
            with open(paths[-1], "w") as fh:
                json.dump(report, fh)
        text = render([("vecprop", load(paths[0], "vecprop")), ("torch", load(paths[1], "torch"))])
    lines = text.splitlines()
    row1024 = next(line for line in lines if line.startswith("| 1024 |"))
    cells = [c.strip() for c in row1024.strip("|").split("|")]
    # M, gemm-only, +epilogue, fused, torch-eager, torch-compile, fused vs +epi, fused vs torch.
    assert cells[0] == "1024" and len(cells) == 8, cells
    assert cells[2].endswith("80%"), cells  # 0.040 / 0.050
    assert cells[3].endswith("160%"), cells
    assert cells[6] == "2.00×" and cells[7] == "1.80×", cells
    row64 = next(line for line in lines if line.startswith("| 64 |"))
    # Only cublas+epilogue was measured at M = 64: every other cell is a dash.
    assert row64.count("–") == 6 and "0.0100 ms · 5.14 |" in row64, row64
    assert "0.0020 ms · –" in text  # NaN throughput
    assert "784-512-256-10 | 65536 | bf16 | torch-eager-network" in text
    assert "| 1 | 20.0 / 30.0 |" in text
    assert "Ceilings measured by torch: device-to-device copy 3.00 TB/s (read + write); bf16 8192³ GEMM 790 TFLOP/s." in text
    assert ("Ceilings measured by vecprop: device-to-device copy 2.90 TB/s (read + write); "
            "bf16 8192³ GEMM 700 TFLOP/s; f32 4096³ GEMM (no TF32) 51 TFLOP/s.") in text, text
    assert "max-autotune-no-cudagraphs: 1, not compiled: 1" in text
    assert "warning" not in text
    print("self-test passed", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vecprop", metavar="vecprop.json", help="`vecprop bench --json` output")
    parser.add_argument("--torch", metavar="torch.json", help="scripts/torch_gpu_bench.py output")
    parser.add_argument("--e2e", metavar="vecprop-e2e.json",
                        help="`vecprop bench --latency --network-throughput --streaming --callers --json` output")
    parser.add_argument("--markdown", metavar="OUT.md", help="also write the tables here")
    parser.add_argument("--self-test", action="store_true", help="check the tables on synthetic data")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    if not args.vecprop and not args.torch and not args.e2e:
        parser.error("give --vecprop, --e2e, --torch or several")
    reports = []
    if args.vecprop:
        reports.append(("vecprop", load(args.vecprop, "vecprop")))
    if args.e2e:
        reports.append(("vecprop", load(args.e2e, "vecprop")))
    if args.torch:
        reports.append(("torch", load(args.torch, "torch")))
    text = render(reports)
    sys.stdout.write(text)
    if args.markdown:
        try:
            write_atomically(args.markdown, text)
        except OSError as error:
            sys.exit(f"error: cannot write {args.markdown}: {error}")
        print(f"wrote {args.markdown}", file=sys.stderr)


if __name__ == "__main__":
    main()
