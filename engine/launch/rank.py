"""Which rank of a torchrun group this process is, read from torchrun's environment (no torch).

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and ``GROUP_RANK``
(the machine's number) for every process it starts. Roles follow from them:

- the **lead** (global rank 0) records the run: events, metrics, checkpoints, the heartbeat and
  the control requests, all in the workspace's run store;
- a **node lead** (local rank 0 on another machine) keeps that machine's own history row alive
  (status and heartbeat) without training events;
- every other rank writes nothing; it trains its share and follows the lead's decisions.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RankInfo:
    """This process's place in its group (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    node: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RankInfo:
        """The rank torchrun gave this process; rank 0 of 1 outside torchrun."""
        env = os.environ if env is None else env
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        local_world = int(env.get("LOCAL_WORLD_SIZE", "1") or 1)
        return cls(int(env["RANK"]), world, int(env.get("LOCAL_RANK", "0")), local_world,
                   int(env.get("GROUP_RANK", "0") or 0))

    @property
    def grouped(self) -> bool:
        """Whether this process is one rank of several."""
        return self.world > 1

    @property
    def lead(self) -> bool:
        """Whether this rank records the run (global rank 0)."""
        return self.rank == 0

    @property
    def node_lead(self) -> bool:
        """Whether this rank keeps its machine's history row (local rank 0), lead included."""
        return self.local_rank == 0

    def describe(self) -> str:
        """``rank 1 of 2`` for messages."""
        return f"rank {self.rank} of {self.world}"


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent (torchrun's agent) dies.

    A rank whose agent was killed outright would otherwise be left running with nobody to end
    it; with the signal it checkpoints and stops like any run asked to stop.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the agent was gone before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


LOST_MARKERS = ("connection reset by peer", "connection closed by peer", "broken pipe", "gloo", "nccl",
                "timed out", "timeout", "socket", "process group")
"""Words of the errors torch's collectives raise when a peer died, hung or is unreachable."""


def lost_group(exc: BaseException) -> bool:
    """Whether an exception says the group lost a rank (torch's ``DistError`` family or its words)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}:
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(marker in text for marker in LOST_MARKERS)


SOURCE_TAG = re.compile(r"\[[^\]\s]*\.(?:cc|cpp|c|h|hpp|py):\d+\]\s*")
"""torch's note of where in its own source an error was raised (``[/…/gloo/transport/tcp/pair.cc:537]``)."""


def lost_reason(exc: BaseException, limit: int = 200) -> str:
    """What a collective said when the group lost a rank: its first sentence (no full stop, it is quoted
    inside a sentence), without torch's source tag."""
    text = SOURCE_TAG.sub("", str(exc).strip().split("\n", 1)[0]).strip()
    if not text:
        return type(exc).__name__
    sentence = re.match(r".*?[.!?](?=\s|$)", text)
    text = (sentence.group(0) if sentence else text).rstrip(".")
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def group_label(runtime: Mapping[str, object] | None) -> str:
    """``2 ranks, ddp`` for a run whose runtime record names a group; "" for one process."""
    world = (runtime or {}).get("world_size")
    if not isinstance(world, int) or world <= 1:
        return ""
    strategy = (runtime or {}).get("strategy")
    return f"{world} ranks" + (f", {strategy}" if strategy else "")
