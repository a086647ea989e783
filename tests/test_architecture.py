"""The package's shape: imports run only downstream of the data flow, no module imports itself round a loop,
no private name crosses modules, files and functions stay small, and every registry lists its entries.

The data flow of ``../shared/DESIGN.md`` as layers, upstream first (:data:`LAYERS`):

    errors -> the root (registry, stats, io, checks) -> data -> attacks -> models -> sampling -> judges -> toy
    -> sri, defenses -> study (configure and run) -> analysis (read a finished run directory) -> report (render)
    -> pipeline (run, then analyse, then report) -> cli

A module may import from its own package and from packages of earlier layers; packages of one layer do not
import each other; and no chain of imports between modules comes back to where it started (not even within
one package). Imports under ``if TYPE_CHECKING:`` never run and are not counted; function-local imports run
and are.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from srilab.cli import main

SRC = Path(__file__).resolve().parents[1] / "src" / "srilab"

#: The one place the allowed order is written (docs/architecture.md draws the same order).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),  # the error type every layer raises
    frozenset({"", "registry", "stats", "io", "checks"}),  # the package root, the registry type, statistics, file
    # reading, the checks of user values
    frozenset({"data"}),
    frozenset({"attacks"}),
    frozenset({"models"}),
    frozenset({"sampling"}),
    frozenset({"judges"}),
    frozenset({"toy"}),  # the embedded world: data, a model pair and its oracle judge
    frozenset({"sri", "defenses"}),
    frozenset({"study"}),  # configure and run: the config, the matrix, the protocol, the runner, the run directory
    frozenset({"analysis"}),  # the analysis of a finished run, from its run directory alone (never by the run)
    frozenset({"report"}),  # renders the analysis: report.html, summary.json, the terminal summary
    frozenset({"pipeline"}),  # run, then analyse, then report: what `srilab run / demo / sweep / ablate` do
    frozenset({"cli"}),
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
MAX_LINES = 450
MAX_FUNCTION_LINES = 80


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _runtime_imports(tree: ast.Module):
    """(node, module imported from, names) of every import that runs (not under ``if TYPE_CHECKING``)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("srilab"):
            yield node, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("srilab"):
                    yield node, alias.name, []


def test_every_package_has_a_layer():
    packages = {_package(m) for m, _ in _modules()}
    assert packages <= set(RANK), f"packages without a layer in LAYERS: {sorted(packages - set(RANK))}"


def test_no_import_runs_upstream_and_no_private_name_crosses_modules():
    upstream, private = [], []
    for module, path in _modules():
        pkg = _package(module)
        for node, target, names in _runtime_imports(ast.parse(path.read_text())):
            dst = _package(target)
            if dst != pkg and (RANK[dst] > RANK[pkg] or (RANK[dst] == RANK[pkg])):
                upstream.append(f"{path.relative_to(SRC)}:{node.lineno} {module} -> {target}")
            if target != module:
                private += [f"{path.relative_to(SRC)}:{node.lineno} {target}.{n}" for n in names if n.startswith("_")]
    assert not upstream, "imports that run upstream of the data flow:\n" + "\n".join(upstream)
    assert not private, "private names imported across modules:\n" + "\n".join(private)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports at run time (``from pkg import mod`` names the module ``pkg.mod``)."""
    modules = dict(_modules())
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for _, target, names in _runtime_imports(ast.parse(path.read_text())):
            submodules = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
            edges |= submodules
            if (not names or len(submodules) < len(names)) and target in modules:
                edges.add(target)
        graph[module] = edges - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_modules():
    cycles = _cycles(_import_graph())
    assert not cycles, "modules that import each other (directly or round a loop):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_finder_sees_a_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_run_never_analyses_or_reports():
    """The run (``srilab.study``) reads no analysis and no report, not even function-locally."""
    graph = _import_graph()
    leaks = [f"{m} -> {t}" for m, targets in graph.items() if _package(m) == "study"
             for t in targets if _package(t) in ("analysis", "report", "pipeline")]
    assert not leaks, "the run imports what reads or renders a finished run:\n" + "\n".join(leaks)


def test_the_checker_sees_a_violation(tmp_path):
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from srilab.study import x\n"
        "def f():\n    from srilab.study.demo import _clean\n"
    )
    found = [(t, n) for _, t, n in _runtime_imports(tree)]
    assert found == [("srilab.study.demo", ["_clean"])]  # the function-local one counts, the typing one not


def test_source_files_stay_small():
    big = [f"{p.relative_to(SRC)}: {n}" for _, p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not big, f"source files over {MAX_LINES} lines (one idea per file):\n" + "\n".join(big)


def test_functions_stay_short():
    functions = [(p, n) for _, p in _modules() for n in ast.walk(ast.parse(p.read_text()))
                 if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    long = [f"{p.relative_to(SRC)}:{n.lineno} {n.name}: {size}" for p, n in functions
            if (size := n.end_lineno - n.lineno + 1) > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n" + "\n".join(long)


@pytest.mark.parametrize("kind", ["attacks", "judges", "defenses", "detectors", "datasets"])
def test_list_prints_every_registered_name_with_its_source(kind, capsys):
    from srilab.registry import REGISTRIES

    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    registry = REGISTRIES[kind]
    assert len(registry) >= 4
    for entry in registry.entries():
        assert entry.source, f"{kind} {entry.name} has no source"
        assert f"{entry.name}  " in out and entry.source in out


def test_list_of_an_unknown_kind_is_one_line(capsys):
    assert main(["list", "widgets"]) == 2
    err = capsys.readouterr().err
    assert "unknown kind 'widgets'" in err and len(err.strip().splitlines()) == 1
