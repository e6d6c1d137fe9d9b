"""Six families train LoRA and full with no per-family setting, export, and the export stops after an answer.

Each tiny random model is saved as its family ships (``tests/families.py``: real chat templates
of Qwen2, Phi-3, Gemma-2 and Llama-3; none for Mistral's base model and GPT-2). A run goes through
the worker's own job (``engine.jobs.train_job``) on conversations with a system turn and two
answers; then the final checkpoint is exported (adapter, merged or model) and a client renders a
conversation with ``apply_chat_template``: the token after the answer is one the exported
``generation_config.json`` stops at, and the run trained on it. The fast set runs Mistral with
LoRA (no template: markers added, their embedding and untied head rows trained in the adapter),
Phi-3 with LoRA (a template that is not prefix-consistent) and GPT-2 in full (no template, tied
Conv1D model); the whole matrix is marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from families import FAMILIES, build_family
from support import write_jsonl

from engine.config import Config, config_to_dict
from engine.events import Step
from engine.store import RunStore
from engine.train.export import export_checkpoint
from engine.workspace import Workspace

QUESTION, ANSWER = "What is the capital of Peru?", "The capital of Peru is Lima."
FAST = {("mistral", "lora"), ("phi3", "lora"), ("gpt2", "full")}
CASES = [pytest.param(name, method, marks=() if (name, method) in FAST else pytest.mark.slow)
         for name in FAMILIES for method in ("lora", "full")]


def conversations(count: int) -> list[dict]:
    """Two-answer conversations that open with a system turn."""
    records = []
    for i in range(count):
        a, b = i % 7, i % 5
        records.append({"messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"{a} + {b} = {a + b}"},
            {"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]})
    return records


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("family-data") / "chat.jsonl", conversations(24))


def train(model_dir: Path, method: str, data: Path, root: Path) -> tuple[Path, list]:
    """Run the worker's train job on ``model_dir`` for a few steps; returns the run folder and its events."""
    from dataclasses import replace

    from engine import jobs

    base = Config()
    config = replace(base, model=replace(base.model, path=str(model_dir)),
                     training=replace(base.training, method=method, max_steps=4, batch_size=4, learning_rate=5e-3,
                                      log_steps=1, precision="fp32"),
                     data=replace(base.data, max_length=96, validation_split=0.0),
                     eval=replace(base.eval, steps=0, generate_samples=0, sample_steps=0),
                     checkpoint=replace(base.checkpoint, save_steps=1000))
    workspace = Workspace(root / "ws").ensure()
    store = RunStore(workspace.db_path)
    store.create_run("run1", "train", {**config_to_dict(config), "job": {"data": str(data), "eval_data": ""}},
                     str(model_dir), str(data), output_dir=str(workspace.run_dir("run1")))
    run = store.get_run("run1")
    store.close()
    events: list = []
    jobs.train_job(run, workspace, events.append, lambda recipe: None)
    return Path(run.output_dir), events


@pytest.mark.parametrize(("name", "method"), CASES)
def test_family_trains_exports_and_stops_after_the_answer(name: str, method: str, chat_file: Path,
                                                          tmp_path: Path) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    model_dir = build_family(name, tmp_path / name)
    run_dir, events = train(model_dir, method, chat_file, tmp_path)
    losses = [e.loss for e in events if isinstance(e, Step)]
    assert len(losses) == 4 and all(loss == loss for loss in losses)
    checkpoint = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    out = tmp_path / "export"
    merge = method == "lora"
    assert export_checkpoint(checkpoint, out, merge=merge, config=Config())["kind"] == ("merged" if merge else "model")
    client = AutoTokenizer.from_pretrained(str(out))
    stops = GenerationConfig.from_pretrained(str(out)).eos_token_id
    stops = [stops] if isinstance(stops, int) else stops
    ids = client.apply_chat_template([{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}],
                                     tokenize=True, return_dict=False)
    answer = client.encode(ANSWER, add_special_tokens=False)
    at = _find(ids, answer)
    assert at >= 0, client.decode(ids)
    assert ids[at + len(answer)] in stops, (client.convert_ids_to_tokens(ids), stops)
    _check_loads(out, client)
    if merge:
        _check_adapter_matches_merged(checkpoint, out, model_dir, tmp_path / "adapter")
    added = FAMILIES[name].template is None
    assert (len(client) > json.loads((model_dir / "config.json").read_text()).get("vocab_size", 0)) == added


def _find(ids: list[int], part: list[int]) -> int:
    """Where ``part`` last starts in ``ids`` (-1 if nowhere)."""
    for start in range(len(ids) - len(part), -1, -1):
        if ids[start:start + len(part)] == part:
            return start
    return -1


def _check_loads(out: Path, tokenizer) -> None:
    """The export loads in plain transformers with embeddings for every token of its tokenizer."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.get_input_embeddings().weight.shape[0] >= len(tokenizer)


def _check_adapter_matches_merged(checkpoint: Path, merged: Path, base: Path, out: Path) -> None:
    """The adapter export over its base (resized to the tokenizer, as peft documents) gives the merged logits,
    added tokens included: their trained rows travel in the adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export_checkpoint(checkpoint, out, merge=False, config=Config())
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(base))
    model.resize_token_embeddings(len(tokenizer))
    adapter = PeftModel.from_pretrained(model, str(out)).eval()
    ids = torch.tensor([tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}],
                                                      add_generation_prompt=True, tokenize=True, return_dict=False)])
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(str(merged)).eval()(input_ids=ids).logits
        torch.testing.assert_close(adapter(input_ids=ids).logits, expected, rtol=0, atol=1e-4)


def cli(tmp_path: Path, *args: str):
    """The real command line, headless, in a workspace of its own."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LLAMAHOME_")}
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(tmp_path / "ws"), *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_record_gemmas_template_refuses_stops_train_before_a_run_and_validate_lists_it(tmp_path: Path) -> None:
    model_dir = build_family("gemma2", tmp_path / "gemma2")
    lines = conversations(2) + [{"text": "The capital of Peru is Lima."}]  # sft: a lone assistant turn
    data = write_jsonl(tmp_path / "chat.jsonl", lines)
    result = cli(tmp_path, "train", str(data), "--model", str(model_dir), "--set", "training.max_steps=1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"{data}:3: the chat template ({model_dir}/tokenizer_config.json) cannot render this record: " \
           "Conversation roles must alternate" in result.stderr
    assert not (tmp_path / "ws" / "runs").exists() or not any((tmp_path / "ws" / "runs").iterdir())
    checked = cli(tmp_path, "data", "validate", str(data), "--model", str(model_dir))
    assert checked.returncode == 1 and f"{data}:3: the chat template" in checked.stdout
    assert "2 valid, 1 invalid" in checked.stdout
