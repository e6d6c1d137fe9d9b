"""What the preference objectives share: pair batches, sequence log-probabilities, the reference.

A pair is one cached sample: the chosen sequence, then the rejected one with its tokens flagged
``SECOND`` (``engine.data.render``). With ``preference.packing`` (the default) a batch of ``B``
pairs is packed without padding, each prompt computed once for both answers
(``engine.objectives.pair_packing``); otherwise it is ``2B`` rows padded to the longest of all,
the chosen sequences first, as TRL's ``concatenated_forward`` does. Either way both sides go
through the model in one forward pass and the same ``2B`` sequence log-probabilities come out:
the sum over each sequence's trained (answer) tokens of ``log p(token | before)``.

The reference model of DPO and KTO is the base itself with the adapter switched off when the
method trains an adapter over an untouched base (lora, qlora, qat with LoRA: no memory beyond
the trained model), otherwise a frozen copy of the base (full, qat: one more copy of the weights).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.config import Config
from engine.data.render import SECOND, TRAINED
from engine.data.template import IGNORE_INDEX
from engine.errors import ConfigError
from engine.objectives.base import Inputs, Objective, Sample, pad_rows
from engine.objectives.pair_packing import (
    attention_kind,
    is_packed,
    pack_pairs,
    packed_logps,
    pairs_in,
    split_packed,
    split_pair,
)

PAIR_METRICS = ("reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy")
__all__ = ["split_pair", "collate_pairs", "sequence_logps", "PairObjective"]


def collate_pairs(samples: Sequence[Sample], pad_id: int) -> Inputs:
    """``B`` pairs as ``2B`` padded rows: the chosen sides, then the rejected sides."""
    sides = [split_pair(ids, flags) for ids, flags in samples]
    rows = [side[0] for side in sides] + [side[1] for side in sides]
    return pad_rows([ids for ids, _ in rows], [trained for _, trained in rows], pad_id)


def sequence_logps(model: Any, batch: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of trained-token log-probs, trained-token count)`` of every sequence (float32)."""
    if is_packed(batch):
        return packed_logps(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    token = -F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none",
                             ignore_index=IGNORE_INDEX).view(targets.shape)
    trained = targets != IGNORE_INDEX
    return (token * trained).sum(dim=1), trained.sum(dim=1)


class Reference:
    """The frozen model log-ratios are taken against: the adapter switched off, or a copy."""

    def __init__(self, model: Any, config: Config, copy: Callable[[], Any]) -> None:
        self.adapter_off = _adapter_kept_apart(config) and hasattr(model, "disable_adapter")
        self.copy: Any = None
        if not self.adapter_off:
            self.copy = copy()
            self.copy.eval()
            for parameter in self.copy.parameters():
                parameter.requires_grad_(False)

    @torch.no_grad()
    def logps(self, model: Any, batch: Inputs) -> torch.Tensor:
        """The reference's sequence log-probs of the batch's rows."""
        with self._switched(model) as reference:
            return sequence_logps(reference, batch)[0]

    @contextlib.contextmanager
    def _switched(self, model: Any) -> Iterator[Any]:
        if self.copy is not None:
            yield self.copy
            return
        with model.disable_adapter():
            yield model


def _adapter_kept_apart(config: Config) -> bool:
    """Whether the trained model holds the untouched base under an adapter."""
    method = config.training.method
    return method in ("lora", "qlora") or (method == "qat" and config.qat.lora)


class PairObjective(Objective):
    """A preference objective over chosen/rejected pairs (the loss is each subclass's)."""

    records = "pair"
    metrics = PAIR_METRICS
    eval_metrics = PAIR_METRICS
    uses_reference = False

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.pack_pairs = config.preference.packing
        self.reference: Reference | None = None

    def packed(self) -> bool:
        """False: the data layer never packs pairs into its rows; ``collate`` packs them itself."""
        return False

    def batch_form(self) -> Callable[[Sequence[Sample], int], Inputs]:
        """``collate``: pairs packed (``preference.packing``) or as 2B padded rows."""
        return self.collate

    def collate(self, samples: Sequence[Sample], pad_id: int) -> Inputs:
        """Pairs packed without padding (``preference.packing``), else as 2B padded rows."""
        if self.pack_pairs:
            data = self.config.data
            return pack_pairs(samples, pad_id, data.pack_length or data.max_length)
        return collate_pairs(samples, pad_id)

    def attach(self, model: Any, reference: Callable[[], Any]) -> None:
        """Set up the reference model when the loss uses one; check packed pairs can be masked."""
        if self.pack_pairs and attention_kind(model) not in ("sdpa", "eager"):
            raise ConfigError(f"preference.packing = true: needs sdpa or eager attention (the model runs "
                              f"{attention_kind(model)}, which cannot keep the two answers apart); "
                              "set preference.packing = false or model.attn_implementation = 'sdpa'")
        if self.uses_reference:
            self.reference = Reference(model, self.config, reference)

    def weight(self, batch: Inputs) -> torch.Tensor:
        """Pairs in the batch."""
        return torch.tensor(self.rows(batch))

    def rows(self, batch: Inputs) -> int:
        """Pairs in the batch."""
        return pairs_in(batch) if is_packed(batch) else int(batch["input_ids"].shape[0]) // 2

    def split(self, batch: Inputs, pieces: int) -> list[Inputs]:
        """Pieces of whole pairs (padded: each piece's chosen rows, then its rejected rows)."""
        if is_packed(batch):
            return split_packed(batch, pieces)
        pairs = self.rows(batch)
        bounds = [chunk.tolist() for chunk in torch.tensor_split(torch.arange(pairs), pieces)]
        return [{k: torch.cat([v[c[0]:c[-1] + 1], v[pairs + c[0]:pairs + c[-1] + 1]]) for k, v in batch.items()}
                for c in bounds if c]

    def probe_batch(self, ids: torch.Tensor) -> Inputs:
        """Random pairs as long as the longest cached pair, no prompt shared: both halves trained."""
        half = ids.shape[1] // 2
        flags = np.full(ids.shape[1], TRAINED, dtype=np.uint8)
        flags[half:] |= SECOND
        return self.collate([(row.numpy(), flags) for row in ids], 0)

    def policy_and_reference(self, model: Any, batch: Inputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(policy log-probs, reference log-probs or zeros, trained-token counts)`` of every row."""
        logps, counts = sequence_logps(model, batch)
        if self.reference is None:
            return logps, torch.zeros_like(logps), counts
        return logps, self.reference.logps(model, batch), counts


def reward_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean chosen and rejected rewards, their margin and how often chosen wins (detached)."""
    chosen, rejected = chosen.detach().float(), rejected.detach().float()
    return {"reward_chosen": chosen.mean(), "reward_rejected": rejected.mean(),
            "reward_margin": (chosen - rejected).mean(), "reward_accuracy": (chosen > rejected).float().mean()}
