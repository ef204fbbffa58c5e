"""Layers point down: the runtime in synthkg/ imports nothing from retrieval/, training/ or eval/, at module
top or inside a function; only the entry points (the CLI and the KnowledgeGraph facade) sit above them all.
Read from the source with `ast`, so an import hidden in a function counts too. And no two modules import
each other, however indirectly, when they load (imports for type checking only do not run)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("retrieval", "training", "eval")
PACKAGES = ("synthkg", *UPPER)
ENTRY_POINTS = {"synthkg/cli.py", "synthkg/api.py"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def runtime_files() -> list[Path]:
    files = sorted((ROOT / "synthkg").rglob("*.py"))
    return [p for p in files if p.relative_to(ROOT).as_posix() not in ENTRY_POINTS]


def test_the_runtime_imports_nothing_from_the_layers_above() -> None:
    upward = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in runtime_files()
        for name in imported_modules(path)
        if name.split(".")[0] in UPPER or name in ("synthkg.cli", "synthkg.api")
    }
    assert not upward, sorted(upward)


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from training.student import x\n    import eval.cli\n", encoding="utf-8")
    assert imported_modules(source) == {"training.student", "eval.cli"}
    assert len(runtime_files()) > 20  # the scan found the package


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(path: Path) -> set[str]:
    """What importing the module imports: statements at module level, in `if`/`try` blocks too, but not
    under `if TYPE_CHECKING` nor inside functions. `from a import b` counts `a` and, if it is a module,
    `a.b`."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body)
    return names


def import_graph() -> nx.DiGraph:
    modules = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, t) for t in load_time_imports(path) if t in modules and t != name)
    return graph


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph.number_of_edges() > 100  # the scan found the imports
    assert list(nx.simple_cycles(graph)) == []


def test_the_cycle_scan_skips_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
        "try:\n    from c import d\nexcept ImportError:\n    import e\ndef f():\n    import g\n",
        encoding="utf-8",
    )
    assert load_time_imports(source) == {"typing", "typing.TYPE_CHECKING", "b", "c", "c.d", "e"}
