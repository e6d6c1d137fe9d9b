"""``train-eval`` evaluates with the objective the data implies, through the trainer's own code:
a DPO checkpoint (adapter or full weights) reports the run's held-out loss, rewards and reward
accuracy, against the same reference model the run used."""

from __future__ import annotations

from dataclasses import replace

import pytest
from objective_runs import objective_config, train
from support import preference_records, write_jsonl

from engine.api import Engine
from engine.data.pipeline import prepare
from engine.data.token_cache import TokenCache
from engine.jobs import eval_job
from engine.train.model import load_tokenizer
from engine.train.recipe import RecipeData
from engine.workspace import Workspace


def recorded_only(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """``start_run`` records the run without starting a worker (the test runs the job itself)."""
    def start_run(kind, config, model, dataset_path="", output_dir="", resumed_from=None, fingerprint=""):
        engine.store.create_run("eval-1", kind, config, model, dataset_path, fingerprint, output_dir)
        return "eval-1"
    monkeypatch.setattr(engine, "start_run", start_run)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_train_eval_of_a_dpo_checkpoint_reports_the_runs_held_out_rewards(tiny_model_dir, tmp_path, monkeypatch,
                                                                          method):
    config = objective_config("dpo", method=method, steps=6, learning_rate=5e-3 if method == "lora" else 2e-3)
    config = replace(config, eval=replace(config.eval, steps=6))
    train_file = write_jsonl(tmp_path / "train.jsonl", preference_records(64, seed=5))
    held_file = write_jsonl(tmp_path / "held.jsonl", preference_records(20, seed=9))
    tokenizer = load_tokenizer(tiny_model_dir)
    cache = TokenCache(tmp_path / "cache")
    data = RecipeData(prepare([train_file], tokenizer, config, cache, workers=1).dataset,
                      prepare([held_file], tokenizer, config, cache, workers=1).dataset,
                      tokenizer.pad_token_id, len(tokenizer))
    recipe = train(config, tiny_model_dir, data, tmp_path / "run" / "checkpoints", [])
    assert recipe.last_eval_metrics["reward_margin"] != 0.0, "the policy moved away from its reference"
    checkpoint = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1]
    engine = Engine(Workspace(tmp_path / "ws"))
    recorded_only(engine, monkeypatch)
    asked = replace(config, training=replace(config.training, objective="sft"))  # the data says dpo
    run = engine.get_run(engine.evaluate(checkpoint, held_file, asked))
    metrics = eval_job(run, engine.workspace, lambda event: None)
    engine.close()
    assert metrics["objective"] == "dpo" and metrics["samples"] == len(data.eval)
    assert metrics["eval_loss"] == pytest.approx(recipe.last_eval_loss, abs=1e-5)
    for name in ("reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"):
        assert metrics[name] == pytest.approx(recipe.last_eval_metrics[name], abs=1e-5), name
    expected = "the base, adapter off" if method == "lora" else str(tiny_model_dir)
    assert metrics["reference"] == expected
    assert "perplexity" not in metrics
