"""Exact resume holds for every objective: stopped and resumed (or killed and resumed) = uninterrupted."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from objective_runs import losses, objective_config, objective_data, train
from support import corpus_lines, preference_records, write_jsonl
from test_engine_control import LIMIT_S, tiny_config, wait_for
from test_engine_crash import cli

from engine.api import Engine
from engine.events import CheckpointSaved, Step
from engine.train.methods import uses_adapter
from engine.workspace import Workspace

STOP_AFTER = 4


@pytest.mark.parametrize("objective,method", [("dpo", "lora"), ("dpo", "full"), ("kto", "lora"),
                                              ("simpo", "lora"), ("pretrain", "lora")])
def test_stop_and_resume_matches_uninterrupted_run(tiny_model_dir, tmp_path, objective, method):
    config = objective_config(objective, method=method, steps=8, gradient_accumulation_steps=2,
                              learning_rate=2e-3)
    if objective == "pretrain":
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("\n".join(corpus_lines()) + "\n")
    data = objective_data(config, tiny_model_dir, tmp_path, tmp_path / "corpus.txt" if objective == "pretrain"
                          else None)
    straight_events: list = []
    straight = train(config, tiny_model_dir, data, tmp_path / "a", straight_events)

    first_events: list = []

    def stop_at_k(event):
        first_events.append(event)
        if isinstance(event, Step) and event.step == STOP_AFTER:
            first.stop_requested = True
    from engine.train.methods import load_for_method
    from engine.train.recipe import FineTune

    first = FineTune(config, load_for_method(tiny_model_dir, config), data, tmp_path / "b", stop_at_k,
                     meta={"run_id": "t", "base_model": str(tiny_model_dir)})
    first.setup()
    assert first.train() == "stopped"
    checkpoint = Path([e for e in first_events if isinstance(e, CheckpointSaved)][-1].path)

    second_events: list = []
    weights = None if uses_adapter(config) else checkpoint
    second = train(config, tiny_model_dir, data, tmp_path / "b", second_events, resume=checkpoint, weights=weights)
    resumed = losses(first_events) + losses(second_events)
    torch.testing.assert_close(torch.tensor(resumed), torch.tensor(losses(straight_events)), rtol=0, atol=1e-6)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items(),
                                 strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_dpo_run_killed_and_resumed_matches_the_uninterrupted_one(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", preference_records(96, seed=4))
    workspace = Workspace(tmp_path / "ws")
    engine = Engine(workspace)
    config = tiny_config(tiny_model_dir, "training.objective=dpo", "training.max_steps=16",
                         "checkpoint.save_steps=6", "checkpoint.keep_last_n=0", "data.max_length=96")
    straight = engine.start_training(data, config)
    killed = engine.start_training(data, config)
    wait_for(lambda: engine.store.checkpoints(killed), "the first checkpoint")
    os.kill(engine.get_run(killed).pid, signal.SIGKILL)
    wait_for(lambda: engine.get_run(straight).status != "running", "the uninterrupted run", LIMIT_S)
    wait_for(lambda: engine.get_run(killed).status == "crashed", "the killed run shown as crashed", LIMIT_S)
    resumed = cli(workspace.root, "train-resume", killed)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new = engine.list_runs()[0]
    assert new.resumed_from == killed and new.status == "finished"

    def step_losses(run_id: str) -> dict[int, float]:
        return {m["step"]: m["loss"] for m in engine.store.metrics(run_id) if m["loss"] is not None}
    again, reference = step_losses(new.id), step_losses(straight)
    assert again and max(again) == 16
    torch.testing.assert_close(torch.tensor([again[s] for s in sorted(again)]),
                               torch.tensor([reference[s] for s in sorted(again)]), rtol=0, atol=1e-6)
    final = engine.get_run(straight).final_metrics
    assert "eval_reward_accuracy" in final and new.final_metrics["eval_reward_accuracy"] == pytest.approx(
        final["eval_reward_accuracy"], abs=1e-6)
    engine.close()
