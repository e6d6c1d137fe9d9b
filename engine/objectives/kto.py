"""``kto``: Kahneman-Tversky optimization (Ethayarajh et al. 2024) on unpaired judged answers.

Each answer is desirable or not (TRL's ``prompt``/``completion``/``label`` records); with
``r = log pi(y|x) - log pi_ref(y|x)`` and ``z`` the reference point, a desirable answer's loss is
``desirable_weight (1 - sigmoid(beta (r - z)))`` and an undesirable one's
``undesirable_weight (1 - sigmoid(beta (z - r)))``, as in TRL's ``kto_loss``. TRL estimates ``z``
from prompts paired with other samples' answers (one more forward pass); here ``z`` is the
batch's mean log-ratio, detached and at least 0 (cheaper; the same role). The reference model is
as for dpo. Rewards are ``beta r``; accuracy is the share of answers whose reward has the sign
their label asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine.config import Config
from engine.data.render import TRAINED, UNDESIRABLE
from engine.errors import ConfigError
from engine.objectives.base import Inputs, LossOutput, Sample, pad_rows
from engine.objectives.preference import PairObjective


def collate_judged(samples: Sequence[Sample], pad_id: int) -> Inputs:
    """Padded rows plus ``desirable`` (1 or 0 for each row)."""
    batch = pad_rows([ids for ids, _ in samples], [flags & TRAINED > 0 for _, flags in samples], pad_id)
    batch["desirable"] = torch.tensor([0 if (flags & UNDESIRABLE).any() else 1 for _, flags in samples])
    return batch


class KahnemanTversky(PairObjective):
    """KTO: each answer pulled up or pushed down against a reference point."""

    name = "kto"
    records = "unpaired"
    uses_reference = True
    metrics = ("reward_desirable", "reward_undesirable", "reward_margin", "reward_accuracy")
    eval_metrics = metrics

    def __init__(self, config: Config) -> None:
        if config.data.packing:
            raise ConfigError("data.packing = true: not supported with training.objective = 'kto' "
                              "(answers are padded); set data.packing = false")
        super().__init__(config)
        self.pack_pairs = False

    def batch_form(self) -> Any:
        """Padded rows with each row's label."""
        return collate_judged

    def collate(self, samples: Sequence[Sample], pad_id: int) -> Inputs:
        """Padded rows with each row's label."""
        return collate_judged(samples, pad_id)

    def rows(self, batch: Inputs) -> int:
        """Answers in the batch."""
        return int(batch["input_ids"].shape[0])

    def split(self, batch: Inputs, pieces: int) -> list[Inputs]:
        """Pieces of consecutive answers."""
        parts = zip(*(torch.tensor_split(v, pieces) for v in batch.values()), strict=True)
        return [dict(zip(batch, values, strict=True)) for values in parts]

    def probe_batch(self, ids: torch.Tensor) -> Inputs:
        """Random rows, half of them desirable."""
        return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids),
                "desirable": torch.arange(ids.shape[0]) % 2}

    def compute(self, model: Any, batch: Inputs) -> LossOutput:
        """Mean KTO loss over the answers."""
        inputs = {k: v for k, v in batch.items() if k != "desirable"}
        policy, reference, _ = self.policy_and_reference(model, inputs)
        ratios = policy - reference
        good = batch["desirable"].bool()
        z = ratios.detach().mean().clamp(min=0)
        kto, beta = self.config.kto, self.config.kto.beta
        losses = torch.where(good, kto.desirable_weight * (1 - torch.sigmoid(beta * (ratios - z))),
                             kto.undesirable_weight * (1 - torch.sigmoid(beta * (z - ratios))))
        return LossOutput(losses.mean(), self._metrics(beta * ratios.detach(), good))

    @staticmethod
    def _metrics(rewards: torch.Tensor, good: torch.Tensor) -> dict[str, torch.Tensor]:
        zero = rewards.new_zeros(())
        up = rewards[good].mean() if good.any() else zero
        down = rewards[~good].mean() if (~good).any() else zero
        right = torch.where(good, rewards > 0, rewards < 0).float().mean()
        return {"reward_desirable": up, "reward_undesirable": down, "reward_margin": up - down,
                "reward_accuracy": right}

    def summary(self) -> str:
        """``kto (beta)``."""
        return f"kto (beta {self.config.kto.beta:g})"


OBJECTIVE = KahnemanTversky
