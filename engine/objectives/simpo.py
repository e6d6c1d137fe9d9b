"""``simpo``: simple preference optimization (Meng et al. 2024), no reference model.

The loss is ``-log sigmoid(beta (avg log p(chosen) - avg log p(rejected)) - gamma)`` with
per-token average log-probabilities, as TRL's ``CPOTrainer`` with ``loss_type = "simpo"``
(there ``simpo_gamma / beta`` is subtracted before scaling by ``beta``: the same). Rewards are
``beta * avg log p`` of each side.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from engine.objectives.base import Inputs, LossOutput
from engine.objectives.preference import PairObjective, reward_metrics


class SimplePreference(PairObjective):
    """SimPO: a target margin between length-normalised log-probabilities."""

    name = "simpo"

    def compute(self, model: Any, batch: Inputs) -> LossOutput:
        """Mean SimPO loss over the pairs."""
        logps, _, counts = self.policy_and_reference(model, batch)
        chosen, rejected = (logps / counts.clamp(min=1)).chunk(2)
        beta, gamma = self.config.simpo.beta, self.config.simpo.gamma
        losses = -F.logsigmoid(beta * (chosen - rejected) - gamma)
        return LossOutput(losses.mean(), reward_metrics(beta * chosen, beta * rejected))

    def summary(self) -> str:
        """``simpo (beta, gamma)``."""
        return f"simpo (beta {self.config.simpo.beta:g}, gamma {self.config.simpo.gamma:g})"


OBJECTIVE = SimplePreference
