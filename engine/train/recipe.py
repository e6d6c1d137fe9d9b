"""The fine-tuning recipe: set up, train, evaluate, checkpoint, resume.

One object holds the model, optimizer, scheduler, data and progress; ``train`` is a flat loop of
optimizer steps. Everything a run reports goes out through ``emit`` as events from
``engine.events``, so the same recipe serves the worker, the tests and the benchmarks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint_meta import is_sharded
from engine.config import Config
from engine.data.batching import Batch
from engine.data.mixing import samples_seen
from engine.data.template import TokenizedSample
from engine.errors import UserError
from engine.events import CheckpointSaved, Eval, Log, Stage, Step
from engine.objectives import make as make_objective
from engine.train import auto_batch, precision, schedule
from engine.train import checkpoint as ckpt
from engine.train.dcp_format import load_sharded, save_sharded
from engine.train.evaluate import EvalStopped, autocast, evaluate_loss
from engine.train.feed import BatchFeed
from engine.train.group_step import group_step
from engine.train.methods import load_adapter, load_for_method, no_kv_cache, prepare_for_method, uses_adapter
from engine.train.model import fit_embeddings
from engine.train.oom import backoff_message, forward_backward, free_memory, is_oom
from engine.train.optimizer import adamw
from engine.train.qat import FakeQuantSwitch
from engine.train.shards import pieces, plan_config

Emit = Callable[[Any], None]


@dataclass
class RecipeData:
    """Training and evaluation samples and the pad id to batch them with.

    Either may be a prepared dataset (``engine.data.pipeline``) or a list of samples.
    """

    train: Any
    eval: Sequence[TokenizedSample]
    pad_id: int
    vocab_size: int = 0
    new_tokens: tuple[int, ...] = ()
    """Tokens the run added to the tokenizer (chat markers): an adapter trains their rows too."""
    eval_sets: dict[str, Any] = field(default_factory=dict)
    """Held-out samples of each mixed source by name: evaluated alone too (``loss_<name>``)."""


@dataclass
class StepStats:
    """What one optimizer step measured (tensors until logging needs numbers)."""

    loss: torch.Tensor
    grad_norm: torch.Tensor
    tokens: int
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class FineTune:
    """A fine-tuning run over a loaded base model; call ``setup`` then ``train``."""

    config: Config
    model: Any
    data: RecipeData
    checkpoint_dir: Path
    emit: Emit
    meta: dict[str, Any] = field(default_factory=dict)
    progress: ckpt.TrainingProgress = field(default_factory=ckpt.TrainingProgress)
    stop_requested: bool = False
    control: Callable[[Any], None] | None = None
    losses: list[float] = field(default_factory=list)
    best_checkpoint: Path | None = None
    saved_step: int | None = None
    """The step of the last checkpoint written: ``save`` writes a step once (a pause, then a stop)."""
    step_hooks: list[Callable[[Any], None]] = field(default_factory=list)
    """Called with the recipe after every optimizer step (sample generations, QAT switch...)."""
    objective: Any = None
    """The training objective (``engine.objectives``); None: the one ``training.objective`` names."""
    stage: str = ""
    """The stage last reported through ``emit`` (the loop says "training" again after any other)."""
    train_s: float = 0.0
    """Seconds spent in optimizer steps by this process (the pace of the ETA; see ``Step.train_s``)."""
    group: Any = None
    """This rank's torchrun group (``engine.train.distributed.Group``); None: one process."""
    interrupt: Callable[[], bool] = lambda: False
    """Asked between evaluation batches: yes (a stop request) cuts the step's evaluation short. One
    process only: a group's ranks agree on a stop once per step (``engine.train.group_step``)."""

    def __post_init__(self) -> None:
        """Route ``emit`` through a watch on the stages it reports."""
        outer = self.emit

        def emit(event: Any) -> None:
            if isinstance(event, Stage):
                self.stage = event.name
            outer(event)
        self.emit = emit

    def setup(self, resume_from: Path | None = None) -> None:
        """Wrap the model for the method, build optimizer and schedule, restore a checkpoint."""
        torch.manual_seed(self.config.training.seed)
        # every precision, not only "auto": an explicit bf16 on a CPU without it gets its warning here
        self.config = precision.resolve(self.config, self.emit, next(self.model.parameters()).device)
        self._set_objective()
        self.model = prepare_for_method(self.model, self.config, self.data.new_tokens)
        no_kv_cache(self.model)
        if resume_from is not None and uses_adapter(self.config) and not is_sharded(resume_from):
            load_adapter(self.model, resume_from)  # (a sharded checkpoint loads in _restore, once the model is wrapped)
        self.objective.attach(self.model, self._reference_loader(resume_from))
        self.model.train()
        self._resolve_batch_size(resume_from)
        self.trained = self.model if self.group is None else self.group.wrap(self.model)
        """The module training forwards go through (DDP around the model, or the model sharded)."""
        if self.group is not None:
            self.group.own_stream(self.config.training.seed)  # the model is built: each rank its own dropout
        fp16 = self.config.training.precision == "fp16"
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None
        self.optimizer = adamw(self.model, self.config)
        self._make_feed(resume_from)
        self.total_steps = self._total_steps(self.feed.batches_per_epoch())
        from transformers import get_cosine_schedule_with_warmup

        self.scheduler = get_cosine_schedule_with_warmup(
            self.optimizer, min(self.config.training.warmup_steps, self.total_steps), self.total_steps)
        if resume_from is not None:
            self._restore(resume_from)
        self.feed.rewind(self.progress.data_state)
        if self.config.training.method == "qat":
            self.step_hooks.insert(0, FakeQuantSwitch(self.config.qat))
            self.step_hooks[0](self)

    def _make_feed(self, resume_from: Path | None) -> None:
        """The batch stream: the global plan of the world size the run started with, this rank's slices."""
        saved = ckpt.read_meta(resume_from)["progress"] if resume_from is not None else {}
        world = self.group.world if self.group is not None else 1
        self.progress.data_ranks = int(saved.get("data_ranks", 1)) if resume_from is not None else world
        shard = (self.group.rank, world) if self.group is not None else None
        self.feed = BatchFeed(self.data.train, plan_config(self.config, self.progress.data_ranks), self.data.pad_id,
                              self.data.vocab_size, collate=self.objective.batch_form(), shard=shard)

    @property
    def lead(self) -> bool:
        """Whether this process writes the run's files and events (one process, or rank 0)."""
        return self.group is None or self.group.lead

    def _set_objective(self) -> None:
        """Make the objective; batches are packed as it says (``pretrain`` packs by default)."""
        if self.objective is None:
            self.objective = make_objective(self.config)
        packed = self.objective.packed()
        if packed != self.config.data.packing:
            self.config = replace(self.config, data=replace(self.config.data, packing=packed))
            self.objective.config = self.config

    def _reference_loader(self, resume_from: Path | None) -> Callable[[], Any]:
        """How to get a frozen copy of the base (for objectives with a reference model).

        Before training it is a copy of the model as loaded; a resumed full-weights run loads the
        base again from ``meta["base_model"]`` (the model it holds is the checkpoint's).
        """
        if resume_from is None or uses_adapter(self.config):
            import copy

            return lambda: copy.deepcopy(self.model)  # asked for in attach(), before any step
        base = self.meta.get("base_model")

        def load_base() -> Any:
            if not base:
                raise UserError("resuming: the reference model needs the run's base model (meta base_model)")
            reference = load_for_method(Path(base), self.config)
            fit_embeddings(reference, self.data.vocab_size, self.config.training.seed)
            return prepare_for_method(reference, self.config, self.data.new_tokens)
        return load_base

    def _resolve_batch_size(self, resume_from: Path | None) -> None:
        """Turn ``training.batch_size = "auto"`` into a number: the checkpoint's, or a probe's."""
        if self.config.training.batch_size != "auto":
            return
        size = auto_batch.checkpoint_batch_size(resume_from) if resume_from is not None else None
        if size is None:
            self.emit(Stage("sizing_batch"))
            length = auto_batch.probe_length(self.data.train, self.config)
            found = auto_batch.find_batch_size(self.model, self.config, length, self.objective)
            size = found.batch_size
            self.emit(Log("info", found.describe()))
            if self.group is not None:
                size = self.group.all_min(size)  # every rank trains the same shape
        self.config = replace(self.config, training=replace(self.config.training, batch_size=size))
        self.meta["batch_size"] = size

    def _total_steps(self, per_epoch: int) -> int:
        """Optimizer steps this run makes: ``max_steps``, or enough for ``epochs`` epochs."""
        training = self.config.training
        if training.max_steps > 0:
            return training.max_steps
        return max(1, training.epochs * math.ceil(per_epoch / training.gradient_accumulation_steps))

    def _restore(self, folder: Path) -> None:
        """Optimizer, scheduler, RNG and progress from a checkpoint."""
        state = ckpt.load_trainer_state(folder)
        if is_sharded(folder):  # weights and optimizer, resharded to this run's ranks (or none)
            load_sharded(folder, self.model, self.optimizer, uses_adapter(self.config))
        elif self.group is None:
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            self.group.load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        peak = self.config.training.learning_rate
        old = schedule.rebase(self.scheduler, self.optimizer, peak)
        if old is not None:
            self.emit(Log("info", f"learning rate: peak {peak:.2e} from here on (was {old:.2e})"))
        ranks = state.get("rank_rng") or []
        same_world = self.group is not None and len(ranks) == self.group.world
        ckpt.set_rng_state(ranks[self.group.rank] if same_world else state["rng"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        saved = dict(ckpt.read_meta(folder)["progress"])
        saved.setdefault("data_state", {"epoch": saved.get("epoch", 0), "index": saved.get("batch_in_epoch", 0)})
        self.progress = ckpt.TrainingProgress(**saved)
        if self.group is not None and not same_world:  # every rank got the one saved stream
            self.group.own_stream(self.config.training.seed, self.progress.step)
        best = self.progress.best_checkpoint
        self.best_checkpoint = Path(best) if best and Path(best).is_dir() else None

    def train(self) -> str:
        """Run optimizer steps until done, stopped early or asked to stop; returns why it ended."""
        training = self.config.training
        device = next(self.model.parameters()).device
        window_time, window_tokens = 0.0, 0
        if self.progress.eval_pending:  # a stop cut this step's evaluation short: it runs first
            self.progress.eval_pending = False
            if self.data.eval and self._evaluate_and_check():
                return self._end("early_stopping")
            if self.stop_requested:
                return self._end("stopped")
        while self.progress.step < self.total_steps:
            if self.stage != "training":
                self.emit(Stage("training"))
            started = time.perf_counter()
            stats = self._optimizer_step(device)
            self.progress.step += 1
            window_tokens += stats.tokens
            self.progress.tokens_seen += stats.tokens
            spent = time.perf_counter() - started
            window_time += spent
            self.train_s += spent
            if self.progress.step % training.log_steps == 0 or self.progress.step == self.total_steps:
                self._log_step(stats, window_tokens / max(window_time, 1e-9),
                               self.progress.elapsed_s + time.perf_counter() - started)
                window_time, window_tokens = 0.0, 0
            self._after_step()
            if self._eval_due() and self._evaluate_and_check():
                return self._end("early_stopping")
            self.progress.elapsed_s += time.perf_counter() - started
            if self.control is not None:
                self.control(self)
            if self.stop_requested:
                return self._end("stopped")
            if self.progress.step % self.config.checkpoint.save_steps == 0 and self.progress.step < self.total_steps:
                self.save("interval")  # the last step's checkpoint is the final one, written once below
        return self._end("finished")

    def _end(self, reason: str) -> str:
        """Write the checkpoint the loop ends with (``final`` when finished) and close the feed."""
        self.save("final" if reason == "finished" else reason)
        self.feed.close()
        return reason

    def _after_step(self) -> None:
        """Run the step hooks."""
        for hook in self.step_hooks:
            hook(self)

    def _optimizer_step(self, device: torch.device) -> StepStats:
        """One optimizer step; when it runs out of memory, again with micro-batches split in two."""
        if self.group is not None:
            return group_step(self, device)  # no out-of-memory back-off: the ranks would part ways
        position = (dict(self.progress.data_state), ckpt.rng_state())
        while True:
            try:
                return self._accumulate(device)
            except RuntimeError as exc:
                if not is_oom(exc):
                    raise
            self._back_off(device, position)

    def _back_off(self, device: torch.device, position: tuple[dict[str, int], dict[str, Any]]) -> None:
        """Forget the failed step's gradients, rewind its data and RNG, halve the micro-batch."""
        self.optimizer.zero_grad(set_to_none=True)
        free_memory(device)
        training, step = self.config.training, self.progress.step + 1
        if self.progress.micro_batch_splits >= training.batch_size:
            raise UserError(f"out of memory at step {step} with a micro-batch of one sample: lower "
                            "data.max_length or set training.gradient_checkpointing = true")
        self._set_position(position[0])
        self.feed.rewind(position[0])
        ckpt.set_rng_state(position[1])
        self.progress.micro_batch_splits *= 2
        self.emit(Log("warning", backoff_message(step, training.batch_size, training.gradient_accumulation_steps,
                                                 self.progress.micro_batch_splits)))

    def _accumulate(self, device: torch.device) -> StepStats:
        """Accumulate gradients over the step's micro-batches, then apply them."""
        training = self.config.training
        accumulation = training.gradient_accumulation_steps
        losses, metrics, tokens = [], [], 0
        for _ in range(accumulation):
            micro = self._next_batch()
            batch = {k: v.to(device, non_blocking=True) for k, v in micro.inputs.items()}
            loss, values = forward_backward(self.objective, self.model, batch, self._splits(batch),
                                            1 / accumulation, self._backward,
                                            lambda: autocast(training.precision, device))
            losses.append(loss)
            metrics.append(values)
            tokens += micro.real_tokens
        means = {name: torch.stack([m[name] for m in metrics]).mean() for name in metrics[0]}
        return self._apply_gradients(torch.stack(losses).mean(), tokens, means)

    def _splits(self, batch: dict[str, torch.Tensor]) -> int:
        """Pieces a micro-batch runs in: the back-off's, or more for a bigger group's global batch."""
        if self.progress.data_ranks <= 1:
            return self.progress.micro_batch_splits
        rows = pieces(self.objective.rows(batch), int(self.config.training.batch_size))
        return max(self.progress.micro_batch_splits, rows)

    def _backward(self, loss: torch.Tensor) -> None:
        """Backward pass, through the fp16 gradient scaler when there is one."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _apply_gradients(self, loss: torch.Tensor, tokens: int, metrics: dict[str, torch.Tensor]) -> StepStats:
        """Clip, step optimizer (through the scaler for fp16) and schedule, clear the gradients."""
        max_grad_norm = self.config.training.max_grad_norm
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepStats(loss, grad_norm, tokens, metrics)

    def _next_batch(self) -> Batch:
        """The next micro-batch in the run's deterministic order; the position moves past it."""
        batch = self.feed.next()
        self._set_position(self.feed.state_dict())
        return batch

    def _set_position(self, state: dict[str, int]) -> None:
        """Record the data position (kept in checkpoints) and the epoch it is in."""
        self.progress.data_state = dict(state)
        self.progress.epoch, self.progress.batch_in_epoch = state["epoch"], state["index"]

    def _log_step(self, stats: StepStats, tokens_per_s: float, elapsed_s: float) -> None:
        """Emit a Step event (the only place a step's numbers leave the device)."""
        loss = float(stats.loss)
        self.losses.append(loss)
        per_epoch = max(self.feed.batches_per_epoch(self.progress.epoch), 1)
        epoch = self.progress.epoch + self.progress.batch_in_epoch / per_epoch
        self.emit(Step(step=self.progress.step, total_steps=self.total_steps, epoch=epoch, loss=loss,
                       lr=self.scheduler.get_last_lr()[0], grad_norm=float(stats.grad_norm),
                       tokens_per_s=tokens_per_s, elapsed_s=elapsed_s,
                       metrics={name: float(value) for name, value in stats.metrics.items()},
                       train_s=self.train_s))

    def _eval_due(self) -> bool:
        """Whether this step ends with an evaluation."""
        steps = self.config.eval.steps
        return bool(self.data.eval) and steps > 0 and self.progress.step % steps == 0

    def _evaluate_and_check(self) -> bool:
        """Evaluate, track the best loss; True when early stopping says to stop.

        A stop asked for meanwhile (``interrupt``) cuts the evaluation short: the step's checkpoint
        then says so (``eval_pending``), and the run resumed from it evaluates that step first, so
        its evaluations and early stopping go on as if it had never stopped.
        """
        try:
            result = self.evaluate(should_stop=self.interrupt)
        except EvalStopped:
            self.progress.eval_pending, self.stop_requested = True, True
            self.emit(Log("info", f"stop: the evaluation of step {self.progress.step} was cut short; "
                                  "a resumed run evaluates that step first"))
            return False
        stopping, progress = self.config.early_stopping, self.progress
        if progress.best_eval_loss is None or result < progress.best_eval_loss - stopping.min_delta:
            progress.best_eval_loss = result
            progress.evals_without_improvement = 0
        else:
            progress.evals_without_improvement += 1
        if stopping.enabled and progress.evals_without_improvement >= stopping.patience:
            self.emit(Log("info", f"early stopping: no improvement in {stopping.patience} evaluations"))
            return True
        return False

    def evaluate(self, should_stop: Callable[[], bool] = lambda: False) -> float:
        """Eval loss on the evaluation samples (and each mixed source's: ``loss_<name>``); emits an Eval event.

        ``EvalStopped`` (nothing emitted) when ``should_stop`` says yes between two batches.
        """
        def on(samples: Any, emit: Any = None) -> Any:
            return evaluate_loss(self.model, samples, self.config.eval.batch_size, self.data.pad_id,
                                 self.config.training.precision, self.config.eval.max_batches,
                                 should_stop=should_stop, objective=self.objective, emit=emit)
        result = on(self.data.eval, self.emit)
        metrics = {**result.metrics, **{f"loss_{name}": on(part).loss for name, part in self.data.eval_sets.items()}}
        self.last_eval_loss, self.last_eval_step, self.last_eval_metrics = result.loss, self.progress.step, metrics
        seen = samples_seen(self.data.train, self.feed.batches.plan, self.progress.data_state)
        self.emit(Eval(step=self.progress.step, eval_loss=result.loss, perplexity=result.perplexity,
                       metrics={**metrics, **seen}))
        return result.loss

    def save(self, reason: str) -> Path:
        """Write a checkpoint of the current state and emit CheckpointSaved; once per step.

        Nothing trains between two saves at one step (a pause's checkpoint, then a stop or the
        final one), so the second returns the folder already written.
        """
        folder = self.checkpoint_dir / ckpt.checkpoint_name(self.progress.step)
        if self.saved_step == self.progress.step and (self.group is not None or folder.is_dir()):
            return folder  # (every rank decides alike: a rank on another machine may not see the folder)
        self.emit(Stage("saving_checkpoint", detail=folder.name))
        eval_loss = getattr(self, "last_eval_loss", None) if self._eval_due() else None
        is_best = eval_loss is not None and eval_loss == self.progress.best_eval_loss
        if is_best and self.config.checkpoint.save_best:
            self.best_checkpoint = folder
            self.progress.best_checkpoint = str(folder)
        self.saved_step = self.progress.step
        folder = self._write_checkpoint(folder, {**self.meta, "reason": reason})
        if not self.lead:
            return folder
        existing = [p for p in self.checkpoint_dir.glob("step-*") if p.is_dir()]
        ckpt.prune(existing, self.config.checkpoint.keep_last_n, self.best_checkpoint)
        self.emit(CheckpointSaved(step=self.progress.step, path=str(folder), eval_loss=eval_loss,
                                  is_best=is_best))  # after pruning: the store forgets what went
        return folder


    def _write_checkpoint(self, folder: Path, meta: dict[str, Any]) -> Path:
        """Write a checkpoint; every rank calls it. An FSDP group whose ranks all see the folder writes
        it sharded (each rank its shards); else the lead writes it whole (gathered). Returns its path."""
        adapter = uses_adapter(self.config)
        root = self.group.shard_root(self.checkpoint_dir) if self.group is not None else None
        if root is not None:
            return save_sharded(root / folder.name, self.model, self.optimizer, self._trainer_state(sharded=True),
                                self.progress, meta, self.group, adapter)
        state = self._trainer_state()
        model = self.model if self.group is None else self.group.savable(self.model, adapter)
        if self.lead:
            ckpt.save_checkpoint(folder, model, state, self.progress, meta)
        return folder

    def _trainer_state(self, sharded: bool = False) -> dict[str, Any]:
        """Optimizer, scheduler, RNG (and scaler) states as a checkpoint keeps them; every rank's RNG in a group.

        ``sharded``: the optimizer state is in the checkpoint's shards, not here.
        """
        optimizer = (None if sharded else self.optimizer.state_dict() if self.group is None
                     else self.group.optimizer_state(self.model, self.optimizer))
        state = {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(), "rng": ckpt.rng_state()}
        if self.group is not None:
            state["rank_rng"] = self.group.gather(state["rng"])
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state
