"""``orpo``: odds-ratio preference optimization (Hong et al. 2024), no reference model.

The loss is the chosen answers' next-token loss plus ``orpo.weight`` times
``-log sigmoid(log odds(chosen) - log odds(rejected))``, where ``odds(y) = p / (1 - p)`` of the
per-token average log-probability ``log p``, as TRL's ``ORPOTrainer`` computes it. Rewards are
``weight * log p`` of each side.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from engine.objectives.base import Inputs, LossOutput
from engine.objectives.preference import PairObjective, reward_metrics


def log_odds(average_logps: torch.Tensor) -> torch.Tensor:
    """``log(p / (1 - p))`` from ``log p`` (kept finite as ``p`` nears 1)."""
    return average_logps - torch.log1p(-torch.exp(average_logps).clamp(max=1 - 1e-6))


class OddsRatioPreference(PairObjective):
    """ORPO: SFT on the chosen answers with an odds-ratio penalty on the rejected ones."""

    name = "orpo"

    def compute(self, model: Any, batch: Inputs) -> LossOutput:
        """Chosen answers' NLL minus weight times the mean log-sigmoid of the log-odds ratio."""
        logps, _, counts = self.policy_and_reference(model, batch)
        chosen_sum, _ = logps.chunk(2)
        chosen_count, _ = counts.chunk(2)
        average = logps / counts.clamp(min=1)
        chosen, rejected = average.chunk(2)
        nll = -chosen_sum.sum() / chosen_count.sum().clamp(min=1)
        odds_ratio = F.logsigmoid(log_odds(chosen) - log_odds(rejected))
        weight = self.config.orpo.weight
        metrics = reward_metrics(weight * chosen, weight * rejected)
        metrics["chosen_nll"] = nll.detach()
        return LossOutput(nll - weight * odds_ratio.mean(), metrics)

    def summary(self) -> str:
        """``orpo (weight)``."""
        return f"orpo (weight {self.config.orpo.weight:g})"


OddsRatioPreference.metrics = (*PairObjective.metrics, "chosen_nll")
OBJECTIVE = OddsRatioPreference
