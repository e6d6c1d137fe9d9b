"""Each rank's share of every global batch, so a group trains on the batches one process would.

The batch plan (``engine.data.plans``) is made for the whole group: a **global micro-batch** holds
``training.batch_size x data_ranks`` samples (or packed rows; a token budget of
``data.batch_tokens x data_ranks``), where ``data_ranks`` is the world size the run *started*
with, kept in its checkpoints. Rank ``r`` of ``w`` takes a contiguous slice of each global
micro-batch's rows. The data position saved is the global one (epoch, global micro-batch), the
same on every rank, so a run resumed with another world size walks the same global batches:
at 1 rank the one process takes whole global micro-batches (in pieces of about
``batch_size`` rows, see ``pieces``), at 2 each rank takes half (in ``slice_pieces`` pieces).

A rank whose slice is empty (a global micro-batch with fewer rows than ranks, which a token
budget can make) gets the first row with ``samples = 0``: it runs forward and backward with
weight 0, so every rank takes part in every gradient reduction.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.config import Config
from engine.data.batching import Batch, Batches


def share(rows: list[Any], rank: int, world: int) -> list[Any]:
    """Rank ``rank``'s contiguous slice of ``rows`` (sizes differ by at most one; may be empty)."""
    count = len(rows)
    return rows[rank * count // world:(rank + 1) * count // world]


def plan_config(config: Config, data_ranks: int) -> Config:
    """The config the global plan is made from: batch size (or token budget) times ``data_ranks``."""
    if data_ranks <= 1:
        return config
    training, data = config.training, config.data
    return replace(config, training=replace(training, batch_size=int(training.batch_size) * data_ranks),
                   data=replace(data, batch_tokens=data.batch_tokens * data_ranks))


def pieces(rows: int, batch_size: int) -> int:
    """Pieces a rank runs its slice in so that each holds about ``batch_size`` rows (at least 1)."""
    return max(1, -(-rows // max(batch_size, 1)))


def slice_pieces(data_ranks: int, world: int) -> int:
    """Pieces each rank runs its slice of a global micro-batch in: one, unless the run started with
    more ranks than it has now (``data_ranks`` > ``world``: a slice holds several ranks' shares).

    The same on every rank (the rows of a slice are not: a token budget makes them vary, and
    slices differ by a row), so all ranks know alike whether micro-batches are cut.
    """
    return max(1, -(-data_ranks // max(world, 1)))


class _SharedPlan:
    """A view of an epoch's plan that hands out one rank's slice of each batch."""

    def __init__(self, plan: Any, rank: int, world: int) -> None:
        self.plan, self.rank, self.world = plan, rank, world

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> list[list[int]]:
        rows = self.plan[index]
        return share(rows, self.rank, self.world) or rows[:1]

    def empty(self, index: int) -> bool:
        """Whether this rank's slice of batch ``index`` is empty (it gets a stand-in row)."""
        rows = self.plan.rows_in(index)
        return self.rank * rows // self.world == (self.rank + 1) * rows // self.world


class ShardedBatches(Batches):
    """``Batches`` over the global plan that build only rank ``rank``'s slice of each batch."""

    rank: int = 0
    world: int = 1

    def plan(self, epoch: int) -> Any:
        """The epoch's global plan, seen through this rank's slices."""
        return _SharedPlan(super().plan(epoch), self.rank, self.world)

    def batch(self, epoch: int, index: int) -> Batch:
        """This rank's slice of global batch ``index`` (``samples = 0``: a stand-in, weight 0)."""
        built = super().batch(epoch, index)
        if self.plan(epoch).empty(index):
            built.samples, built.real_tokens = 0, 0
        return built
