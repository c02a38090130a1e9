#!/usr/bin/env python3
"""check-layers.py: fails if the library's top-level modules import each other in a circle.

Data flows one way in vecprop: model (graph) -> plan -> device executors -> kernels, with the
vocabulary devices implement (execution), measurement helpers (stats) and file helpers (fs)
beneath their users, and the benchmark engine (bench) above the runtime. This script reads
every `crate::<module>` path in src/ (comments excluded, the binary's src/cli and src/main.rs
excluded), builds the graph between top-level modules, and reports any cycle.

    scripts/check-layers.py [SRC_DIR]   # prints the layers, bottom first; exit 1 on a cycle
"""
import pathlib
import re
import sys

SRC = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "src")
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\buse crate::\{([^;]*)\}", re.S)


def top_module(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def code_of(path: pathlib.Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        stripped = line.lstrip()
        if stripped.startswith("//"):
            continue
        lines.append(line.split(" // ")[0])
    return "\n".join(lines)


def edges() -> dict:
    graph: dict = {}
    for path in sorted(SRC.rglob("*.rs")):
        module = top_module(path)
        if module in ("main", "cli", "lib"):
            continue
        code = code_of(path)
        targets = set(PATH.findall(code))
        for group in GROUP.findall(code):
            targets |= {t.strip().split("::")[0] for t in group.split(",") if t.strip()}
        graph.setdefault(module, set())
        for target in targets - {module}:
            if (SRC / target).is_dir() or (SRC / f"{target}.rs").is_file():
                graph[module].add(target)
    return graph


def layers(graph: dict) -> list:
    """Kahn's algorithm bottom-up; what is left over lies on or above a cycle."""
    remaining = {m: set(d) for m, d in graph.items()}
    order = []
    while True:
        ready = sorted(m for m, deps in remaining.items() if not deps)
        if not ready:
            break
        order.append(ready)
        for m in ready:
            del remaining[m]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order, remaining


def main() -> int:
    graph = edges()
    order, remaining = layers(graph)
    for depth, modules in enumerate(order):
        print(f"layer {depth}: {', '.join(modules)}")
    if remaining:
        print("check-layers: import cycle among these modules (each -> what it still imports):",
              file=sys.stderr)
        for module, deps in sorted(remaining.items()):
            print(f"  {module} -> {', '.join(sorted(deps))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
