"""A training run as one rank of a torchrun group: the process group, the wrapped model, state.

torchrun (``torch.distributed.run``) starts the ranks and sets their environment;
``start_group`` joins the process group (gloo on CPUs, NCCL on CUDA GPUs, with
``distributed.timeout_s`` as the collective timeout). ``Group`` then holds what the recipe
needs and nothing home-made: DDP (``DistributedDataParallel``) or FSDP2
(``torch.distributed.fsdp.fully_shard``, one unit per decoder layer plus the root), gradient
sync only in an optimizer step's last backward pass (``no_sync`` / ``set_requires_gradient_sync``),
and torch's collectives for the few numbers ranks must agree on.

Checkpoints: with DDP every rank holds the whole model, and rank 0 writes the one-process
format. With FSDP every rank writes its own shards (``torch.distributed.checkpoint``, see
``engine.train.dcp_format``) when every rank sees the run's checkpoint folder (one machine, or a
shared filesystem: ``shared_folder`` checks); else the state is gathered onto rank 0
(``get_model_state_dict`` with ``full_state_dict``, ``savable``/``optimizer_state``) and written
in the one-process format, which needs the whole trained state in rank 0's memory once per
checkpoint. The final model is always gathered once, at the end, into a plain
``save_pretrained`` folder.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from engine.config import Config
from engine.launch.rank import RankInfo


class GroupDDP(DistributedDataParallel):
    """DDP that lets attribute lookups fall through to the wrapped model (``disable_adapter``...)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


@dataclass
class Group:
    """This process's rank, the strategy, and the collectives the recipe uses."""

    info: RankInfo
    strategy: str = "ddp"
    backend: str = "gloo"
    roots: dict[Path, Path | None] = field(default_factory=dict)
    """``shard_root``'s answers, by checkpoint folder (each is asked once per run)."""

    @property
    def lead(self) -> bool:
        """Whether this rank writes events, metrics and checkpoints (global rank 0)."""
        return self.info.lead

    @property
    def world(self) -> int:
        """Ranks in the group."""
        return self.info.world

    @property
    def rank(self) -> int:
        """This process's global rank."""
        return self.info.rank

    @property
    def device(self) -> torch.device:
        """Where the small tensors of collectives live (NCCL needs them on the GPU)."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def describe(self) -> str:
        """``2 ranks (ddp, gloo)`` for the run's log."""
        return f"{self.world} ranks ({self.strategy}, {self.backend})"

    # --- collectives -----------------------------------------------------------------------

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (a new tensor on the CPU)."""
        reduced = values.detach().to(self.device, copy=True)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.cpu()

    def all_min(self, value: int) -> int:
        """The smallest of every rank's ``value``."""
        reduced = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.MIN)
        return int(reduced.item())

    def all_max(self, value: int) -> int:
        """The largest of every rank's ``value``."""
        reduced = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
        return int(reduced.item())

    def from_lead(self, values: list[int]) -> list[int]:
        """The lead's ``values`` on every rank (small integers: control flags)."""
        sent = torch.tensor(values, dtype=torch.int64, device=self.device)
        dist.broadcast(sent, src=0)
        return [int(v) for v in sent.tolist()]

    def barrier(self) -> None:
        """Wait until every rank has come here."""
        self.all_min(1)

    def shard_root(self, folder: Path) -> Path | None:
        """Where every rank writes its shards of a checkpoint in ``folder`` (the lead's ``folder``), or
        None: the lead writes gathered checkpoints (DDP, or an FSDP rank that does not see the folder).

        Every rank calls it (the first call per folder is collective, the answer is kept).
        """
        if self.strategy != "fsdp":
            return None
        if folder not in self.roots:
            self.roots[folder] = self.shared_folder(folder)
        return self.roots[folder]

    def shared_folder(self, folder: Path) -> Path | None:
        """The lead's ``folder`` when every rank sees it as the lead does (one machine, or a shared
        filesystem mounted at the same path), else None. Every rank calls it; the lead makes the folder.

        The lead leaves a file with a random name there; each rank looks for it at the lead's path.
        """
        token = secrets.token_hex(8) if self.lead else ""
        marker = Path(folder) / f".shared-{token}"
        if self.lead:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(token)
        sent: list[Any] = [str(marker)]
        dist.broadcast_object_list(sent, src=0, device=self.device)
        seen = Path(sent[0]).is_file()
        everyone = self.all_min(int(seen))
        if self.lead:
            marker.unlink(missing_ok=True)
        return Path(sent[0]).parent if everyone else None

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    # --- the model ---------------------------------------------------------------------------

    def wrap(self, model: Any) -> Any:
        """The module the training forward goes through: DDP around ``model``, or ``model`` sharded."""
        if self.strategy == "fsdp":
            return shard_model(model)
        ids = [torch.cuda.current_device()] if self.backend == "nccl" else None
        return GroupDDP(model, device_ids=ids, broadcast_buffers=False)

    @contextlib.contextmanager
    def sync(self, trained: Any, last: bool) -> Iterator[None]:
        """Reduce gradients in the backward of this forward only when ``last`` (the optimizer step's last pass)."""
        if self.strategy == "fsdp":
            fsdp_root(trained).set_requires_gradient_sync(last)
            yield
            return
        with contextlib.nullcontext() if last else trained.no_sync():
            yield

    def own_stream(self, seed: int, step: int = 0) -> None:
        """Give this rank a random stream of its own from here on; rank 0 keeps the one it has.

        Every rank seeds ``training.seed`` so that all build the same model (LoRA's random
        init); after that, ranks left on one stream would draw the same dropout masks for
        their different samples. Rank 0 is left alone, so its stream is the one a run
        continued in one process goes on with.
        """
        if self.rank:
            torch.manual_seed(rank_seed(seed, self.rank, step))

    def grad_norm(self, norm: torch.Tensor) -> torch.Tensor:
        """The whole gradient's norm (FSDP's clipping returns it as a DTensor)."""
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def savable(self, model: Any, adapter: bool) -> Any:
        """Something with ``save_pretrained`` that writes the whole model (gathered on rank 0 for FSDP:
        the final model, and checkpoints a rank cannot write its shards of).

        Every rank must call it (the gather is a collective); only the lead's result is written.
        """
        if self.strategy != "fsdp":
            return model
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=adapter)
        return Gathered(model, get_model_state_dict(model, options=options))

    def optimizer_state(self, model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer state in one-process form (index-keyed, whole tensors; empty off the lead)."""
        if self.strategy != "fsdp":
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        named = get_optimizer_state_dict(model, optimizer,
                                         options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return by_index(named) if named else {}

    def load_optimizer_state(self, model: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Load a one-process optimizer state (every rank has read the same file)."""
        if self.strategy != "fsdp":
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, by_name(state, model, optimizer),
                                 options=StateDictOptions(full_state_dict=True))


