"""The interface a training objective implements (imports torch; the registry itself does not).

The loop, evaluation, the out-of-memory back-off and the batch-size probe call an objective
through these few methods and nothing else:

- ``collate(samples, pad_id)``: a batch of model inputs from ``(ids, flags)`` samples (the
  cached arrays, ``engine.data.render`` flags). ``batch_form()`` None lets the data layer's own
  padded or packed batches stand (sft, pretrain).
- ``compute(model, batch)``: ``LossOutput``, the loss to back-propagate and detached metrics.
- ``weight(batch)`` and ``split(batch, pieces)``: what a batch's mean is over (trained tokens,
  pairs, answers) and how to cut it into smaller batches that keep its units whole, so a batch
  run in pieces gives the same gradient.
- ``probe_batch(ids)``: a synthetic batch of the worst-case shape for ``batch_size = "auto"``.
- ``attach(model, reference)``: called once the model is wrapped for its method; objectives with
  a reference model take it here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.config import Config
from engine.data.render import TRAINED
from engine.data.template import IGNORE_INDEX

Sample = tuple[np.ndarray, np.ndarray]
"""``(token ids, flags)`` of one cached sample."""
Inputs = dict[str, torch.Tensor]


@dataclass
class LossOutput:
    """A batch's loss (a mean over its ``weight`` units) and its metrics (means, detached)."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """Supervised next-token loss on the trained tokens: the default every objective starts from."""

    name = "sft"
    records = "chat"
    """The record kind trained on (``engine.data.examples.KINDS``)."""
    metrics: tuple[str, ...] = ()
    """Names of the metrics ``compute`` reports (each in ``engine.metrics.METRICS``)."""
    eval_metrics: tuple[str, ...] = ("perplexity",)
    """Names of the metrics an evaluation reports besides the loss."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def packed(self) -> bool:
        """Whether training batches are packed rows."""
        return self.config.data.packing

    def batch_form(self) -> Callable[[Sequence[Sample], int], Inputs] | None:
        """The collate function of training batches; None: the data layer's padded/packed form."""
        return None

    def collate(self, samples: Sequence[Sample], pad_id: int) -> Inputs:
        """Samples padded on the right to the longest: input ids, attention mask, labels."""
        return pad_rows([ids for ids, _ in samples], [flags & TRAINED > 0 for _, flags in samples], pad_id)

    def attach(self, model: Any, reference: Callable[[], Any]) -> None:
        """Called with the wrapped model before training; ``reference()`` gives a frozen base copy."""

    def compute(self, model: Any, batch: Inputs) -> LossOutput:
        """Mean loss over the batch's trained tokens."""
        return LossOutput(model(**batch).loss)

    def weight(self, batch: Inputs) -> torch.Tensor:
        """How many units the batch's mean is over: its trained tokens (labels are shifted by one)."""
        return (batch["labels"][:, 1:] != IGNORE_INDEX).sum()

    def split(self, batch: Inputs, pieces: int) -> list[Inputs]:
        """The batch cut into ``pieces`` batches of consecutive rows."""
        parts = zip(*(torch.tensor_split(v, pieces) for v in batch.values()), strict=True)
        return [dict(zip(batch, values, strict=True)) for values in parts]

    def rows(self, batch: Inputs) -> int:
        """Units ``split`` can separate (rows here; pairs for preference objectives)."""
        return int(batch["input_ids"].shape[0])

    def probe_batch(self, ids: torch.Tensor) -> Inputs:
        """A worst-case batch for the memory probe from random ``ids`` (rows x length)."""
        batch = {"input_ids": ids, "labels": ids.clone()}
        if not self.packed():
            batch["attention_mask"] = torch.ones_like(ids)
        return batch

    def summary(self) -> str:
        """The objective and its settings in a few words (the run's first log line)."""
        return self.name


def pad_rows(rows: Sequence[np.ndarray], trained: Sequence[np.ndarray], pad_id: int, width: int = 0,
             left: bool = False) -> Inputs:
    """Rows padded to the longest (or ``width``): ``input_ids``, ``attention_mask``, ``labels``."""
    width = max(width, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, (row, keep) in enumerate(zip(rows, trained, strict=True)):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        values = torch.as_tensor(np.asarray(row, dtype=np.int64))
        ids[index, cols] = values
        labels[index, cols] = torch.where(torch.as_tensor(np.asarray(keep, dtype=bool)), values, IGNORE_INDEX)
        mask[index, cols] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


OBJECTIVE = Objective
