"""Every objective trains on its own data shape and its loss falls; a new objective needs no loop edit."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from objective_runs import evals, losses, objective_config, objective_data, train
from support import corpus_lines

from engine import objectives
from engine.events import Step
from engine.objectives.base import LossOutput, Objective


def _falls(values: list[float]) -> bool:
    return sum(values[-3:]) / 3 < sum(values[:3]) / 3


@pytest.mark.parametrize("objective", ["dpo", "orpo", "simpo", "kto"])
def test_preference_objective_trains_and_reports_rewards(tiny_model_dir, tmp_path, objective):
    config = objective_config(objective)
    events: list = []
    recipe = train(config, tiny_model_dir, objective_data(config, tiny_model_dir, tmp_path), tmp_path / "run",
                   events)
    assert _falls(losses(events)), losses(events)
    step = [e for e in events if isinstance(e, Step)][-1]
    assert set(recipe.objective.metrics) <= set(step.metrics)
    held = evals(events)
    assert len(held) == 2 and "reward_accuracy" in held[-1].metrics
    if objective != "kto":  # kto's bounded loss moves slowly at beta 0.1: its training loss fell above
        assert held[-1].eval_loss < held[0].eval_loss


def test_dpo_starts_at_log2_with_zero_rewards_and_learns_to_prefer_the_right_answer(tiny_model_dir, tmp_path):
    config = objective_config("dpo", steps=18)
    events: list = []
    train(config, tiny_model_dir, objective_data(config, tiny_model_dir, tmp_path), tmp_path / "run", events)
    first = [e for e in events if isinstance(e, Step)][0]
    assert first.loss == pytest.approx(0.6931, abs=1e-3)  # the adapter starts at zero: policy = reference
    assert first.metrics["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    assert evals(events)[-1].metrics["reward_accuracy"] > 0.6


@pytest.mark.parametrize("loss_type", ["ipo", "hinge"])
def test_dpo_variants_train(tiny_model_dir, tmp_path, loss_type):
    config = objective_config("dpo")
    config = replace(config, dpo=replace(config.dpo, loss_type=loss_type))
    events: list = []
    train(config, tiny_model_dir, objective_data(config, tiny_model_dir, tmp_path), tmp_path / "run", events)
    assert _falls(losses(events)), losses(events)


def test_dpo_with_full_weights_uses_a_frozen_copy(tiny_model_dir, tmp_path):
    config = objective_config("dpo", method="full", steps=12, learning_rate=2e-3)
    events: list = []
    recipe = train(config, tiny_model_dir, objective_data(config, tiny_model_dir, tmp_path), tmp_path / "run",
                   events)
    reference = recipe.objective.reference.copy
    assert reference is not None and not any(p.requires_grad for p in reference.parameters())
    assert _falls(losses(events)), losses(events)


def test_pretrain_trains_packed_on_raw_text(tiny_model_dir, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(corpus_lines()) + "\n")
    config = objective_config("pretrain")
    events: list = []
    recipe = train(config, tiny_model_dir, objective_data(config, tiny_model_dir, tmp_path, corpus),
                   tmp_path / "run", events)
    assert recipe.config.data.packing and "position_ids" in recipe.feed.next().inputs
    assert _falls(losses(events)), losses(events)


class _Unlikelihood(Objective):
    """A toy objective: SFT loss plus a penalty on the mean logit (anything the loop has never seen)."""

    name = "toy"
    metrics = ("mean_logit",)

    def compute(self, model, batch):
        out = model(**batch)
        mean_logit = out.logits.float().mean()
        return LossOutput(out.loss + 0.01 * mean_logit.abs(), {"mean_logit": mean_logit.detach()})


def test_a_registered_toy_objective_trains_without_editing_the_loop(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(objectives.REGISTRY, "toy", objectives.Entry("chat", lambda: _Unlikelihood))
    config = objective_config("toy")
    events: list = []
    recipe = train(config, tiny_model_dir, objective_data(config, tiny_model_dir, tmp_path), tmp_path / "run",
                   events)
    assert isinstance(recipe.objective, _Unlikelihood)
    assert all("mean_logit" in e.metrics for e in events if isinstance(e, Step))
    assert _falls(losses(events))
    assert torch.isfinite(torch.tensor(losses(events))).all()


def test_packed_and_padded_pairs_train_the_same_losses(tiny_model_dir, tmp_path):
    config = objective_config("dpo", steps=6)
    data = objective_data(config, tiny_model_dir, tmp_path)
    runs = {}
    for packing in (True, False):
        run = replace(config, preference=replace(config.preference, packing=packing))
        events: list = []
        recipe = train(run, tiny_model_dir, data, tmp_path / f"run-{packing}", events)
        runs[packing] = (losses(events), evals(events)[-1].eval_loss, recipe.feed.next())
    assert "segment" in runs[True][2].inputs and "attention_mask" in runs[False][2].inputs
    assert runs[True][2].real_tokens == runs[False][2].real_tokens  # both sequences of every pair counted
    torch.testing.assert_close(torch.tensor(runs[True][0]), torch.tensor(runs[False][0]), rtol=2e-5, atol=1e-6)
    assert runs[True][1] == pytest.approx(runs[False][1], rel=2e-5)


@pytest.mark.parametrize("method", ["qlora", "qat"])
def test_dpo_trains_with_the_quantized_methods(tiny_model_dir, tmp_path, method):
    config = objective_config("dpo", method=method)
    config = replace(config, qat=replace(config.qat, group_size=16, fake_quant_after_n_steps=2))
    events: list = []
    recipe = train(config, tiny_model_dir, objective_data(config, tiny_model_dir, tmp_path), tmp_path / "run",
                   events)
    assert _falls(losses(events)), losses(events)
    assert all(math.isfinite(value) for value in losses(events))
    # qlora keeps the quantized base under its adapter (switched off for the reference); qat copies it
    assert (recipe.objective.reference.copy is None) == (method == "qlora")
