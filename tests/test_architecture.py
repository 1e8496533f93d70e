"""The house: the package's import graph follows the data flow, and functions stay short.

The rooms, in the order data flows through them (ARCHITECTURE.md)::

    leaves (profiles, paths, depth_units) -> colab -> world -> dataset -> depth | loading
      -> model, losses, metrics -> viz -> evaluate, checkpoint, distributed -> baselines -> train
      -> predict -> cli -> bench, commands

A module may import from its own room or from rooms earlier in the flow; never from a
later room (that is reaching up the flow), never from a room of the same rank
(``depth`` and ``loading`` plug in side by side), and never in a circle. Imports inside
functions count the same as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import evacamel

PACKAGE = Path(evacamel.__file__).parent
MAX_FUNCTION_LINES = 60

# Rank of each room (the first component under evacamel/, or the module's own name).
RANKS = {
    "__init__": 0, "__main__": 11, "profiles": 0, "paths": 0, "depth_units": 0,
    "colab": 0.5,  # where a notebook runs: prints the profile, shows progress to everyone below
    "world": 1,
    "dataset": 2,
    "depth": 3, "loading": 3,
    "model": 4, "losses": 4, "metrics": 4,
    "viz": 5,
    "evaluate": 6, "checkpoint": 6, "distributed": 6, "footprint": 6,
    "baselines": 6.5,  # scored by evaluate's accumulator, beside a network evaluate runs
    "train": 7,
    "predict": 8, "monodepth": 8,  # the shipped monocular depth model: trained by train
    "cli": 9, "cli_args": 9,  # the commands' and benchmarks' argument types  # finds the commands by name at run time (importlib), not by import
    "bench": 10, "commands": 10,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(f): ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
            for f in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, tree: ast.Module) -> set[str]:
    """The evacamel modules ``name`` imports (resolved to modules that exist)."""
    found: set[str] = set()
    package = name if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists() \
        else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("evacamel"):
                found.add(target)
    return found


GRAPH = {name: _imports(name, tree) for name, tree in MODULES.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_rank():
    assert {_room(m) for m in MODULES} <= set(RANKS), \
        f"rooms without a rank: {sorted({_room(m) for m in MODULES} - set(RANKS))}"


def test_no_import_circles():
    # Tarjan-free: a depth-first search that reports the first cycle it meets.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if n.startswith(m + "."):  # a package importing its own submodule
                continue
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(GRAPH):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_imports_follow_the_data_flow():
    bad = []
    for m, targets in GRAPH.items():
        here = _room(m)
        for t in targets:
            there = _room(t)
            if there == here or there == "__init__":
                continue
            if RANKS[there] >= RANKS[here]:
                bad.append(f"{m} imports {t} ({there} is not upstream of {here})")
    assert not bad, "\n".join(bad)


def test_functions_are_short():
    long = []
    for m, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    body = body[1:]  # the docstring does not count
                if body and body[-1].end_lineno - body[0].lineno + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{m}.{node.name}: {body[-1].end_lineno - body[0].lineno + 1} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
