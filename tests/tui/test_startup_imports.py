"""The console starts light: heavy modules load only when a screen needs them, and the engine only through its facade.

- Importing the app pulls in no numpy, sqlite-utils, pandas, torch, transformers or data statistics.
- Running it on a workspace with a history, the first frame and every screen but the datasets
  report leave numpy and sqlite-utils unloaded (reading the history needs only sqlite3); the
  report loads numpy (its statistics need it); torch and transformers never load.
- Console modules (the app, its screens and widgets) import the engine only through
  ``engine.api`` and ``engine.events`` (an AST scan, as import-linter would check a contract).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from history import fake_run

from engine.api import Engine
from engine.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "sqlite_utils", "pandas", "torch", "transformers")
CONSOLE = ROOT / "llamahome_tui"
CONSOLE_FILES = sorted([*(CONSOLE / "screens").glob("*.py"), *(CONSOLE / "widgets").glob("*.py"),
                        *(CONSOLE / name for name in ("app.py", "messages.py", "palette.py", "place.py",
                                                      "textual_hooks.py", "terminal_watch.py"))])
ENGINE_DOORS = {"engine.api", "engine.events"}


def run_python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_app_import_leaves_heavy_modules_unloaded() -> None:
    code = ("import sys, json, llamahome_tui.app, llamahome_tui.cli; llamahome_tui.cli.build_parser(); "
            f"print(json.dumps([m for m in {(*HEAVY, 'engine.data.stats', 'llamahome_tui.widgets.data_report')!r} "
            "if m in sys.modules]))")
    assert json.loads(run_python(code)) == []


CONSOLE_RUN = """
import json, sys
from pathlib import Path
from engine.api import Engine, Workspace
from llamahome_tui.app import LlamaHomeApp
from llamahome_tui.screens.base import ConsoleState

HEAVY = %r
def loaded():
    return [m for m in HEAVY if m in sys.modules]

seen = {}
async def visit(pilot):
    await pilot.pause(0.2)
    seen["first frame"] = loaded()
    for key, name in (("3", "training"), ("4", "checkpoints"), ("2", "config"), ("colon", "palette")):
        await pilot.press(key)
        await pilot.pause(0.3)
        seen[name] = loaded()
    await pilot.press("escape", "escape", "1")
    await pilot.pause(0.5)
    await pilot.app.workers.wait_for_complete()
    seen["datasets report"] = loaded()
    pilot.app.exit()

workspace = Workspace(Path(sys.argv[1]))
engine = Engine(workspace)
state = ConsoleState(config_file=workspace.root / "config.toml", data_roots=[Path(sys.argv[2])])
LlamaHomeApp(engine, state, mode="runs").run(headless=True, size=(80, 24), auto_pilot=visit)
print(json.dumps(seen))
"""


def test_heavy_modules_load_only_when_a_screen_needs_them(workspace: Workspace, engine: Engine, data_dir: Path) -> None:
    fake_run(engine, "20260101-000000-aaaa", 20, 3.0)
    seen = json.loads(run_python(CONSOLE_RUN % (HEAVY,), str(workspace.root), str(data_dir)))
    for moment in ("first frame", "training", "checkpoints", "config", "palette"):
        assert seen[moment] == [], f"{moment}: {seen[moment]}"
    assert seen["datasets report"] == ["numpy"], "the report's statistics need numpy; nothing else heavy"


def engine_imports(path: Path) -> set[str]:
    """Every ``engine...`` module a file imports, including imports inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "engine")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "engine":
                found.update(f"engine.{alias.name}" for alias in node.names)
            elif node.module.startswith("engine."):
                found.add(node.module)
    return found


@pytest.mark.parametrize("path", CONSOLE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_console_modules_reach_the_engine_only_through_its_facade(path: Path) -> None:
    assert engine_imports(path) <= ENGINE_DOORS, engine_imports(path) - ENGINE_DOORS


def test_the_scan_sees_engine_imports_anywhere(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import engine.store\nfrom engine import config\ndef f():\n    from engine.data.stats import x\n")
    assert engine_imports(sample) == {"engine.store", "engine.config", "engine.data.stats"}
