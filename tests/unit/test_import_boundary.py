"""The UI side imports without torch, and engine/ never imports the UI (AST scan, like import-linter)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIGHT_MODULES = ("llamahome_tui.cli", "llamahome_tui.commands", "llamahome_tui.run_commands",
                 "llamahome_tui.headless", "engine.api", "engine.control", "engine.monitor", "engine.worker",
                 "engine.chat", "llamahome_tui.chat_commands")
HEAVY = ("torch", "transformers", "peft")
FORBIDDEN_IN_ENGINE = ("llamahome_tui", "textual", "rich")


def test_ui_side_and_engine_facade_import_without_torch() -> None:
    code = (f"import sys\nfor name in {LIGHT_MODULES!r}: __import__(name)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _imported_roots(path: Path) -> set[str]:
    """The top-level package of every import in a file, including imports inside functions."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            roots.add(str(node.args[0].value).split(".")[0])
    return roots


ENGINE_FILES = sorted((ROOT / "engine").rglob("*.py"))


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_never_imports_the_ui(path: Path) -> None:
    assert not _imported_roots(path) & set(FORBIDDEN_IN_ENGINE)


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from rich.console import Console\n    import textual.app\n"
                      "    importlib.import_module('llamahome_tui.cli')\n")
    assert _imported_roots(sample) >= {"rich", "textual", "llamahome_tui"}
