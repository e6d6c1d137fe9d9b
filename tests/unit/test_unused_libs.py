"""A train worker hides the quantization libraries its method does not use, and only those."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.unused_libs import hide, unused_quantizers

PROBE = """
import importlib.util, json, sys
from engine.unused_libs import hide_for_train_job
hidden = hide_for_train_job(json.loads(sys.argv[1]))
print(json.dumps({"hidden": hidden,
                  "found": {n: importlib.util.find_spec(n) is not None for n in ("bitsandbytes", "torchao")}}))
"""


@pytest.mark.parametrize(("method", "hidden"), [("lora", ["bitsandbytes", "torchao"]),
                                                ("full", ["bitsandbytes", "torchao"]),
                                                ("qlora", ["torchao"]), ("qat", ["bitsandbytes"])])
def test_each_method_keeps_only_its_own_library(method, hidden):
    assert unused_quantizers(method, []) == hidden


def test_a_prequantized_model_keeps_every_library(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "torchao"}}))
    assert unused_quantizers("lora", [tmp_path]) == []
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert unused_quantizers("lora", [tmp_path / "missing", tmp_path]) == ["bitsandbytes", "torchao"]


def test_hide_leaves_a_library_already_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", sys)  # stands for "already imported"
    monkeypatch.delitem(sys.modules, "torchao", raising=False)
    assert hide(["bitsandbytes", "torchao"]) == ["torchao"]
    assert sys.modules["bitsandbytes"] is sys and sys.modules["torchao"] is None
    with pytest.raises(ImportError):
        import torchao  # noqa: F401
    monkeypatch.delitem(sys.modules, "torchao")


@pytest.mark.parametrize(("method", "found"), [("lora", {"bitsandbytes": False, "torchao": False}),
                                               ("qlora", {"bitsandbytes": True, "torchao": False}),
                                               ("qat", {"bitsandbytes": False, "torchao": True})])
def test_in_a_fresh_process_the_checks_libraries_make_see_the_result(method, found, tmp_path):
    config = {"training": {"method": method}, "model": {"path": str(tmp_path)}, "job": {"resume_from": None}}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(config)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    assert json.loads(done.stdout)["found"] == found
