"""The package's import graph: no cycles, and the layers import downwards only.

Every ``import`` and ``from ... import`` in ``src/deeper`` counts, also the ones
inside functions (a lazy import hides a cycle, it does not remove it); only
``if TYPE_CHECKING:`` blocks, which never run, are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "deeper"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` (``from pkg import sub`` counts as ``pkg.sub``)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text())
        hidden = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for b in node.body
            for n in ast.walk(b)
        }
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.Import):
                graph[mod] |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in files:
                        graph[mod].add(sub)
                    elif target in files:
                        graph[mod].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if colour.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in colour and (found := visit(n)):
                return found
        colour[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in colour and (found := visit(m)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_lazy_imports_and_skips_type_checking(tmp_path):
    pkg = tmp_path / "deeper"
    (pkg / "x").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "x" / "__init__.py").write_text("")
    (pkg / "x" / "a.py").write_text("def f():\n    from deeper.x import b\n")
    (pkg / "x" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from deeper.x import a\n"
    )
    graph = import_graph(pkg)
    assert graph["deeper.x.a"] == {"deeper.x.b"} and graph["deeper.x.b"] == set()


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _imports_of(prefix: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in import_graph().items() if m == prefix or m.startswith(prefix + ".")}


def test_the_engine_does_not_import_the_tools_for_trained_models():
    for mod, deps in _imports_of("deeper.train").items():
        assert not {d for d in deps if d.startswith("deeper.accel")}, mod


def test_data_and_models_do_not_import_the_engine_or_the_tasks():
    for layer in ("deeper.data", "deeper.models"):
        for mod, deps in _imports_of(layer).items():
            upward = {d for d in deps if d.startswith(("deeper.train", "deeper.tasks", "deeper.cli"))}
            assert not upward, f"{mod} imports {sorted(upward)}"


def test_resampling_helpers_import_no_orchestrator():
    deps = import_graph()["deeper.data.resample"]
    assert all(d.startswith(("deeper.data", "deeper.errors", "deeper.fileio")) for d in deps), deps
