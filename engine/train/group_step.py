"""A rank's optimizer step and control in a group: losses over the group's units, decisions in lock-step.

**The loss.** One process trains each micro-batch on the mean loss over its units (trained
tokens for sft, pairs for dpo: ``objective.weight``) and an optimizer step on the mean over its
``A`` micro-batches. A rank holds only its slice of each global micro-batch, so before the
forward passes the ranks sum their unit counts (one ``all_reduce`` of ``A`` numbers), and rank
``r`` back-propagates its slice's mean loss times ``units_r / units_global x world / A``. DDP and
FSDP average gradients over the ``world`` ranks, which leaves exactly the gradient of the
global micro-batches' mean losses: what one process computes on the same global batch. The
reported loss and metrics are summed over the ranks with the same weights (one more
``all_reduce``), and the tokens too, so the Step events read like one process's.

**Passes.** Every rank runs as many forward and backward passes per micro-batch as the others
(FSDP gathers the weights in each) and reduces gradients in the step's last one only. A slice is
cut into pieces only when the run started with more ranks than it has now (or backed off from
running out of memory in one process), the same number on every rank; where a rank's slice
yields fewer pieces (fewer rows, a piece without trained tokens), it makes up the passes at
weight 0 (``forward_backward``'s ``agree``).

**Control.** Stop, pause and checkpoint requests reach the lead (rank 0) alone; after every
optimizer step the lead's flags are broadcast and every rank acts on the same ones, so they save,
pause and stop together. A paused group keeps broadcasting the flags about every
``CONTROL_POLL_S``, so no rank sits in a collective for longer than the group's timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.control import CONTROL_POLL_S, ControlState
from engine.train.evaluate import autocast
from engine.train.oom import forward_backward
from engine.train.shards import slice_pieces


def group_step(recipe: Any, device: torch.device) -> Any:
    """One optimizer step of this rank: its slices of the step's global micro-batches."""
    group, objective, training = recipe.group, recipe.objective, recipe.config.training
    accumulation = training.gradient_accumulation_steps
    micros = [recipe._next_batch() for _ in range(accumulation)]
    batches = [{k: v.to(device, non_blocking=True) for k, v in m.inputs.items()} for m in micros]
    units = torch.tensor([float(objective.weight(b)) if m.samples else 0.0
                          for m, b in zip(micros, batches, strict=True)], dtype=torch.float64)
    shares = units / group.all_sum(units).clamp(min=1.0)
    loss = torch.zeros((), dtype=torch.float64)
    metrics: dict[str, torch.Tensor] = {}
    splits = max(recipe.progress.micro_batch_splits, slice_pieces(recipe.progress.data_ranks, group.world))
    for k, batch in enumerate(batches):
        scale = float(shares[k]) * group.world / accumulation
        last = k == accumulation - 1
        part, values = forward_backward(objective, recipe.trained, batch, splits, scale, recipe._backward,
                                        lambda: autocast(training.precision, device),
                                        lambda final, last=last: group.sync(recipe.trained, last and final),
                                        group.all_max)
        weight = float(shares[k]) / accumulation
        loss = loss + part.double().cpu() * weight
        for name, value in values.items():
            metrics[name] = metrics.get(name, 0) + value.double().cpu() * weight
    names = list(metrics)  # the objective's order, the same on every rank
    tokens = float(sum(m.real_tokens for m in micros))
    summed = group.all_sum(torch.stack([loss, *(metrics[n] for n in names), torch.tensor(tokens, dtype=torch.float64)]))
    stats = recipe._apply_gradients(summed[0].float(), int(summed[-1]),
                                    {n: summed[1 + i].float() for i, n in enumerate(names)})
    stats.grad_norm = group.grad_norm(stats.grad_norm)
    return stats


@dataclass
class GroupControl:
    """The per-step control hook of a rank in a group (``recipe.control``).

    ``state`` is the lead's ``ControlState`` (None on the other ranks); ``on_pause`` and
    ``on_resume`` record a pause on the ranks that keep a history row.
    """

    group: Any
    state: ControlState | None
    on_pause: Callable[[int, Path], None]
    on_resume: Callable[[int], None]

    def flags(self, recipe: Any) -> tuple[bool, bool, bool]:
        """``(stop, pause, checkpoint)`` as the lead sees them, on every rank."""
        mine = [0, 0, 0]
        if self.state is not None:
            mine = [int(self.state.stop or recipe.stop_requested), int(self.state.pause), int(self.state.checkpoint)]
        stop, pause, checkpoint = self.group.from_lead(mine)
        return bool(stop), bool(pause), bool(checkpoint)

    def __call__(self, recipe: Any) -> None:
        """Act on the lead's requests, on every rank alike."""
        stop, pause, checkpoint = self.flags(recipe)
        recipe.stop_requested = stop
        if stop:
            return
        if checkpoint:
            if self.state is not None:
                self.state.checkpoint = False
            if recipe.progress.step % recipe.config.checkpoint.save_steps and not pause:
                recipe.save("requested")
        if pause:
            self._pause(recipe)

    def _pause(self, recipe: Any) -> None:
        """Checkpoint, then wait with the others until the lead resumes or stops the run."""
        path = recipe.save("paused")
        self.on_pause(recipe.progress.step, path)
        while True:
            if self.state is not None:
                self.state.wake.wait(CONTROL_POLL_S)
                self.state.wake.clear()
            stop, pause, _ = self.flags(recipe)
            if stop or not pause:
                break
        if self.state is not None:
            self.state.checkpoint = False
        recipe.stop_requested = stop
        if not stop:
            self.on_resume(recipe.progress.step)
