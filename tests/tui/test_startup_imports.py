"""Importing the console app must not pull in numpy, sqlite-utils, torch, transformers or the data statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_app_import_leaves_heavy_modules_unloaded() -> None:
    code = ("import sys, json, llamahome_tui.app; "
            "print(json.dumps([m for m in ('engine.data.stats', 'llamahome_tui.widgets.data_report', "
            "'numpy', 'sqlite_utils', 'pandas', 'torch', 'transformers') if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
