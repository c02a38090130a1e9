#!/usr/bin/env python3
"""check-layers.py: fails if the library's modules import each other in a circle, at any level.

Data flows one way in vecprop: model (graph) -> plan -> device executors -> kernels, with the
vocabulary devices implement (execution), measurement helpers (stats) and file helpers (fs)
beneath their users, and the benchmark engine (bench) above the runtime. The same holds
inside every folder: the modules of src/device/cuda, src/io, src/graph, ... form layers too.

The script resolves every `crate::`, `super::` and `self::` path in src/ (and every `use` of
a child module) to the module it names, comments excluded, the binary's src/cli and
src/main.rs excluded. For each folder it builds the graph between that folder's direct
children (a file, or a subfolder with everything below it) and reports any cycle. It also
fails on a path into the crate root's re-exports (`crate::Result`, `crate::Device`) from
inside the library: those arrows point back up to lib.rs; name the defining module instead.

    scripts/check-layers.py [SRC_DIR]   # prints each folder's layers, bottom first; exit 1 on a cycle
    scripts/check-layers.py --self-test # the checker against small trees with and without cycles
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
USE = re.compile(r"\buse\s+([^;]+);", re.S)
INLINE = re.compile(r"\b(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+")
EXCLUDED = ("main", "cli")


def module_path(path: pathlib.Path) -> tuple:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def modules() -> dict:
    """Every module of the library: its path (a tuple) -> its file."""
    found = {}
    for path in sorted(SRC.rglob("*.rs")):
        mod = module_path(path)
        if mod and mod[0] in EXCLUDED:
            continue
        found[mod] = path
    # `#[path = "cuda_stub.rs"] mod cuda;`: the stub is the same module as the real one.
    return found


def code_of(path: pathlib.Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("//"):
            continue
        lines.append(line.split(" // ")[0])
    return "\n".join(lines)


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"] (aliases and globs dropped)."""
    tree = re.sub(r"\s+", "", tree)
    depth, start, prefix = 0, None, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                prefix, start = tree[:i], i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                inner, out, level, begin = tree[start:i], [], 0, 0
                for j, c in enumerate(inner + ","):
                    if c in "{":
                        level += 1
                    elif c in "}":
                        level -= 1
                    elif c == "," and level == 0:
                        part = inner[begin:j]
                        begin = j + 1
                        if part:
                            out += [prefix + p if p != "self" else prefix.rstrip(":") for p in expand(part)]
                return out
    return [tree.split(" as ")[0].split("as")[0] if False else re.sub(r"as[A-Za-z_0-9]+$", "", tree)]


def resolve(segments: list, here: tuple, mods: dict):
    """The module a path names, or ("<root item>", name) for a crate-root re-export."""
    head, rest = segments[0], segments[1:]
    if head == "crate":
        base = ()
    elif head == "self":
        base = here
    elif head == "super":
        base = here[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif here + (head,) in mods:
        base, rest = here + (head,), rest  # a child module, by its bare name
    else:
        return None  # an external crate or a name imported earlier
    target = base
    for seg in rest:
        if target + (seg,) in mods:
            target = target + (seg,)
        else:
            break
    if head == "crate" and target == () and rest:
        return ("<root item>", rest[0])
    return target


def edges(mods: dict):
    found, upward = set(), []
    for mod, path in mods.items():
        code = code_of(path)
        paths = []
        for tree in USE.findall(code):
            paths += [p for p in expand(tree.strip()) if p]
        paths += INLINE.findall(code)
        for p in paths:
            segments = [s for s in p.split("::") if s and s != "*"]
            if not segments:
                continue
            target = resolve(segments, mod, mods)
            if target is None:
                continue
            if target[:1] == ("<root item>",):
                if mod:
                    upward.append(f"{'/'.join(mod)} uses crate::{target[1]} (a lib.rs re-export)")
                continue
            found.add((mod, target))
    return found, upward


def folder_graphs(found: set) -> dict:
    """folder -> {child -> set of siblings it imports}."""
    graphs: dict = {}
    for source, target in found:
        common = 0
        while common < min(len(source), len(target)) and source[common] == target[common]:
            common += 1
        if common >= len(source) or common >= len(target):
            continue  # one contains the other: a parent and its own child
        folder = source[:common]
        graph = graphs.setdefault(folder, {})
        graph.setdefault(source[common], set()).add(target[common])
        graph.setdefault(target[common], set())
    return graphs


def layers(graph: dict):
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


def check(src: pathlib.Path) -> int:
    global SRC
    SRC = src
    mods = modules()
    found, upward = edges(mods)
    status = 0
    for folder, graph in sorted(folder_graphs(found).items()):
        name = "src/" + "/".join(folder) if folder else "src"
        order, remaining = layers(graph)
        print(f"{name}: " + " < ".join(", ".join(level) for level in order))
        if remaining:
            status = 1
            print(f"check-layers: import cycle in {name} (each -> what it still imports):", file=sys.stderr)
            for module, deps in sorted(remaining.items()):
                print(f"  {module} -> {', '.join(sorted(deps))}", file=sys.stderr)
    for line in sorted(set(upward)):
        status = 1
        print(f"check-layers: arrow back up to the crate root: {line}", file=sys.stderr)
    return status


def self_test() -> int:
    """Each tree: (files, the exit status the checker must give)."""
    import contextlib
    import io
    import tempfile

    trees = [
        ({"lib.rs": "mod a;", "a/mod.rs": "mod x; mod y;", "a/x.rs": "use super::y::Y;",
          "a/y.rs": "pub struct Y;"}, 0),
        ({"lib.rs": "mod a;", "a/mod.rs": "mod x; mod y;", "a/x.rs": "use super::y::Y; pub struct X;",
          "a/y.rs": "use super::{x::X}; pub struct Y;"}, 1),
        ({"lib.rs": "mod a; mod b;", "a.rs": "fn f() { crate::b::g() }",
          "b.rs": "use crate::a; pub fn g() {}"}, 1),
        ({"lib.rs": "mod a; pub use a::T;", "a.rs": "pub struct T;", "b.rs": "use crate::T;"}, 1),
    ]
    for files, want in trees:
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            for name, text in files.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text(text)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                got = check(root)
        if got != want:
            print(f"check-layers self-test: {sorted(files)} gave {got}, want {want}", file=sys.stderr)
            return 1
    print(f"check-layers self-test: {len(trees)} trees OK")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(check(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else SRC))
