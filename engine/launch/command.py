"""The worker's command line: one process, or a ``torch.distributed.run`` group of ranks."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from engine.errors import UserError

STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class GroupShape:
    """How many ranks, on how many machines, and how they meet (torchrun's own flags)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = ""
    master_port: int = 29500
    strategy: str = "ddp"

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1:
            raise UserError(f"distributed.nproc_per_node = {self.nproc_per_node}: must be 1 or more")
        if self.nnodes < 1:
            raise UserError(f"distributed.nnodes = {self.nnodes}: must be 1 or more")
        if not 0 <= self.node_rank < self.nnodes:
            raise UserError(f"distributed.node_rank = {self.node_rank}: must be in 0..{self.nnodes - 1}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"distributed.strategy = {self.strategy!r}: allowed {', '.join(STRATEGIES)}")
        if self.nnodes > 1 and not self.master_addr:
            raise UserError("distributed.master_addr: needed when distributed.nnodes > 1")

    @classmethod
    def from_config(cls, section: Any) -> GroupShape:
        """The shape a ``[distributed]`` section (``DistributedConfig`` or its dict) asks for."""
        values = section if isinstance(section, dict) else vars(section)
        names = ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port", "strategy")
        return cls(**{name: values[name] for name in names if name in values})

    @property
    def world_size(self) -> int:
        """Ranks in the whole group."""
        return self.nproc_per_node * self.nnodes


def worker_command(run_id: str, workspace: str, shape: GroupShape) -> list[str]:
    """``python -m engine.worker RUN_ID``, through torchrun when the group has more than one rank.

    torchrun (``torch.distributed.run``) starts the ranks, watches them and, when one exits
    with an error or is killed, ends the others (SIGTERM, then SIGKILL) and exits itself; no
    restarts (``--max-restarts 0``): a run that lost a rank is ``crashed`` and continues with
    ``train-resume``. One machine gets ``--standalone`` (a rendezvous on a free local port).
    """
    worker = ["-m", "engine.worker", run_id, "--workspace", workspace]
    if shape.world_size == 1:
        return [sys.executable, *worker]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(shape.nproc_per_node),
              "--max-restarts", "0"]
    if shape.nnodes == 1:
        launch.append("--standalone")
    else:
        launch += ["--nnodes", str(shape.nnodes), "--node-rank", str(shape.node_rank),
                   "--master-addr", shape.master_addr, "--master-port", str(shape.master_port)]
    return [*launch, *worker]
