"""train-export: an adapter loads with peft, a merged model with plain transformers, both with a tokenizer."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_methods import method_config, new_recipe, recipe_data

from engine.errors import UserError
from engine.events import CheckpointSaved
from engine.train.export import export_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lora_checkpoint(tiny_model_dir, chat_files, tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """A LoRA checkpoint after 3 steps, and the trained model's logits on a fixed input."""
    config = method_config("lora")
    config = replace(config, training=replace(config.training, max_steps=3))
    events: list = []
    recipe = new_recipe(config, tiny_model_dir, recipe_data(tiny_model_dir, chat_files),
                        tmp_path_factory.mktemp("run") / "checkpoints", events)
    recipe.train()
    recipe.model.eval()
    with torch.no_grad():
        logits = recipe.model(input_ids=_ids()).logits
    return Path([e for e in events if isinstance(e, CheckpointSaved)][-1].path), logits


def _ids() -> torch.Tensor:
    return torch.arange(3, 40).reshape(1, -1)


def _logits(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=_ids()).logits


def test_adapter_export_loads_with_peft(lora_checkpoint, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint, expected = lora_checkpoint
    result = export_checkpoint(checkpoint, tmp_path / "adapter", merge=False, config=method_config("lora"))
    assert result["kind"] == "adapter"
    out = tmp_path / "adapter"
    assert (out / "adapter_model.safetensors").is_file() and not (out / "trainer_state.pt").exists()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(out))
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=1e-5)
    assert AutoTokenizer.from_pretrained(str(out)).pad_token is not None


def test_merged_export_loads_in_plain_transformers(lora_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM

    checkpoint, expected = lora_checkpoint
    out = tmp_path / "merged"
    assert export_checkpoint(checkpoint, out, merge=True, config=method_config("lora"))["kind"] == "merged"
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert (out / "tokenizer.json").is_file()
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(str(out))), expected,
                               rtol=0, atol=1e-4)


def test_export_never_replaces_an_existing_output(lora_checkpoint, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        export_checkpoint(lora_checkpoint[0], out, merge=True, config=method_config("lora"))
    assert (out / "keep.txt").read_text() == "mine"


def _cli(*args: str, workspace: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLAMAHOME_HOME": str(workspace)}
    return subprocess.run([sys.executable, "-m", "llamahome_tui", "--no-ui", *args], capture_output=True,
                          text=True, timeout=240, cwd=ROOT, env=env)


def test_cli_bad_checkpoint_is_one_line_exit_2(tmp_path):
    result = _cli("train-export", str(tmp_path / "nope"), workspace=tmp_path / "ws")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such checkpoint folder"]


@pytest.mark.slow
def test_cli_merges_in_a_worker_job(lora_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "cli-merged"
    result = _cli("train-export", str(lora_checkpoint[0]), "--merge", "--output", str(out), workspace=tmp_path / "ws")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Exported to {out}" in result.stdout
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(str(out))), lora_checkpoint[1],
                               rtol=0, atol=1e-4)
