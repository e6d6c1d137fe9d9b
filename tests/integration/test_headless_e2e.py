"""End to end through the real CLI and worker processes, on a tiny model and tiny data."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store import RunStore
from engine.workspace import Workspace

FAST = ["--set", "training.batch_size=8", "--set", "training.learning_rate=5e-3",
        "--set", "training.warmup_steps=2", "--set", "eval.steps=6", "--set", "eval.generate_samples=4",
        "--set", "checkpoint.save_steps=6", "--set", "lora.r=8", "--set", "training.log_steps=1"]


def cli(workspace: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the headless CLI (stdout is a pipe, so it prints plain lines)."""
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def runs(workspace: Path) -> list[dict]:
    return json.loads(cli(workspace, "runs", "--json").stdout)


@pytest.fixture(scope="module")
def trained(tiny_model_dir, chat_files, tmp_path_factory) -> tuple[Path, dict]:
    """One finished LoRA run on the tiny model."""
    workspace = tmp_path_factory.mktemp("ws")
    train, held = chat_files
    result = cli(workspace, "train", str(train), "--model", str(tiny_model_dir), "--eval-data", str(held),
                 "--max-steps", "12", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\r" not in result.stdout
    return workspace, runs(workspace)[0]


def test_train_finishes_and_records_history(trained):
    workspace, run = trained
    assert run["status"] == "finished" and run["kind"] == "train"
    metrics = run["final_metrics"]
    assert metrics["steps"] == 12
    assert metrics["last_loss"] < metrics["first_loss"]
    store = RunStore(Workspace(workspace).db_path)
    steps = [m for m in store.metrics(run["id"]) if m["loss"] is not None]
    assert [m["step"] for m in steps] == list(range(1, 13))
    checkpoints = store.checkpoints(run["id"])
    assert [c.step for c in checkpoints] == [6, 12]
    assert all(Path(c.path, "adapter_model.safetensors").is_file() for c in checkpoints)


def test_the_history_records_the_precision_auto_chose_and_the_threads(trained):
    from engine.threads import physical_cores
    from engine.train.precision import detect

    _, run = trained
    runtime = run["runtime"]
    expected = "bf16" if detect("cpu").cpu_native_bf16 else "fp32"
    assert runtime["precision"] == expected, runtime
    assert runtime["precision_reason"].startswith("auto: ") and runtime["cpu"] == detect("cpu").describe_cpu()
    assert runtime["threads"] == physical_cores(), "a run alone takes every physical core"
    assert "computing" in runtime["threads_reason"]


def test_adapter_loads_with_plain_peft_and_eval_beats_base(trained, tiny_model_dir, chat_files):
    workspace, run = trained
    final = Path(run["final_metrics"]["final_path"])
    code = ("import sys; from peft import PeftModel; from transformers import AutoModelForCausalLM;"
            f"base = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r});"
            f"model = PeftModel.from_pretrained(base, {str(final)!r}); print(type(model).__name__)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert "PeftModel" in loaded.stdout
    scores = {}
    for name, target in (("base", tiny_model_dir), ("tuned", final)):
        result = cli(workspace, "train-eval", str(target), str(chat_files[1]), "--json")
        assert result.returncode == 0, result.stderr
        scores[name] = json.loads(result.stdout)
    assert scores["tuned"]["eval_loss"] < scores["base"]["eval_loss"]
    assert scores["tuned"]["perplexity"] > 1.0


def test_sigterm_checkpoints_then_resume_finishes(tiny_model_dir, chat_files, tmp_path):
    from engine.api import Engine
    from engine.config import config_to_dict, load_config

    train, held = chat_files
    overrides = [f"model.path={json.dumps(str(tiny_model_dir))}", "training.max_steps=400",
                 "training.batch_size=4", "checkpoint.save_steps=1000", "eval.steps=0",
                 "eval.generate_samples=0"]
    config = config_to_dict(load_config(overrides=overrides))
    engine = Engine(Workspace(tmp_path))
    stored = {**config, "job": {"data": str(train), "eval_data": str(held)}}
    run_id = engine.start_run("train", stored, str(tiny_model_dir), str(train))
    deadline = time.time() + 120
    while not any(m["loss"] is not None for m in engine.store.metrics(run_id)):
        assert time.time() < deadline, "no step within 2 minutes"
        time.sleep(0.2)
    engine.stop(run_id)
    while engine.exit_code(run_id) is None:
        assert time.time() < deadline
        time.sleep(0.2)
    run = engine.get_run(run_id)
    assert run.status == "stopped"
    stopped_at = engine.store.latest_checkpoint(run_id)
    assert stopped_at is not None and 0 < stopped_at.step < 400
    engine.close()
    resumed = cli(tmp_path, "train-resume", run_id, "--max-steps", str(stopped_at.step + 3))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    latest = runs(tmp_path)[0]
    assert latest["resumed_from"] == run_id
    assert latest["status"] == "finished"
    assert latest["final_metrics"]["steps"] == stopped_at.step + 3


@pytest.mark.parametrize("method", ["qlora", "qat"])
def test_a_worker_keeps_the_quantizer_its_method_needs(tiny_model_dir, chat_files, tmp_path, method):
    """The worker hides bitsandbytes and torchao from LoRA runs; qlora and qat runs still load theirs."""
    train, held = chat_files
    result = cli(tmp_path, "train", str(train), "--model", str(tiny_model_dir), "--eval-data", str(held),
                 "--max-steps", "2", "--set", f"training.method={method}", "--set", "qat.group_size=16",
                 "--set", "eval.steps=0", "--set", "eval.generate_samples=0", *FAST[:2])
    assert result.returncode == 0, result.stdout + result.stderr
    run = runs(tmp_path)[0]
    assert run["status"] == "finished" and run["final_metrics"]["steps"] == 2
