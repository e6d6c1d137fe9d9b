"""The objective interface: padding, the registry, the preference losses, pairs split whole, the metric table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import objectives
from engine.config import Config
from engine.errors import ConfigError
from engine.events import Eval, Step
from engine.metrics import eval_values, line, step_values
from engine.objectives.base import pad_rows
from engine.objectives.dpo import dpo_loss
from engine.objectives.preference import PairObjective


def test_pad_rows_right_and_left_keep_every_token_once() -> None:
    rows = [np.array([5, 6, 7]), np.array([8])]
    trained = [np.array([False, True, True]), np.array([True])]
    right = pad_rows(rows, trained, pad_id=0)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    left = pad_rows(rows, trained, pad_id=0, left=True)
    assert left["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_unknown_objective_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"training.objective: unknown objective 'ppo' \(expected one of .*dpo"):
        objectives.entry("ppo")
    assert objectives.record_kind("kto") == "unpaired" and objectives.objectives_for("text") == ["pretrain"]
    for name in objectives.REGISTRY:
        assert objectives.load(name).name == name


def test_dpo_losses_match_their_formulas() -> None:
    chosen, rejected, beta = torch.tensor([0.5, -1.0]), torch.tensor([0.1, 0.3]), 0.2
    margin = chosen - rejected
    torch.testing.assert_close(dpo_loss(chosen, rejected, beta, "sigmoid"),
                               torch.tensor([math.log1p(math.exp(-beta * float(m))) for m in margin]))
    torch.testing.assert_close(dpo_loss(chosen, rejected, beta, "hinge"), torch.relu(1 - beta * margin))
    torch.testing.assert_close(dpo_loss(chosen, rejected, beta, "ipo"), (margin - 1 / (2 * beta)) ** 2)


class _Pairs(PairObjective):
    """Pairs through the real batch form; the loss: -logsigmoid of a row-wise score difference."""

    name = "pairs"

    def compute(self, model, batch):
        from engine.objectives.base import LossOutput

        score = model(batch["input_ids"].float()).squeeze(-1)
        chosen, rejected = score.chunk(2)
        return LossOutput(-torch.nn.functional.logsigmoid(chosen - rejected).mean(),
                          {"reward_margin": (chosen - rejected).mean()})


def test_pairs_split_whole_give_the_same_loss_and_gradient() -> None:
    from engine.train.oom import forward_backward

    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    objective = _Pairs(Config())
    batch = {"input_ids": torch.randint(0, 9, (10, 6)), "attention_mask": torch.ones(10, 6, dtype=torch.long),
             "labels": torch.zeros(10, 6, dtype=torch.long)}
    results = []
    for splits in (1, 2, 5):
        model.zero_grad()
        loss, metrics = forward_backward(objective, model, batch, splits, 1.0, lambda t: t.backward(),
                                         torch.enable_grad)
        results.append((float(loss), float(metrics["reward_margin"]), model.weight.grad.clone()))
    for loss, margin, grad in results[1:]:
        assert loss == pytest.approx(results[0][0], abs=1e-6)
        assert margin == pytest.approx(results[0][1], abs=1e-5)
        torch.testing.assert_close(grad, results[0][2], rtol=0, atol=1e-6)
    pieces = objective.split(batch, 2)
    assert [int(p["input_ids"].shape[0]) for p in pieces] == [6, 4]  # 3 and 2 whole pairs
    torch.testing.assert_close(pieces[0]["input_ids"][3], batch["input_ids"][5])  # pair 0's rejected side


def test_packing_is_refused_for_kto_in_one_line() -> None:
    config = Config()
    config.data.packing = True
    with pytest.raises(ConfigError, match=r"data.packing = true: not supported with training.objective = 'kto'"):
        objectives.load("kto")(config)


def test_both_printers_name_metrics_from_one_table() -> None:
    step = Step(step=3, total_steps=9, epoch=0.5, loss=0.6931, lr=1e-3, grad_norm=0.5, tokens_per_s=1234.0,
                elapsed_s=1.0, metrics={"reward_accuracy": 0.75, "reward_margin": 0.5})
    assert line(step_values(step)) == ("loss 0.6931  lr 1.00e-03  grad_norm 0.500  tok/s 1,234  "
                                       "reward accuracy 0.75  margin 0.500")
    assert line(eval_values(Eval(step=3, eval_loss=1.0, perplexity=2.72))) == "loss 1.0000  perplexity 2.72"
    dpo_eval = Eval(step=3, eval_loss=0.4, perplexity=1.49, metrics={"reward_accuracy": 0.8})
    assert line(eval_values(dpo_eval)) == "loss 0.4000  reward accuracy 0.80"