@dataclass
class Gathered:
    """A model and its gathered full state dict, saved like the model itself."""

    model: Any
    state: dict[str, Any]

    def save_pretrained(self, path: str, safe_serialization: bool = True) -> None:
        """``model.save_pretrained`` with the gathered weights."""
        self.model.save_pretrained(path, state_dict=self.state, safe_serialization=safe_serialization)


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s own stream from optimizer step ``step`` on (a different one per rank and step)."""
    return ((seed * 1_000_003 + rank) * 1_000_003 + step) % 2**63


def parity_note(config: Config, model: Any) -> str:
    """Why a group's per-step losses will follow one process's on the same global batch without
    equalling them ("" when nothing stands in the way: no dropout, fp32).

    Every rank draws its own dropout masks for its own slice of the batch, so no mask matches
    the one process's; bf16 and fp16 round each rank's smaller batches differently.
    """
    dropouts = [name for name, module in model.named_modules()
                if isinstance(module, torch.nn.Dropout) and module.p > 0]
    own = any("lora_dropout" not in name for name in dropouts) or attention_dropout(model) > 0
    causes, cures = [], []
    if any("lora_dropout" in name for name in dropouts):
        causes.append(f"lora.dropout = {config.lora.dropout:g}")
        cures.append("lora.dropout = 0")
    if own:
        causes.append("the model's own dropout")
        cures.append("the dropout keys of the model's config.json at 0")
    parts = [f"each rank draws its own dropout masks ({', '.join(causes)})"] if causes else []
    if config.training.precision in ("bf16", "fp16"):
        parts.append(f"{config.training.precision} rounds each rank's smaller batches differently")
        cures.append('training.precision = "fp32"')
    if not parts:
        return ""
    return (f"per-step losses will follow one process's on the same global batch, not equal them: "
            f"{' and '.join(parts)}; for equal losses: {', '.join(cures)}")


def attention_dropout(model: Any) -> float:
    """The dropout a model applies to its attention weights in training (``attention_dropout`` of its config)."""
    value = getattr(getattr(model, "config", None), "attention_dropout", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def start_group(config: Config, info: RankInfo) -> Group:
    """Join the torchrun group this process belongs to: NCCL with a GPU per rank, else gloo."""
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    extra: dict[str, Any] = {}
    if cuda:
        torch.cuda.set_device(info.local_rank)
        extra["device_id"] = torch.device("cuda", info.local_rank)
    timeout = datetime.timedelta(seconds=config.distributed.timeout_s)
    dist.init_process_group(backend, timeout=timeout, **extra)
    return Group(info, config.distributed.strategy, backend)


def end_group() -> None:
    """Leave the process group (nothing when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def fsdp_root(model: Any) -> Any:
    """The module ``shard_model`` made the FSDP root: the transformers model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def shard_model(model: Any) -> Any:
    """FSDP2 over ``model``: each decoder layer (the model's ``_no_split_modules``) a unit, then the root.

    The root is the transformers model itself, under a peft wrapper when there is one, so that
    ``generate`` (which peft hands to the base model) goes through it too.
    """
    from torch.distributed.fsdp import fully_shard

    root = fsdp_root(model)
    layers = set(getattr(root, "_no_split_modules", None) or ())
    for module in root.modules():
        if type(module).__name__ in layers and module is not root:
            fully_shard(module)
    fully_shard(root)
    return model


def by_index(named: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state keyed by parameter names as ``Optimizer.state_dict()`` keys it (by index)."""
    index: dict[str, int] = {}
    groups = []
    for group in named["param_groups"]:
        ids = [index.setdefault(name, len(index)) for name in group["params"]]
        groups.append({**group, "params": ids})
    return {"state": {index[name]: value for name, value in named["state"].items()}, "param_groups": groups}


def by_name(state: dict[str, Any], model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The inverse of ``by_index`` for this model and optimizer (parameters in the optimizer's order)."""
    names = {param: name for name, param in model.named_parameters()}
    order = [names[param] for group in optimizer.param_groups for param in group["params"]]
    groups = [{**group, "params": [order[i] for i in group["params"]]} for group in state["param_groups"]]
    return {"state": {order[int(i)]: value for i, value in state["state"].items()}, "param_groups": groups}
