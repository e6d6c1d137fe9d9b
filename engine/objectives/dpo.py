"""``dpo``: direct preference optimization (Rafailov et al. 2023) and its IPO and hinge variants.

With ``r = log pi(y|x) - log pi_ref(y|x)`` for each side and ``d = r_chosen - r_rejected``:
``sigmoid`` is ``-log sigmoid(beta d)``, ``hinge`` is ``max(0, 1 - beta d)`` and ``ipo`` is
``(d - 1 / (2 beta))^2`` on per-token average log-probabilities, as TRL's ``dpo_loss`` defines
them. Rewards are ``beta r``; the loss and metrics are means over the batch's pairs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from engine.objectives.base import Inputs, LossOutput
from engine.objectives.preference import PairObjective, reward_metrics


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, beta: float, loss_type: str) -> torch.Tensor:
    """Per-pair losses from the chosen and rejected log-ratios to the reference."""
    margin = chosen - rejected
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * margin)
    if loss_type == "hinge":
        return torch.relu(1 - beta * margin)
    if loss_type == "ipo":
        return (margin - 1 / (2 * beta)) ** 2
    raise ValueError(f"dpo.loss_type: unknown {loss_type!r}")


class DirectPreference(PairObjective):
    """DPO against the reference model (the base with the adapter off, or a frozen copy)."""

    name = "dpo"
    uses_reference = True

    def compute(self, model: Any, batch: Inputs) -> LossOutput:
        """Mean DPO loss over the pairs; rewards are beta times the log-ratios."""
        policy, reference, counts = self.policy_and_reference(model, batch)
        ratios = policy - reference
        if self.config.dpo.loss_type == "ipo":
            ratios = ratios / counts.clamp(min=1)
        chosen, rejected = ratios.chunk(2)
        beta = self.config.dpo.beta
        losses = dpo_loss(chosen, rejected, beta, self.config.dpo.loss_type)
        return LossOutput(losses.mean(), reward_metrics(beta * chosen, beta * rejected))

    def summary(self) -> str:
        """``dpo (loss type, beta)``."""
        return f"dpo ({self.config.dpo.loss_type}, beta {self.config.dpo.beta:g})"


OBJECTIVE = DirectPreference
