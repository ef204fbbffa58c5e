"""Layers point down: the runtime in synthkg/ imports nothing from retrieval/, training/ or eval/, at module
top or inside a function; only the entry points (the CLI and the KnowledgeGraph facade) sit above them all.
Read from the source with `ast`, so an import hidden in a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("retrieval", "training", "eval")
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
