"""The package's shape: imports run only downstream of the data flow, no private name crosses modules,
files stay small, and every registry lists its entries.

The data flow of ``../shared/DESIGN.md`` as layers, upstream first. A module may import from its own
package and from packages of earlier layers; packages of one layer do not import each other. Imports under
``if TYPE_CHECKING:`` never run and are not counted; function-local imports run and are.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from srilab.cli import main

SRC = Path(__file__).resolve().parents[1] / "src" / "srilab"

#: The one place the allowed order is written (README, "Layout", describes the same order).
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
    frozenset({"report"}),
    frozenset({"study"}),
    frozenset({"cli"}),
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
MAX_LINES = 450


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
