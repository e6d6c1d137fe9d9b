"""The jobs a worker runs: build the built-in base, fine-tune, evaluate (imports torch).

Each job reads its inputs from the run record, reports through ``emit`` and returns its final
metrics. The worker process (``engine.worker``) wraps them with status, signals and heartbeats.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.builtin import base_dir, is_built
from engine.checkpoint_meta import TMP_PREFIX, check_checkpoint, is_sharded, read_checkpoint_meta
from engine.config import Config, config_from_dict
from engine.data.dataset import Conversation
from engine.data.mixing import Mixture, samples_seen
from engine.disk import writing
from engine.errors import UserError
from engine.events import Log, Runtime, Stage
from engine.launch.rank import RankInfo
from engine.objectives import make as make_objective
from engine.store import RunRecord
from engine.train import precision, qat
from engine.train.distributed import Group, end_group, parity_note, start_group
from engine.train.evaluate import evaluate_loss, exact_match
from engine.train.export import export_checkpoint, export_tokenizer, inspect_source, save_generation_config, stop_at
from engine.train.generation import SampleGenerations
from engine.train.methods import load_for_method, uses_adapter
from engine.train.model import (
    device,
    fit_embeddings,
    load_model,
    load_run_tokenizer,
    save_options,
    trainable_parameters,
)
from engine.train.pretrain import build_base
from engine.train.quant import describe
from engine.train.recipe import FineTune, RecipeData
from engine.train.run_data import prepare_eval_data, prepare_run_data, probe_conversations
from engine.train.tensorboard import TensorBoardLog, with_tensorboard
from engine.workspace import Workspace

Emit = Callable[[Any], None]


def run_config(run: RunRecord) -> tuple[Config, dict[str, Any]]:
    """The resolved config of a run and its job parameters."""
    stored = dict(run.config)
    job = stored.pop("job", {})
    return config_from_dict(stored), job


def base_model_path(config: Config, workspace: Workspace) -> Path:
    """The folder the run's base model loads from: ``model.path`` or the built-in base."""
    if config.model.path:
        return Path(config.model.path).expanduser()
    return base_dir(workspace.models_dir, config.model.builtin)


def build_base_job(run: RunRecord, workspace: Workspace, emit: Emit, should_stop: Callable[[], bool]) -> dict[str, Any]:
    """Build the built-in base model a run needs (a no-op when it is already built)."""
    folder = Path(run.output_dir)
    if not is_built(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        build_base(run.model, folder, emit, should_stop)
    return {"path": str(folder)}


def train_job(run: RunRecord, workspace: Workspace, emit: Emit, recipe_ready: Callable[[FineTune], None],
              should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Fine-tune: load data and model, train, save the final weights, measure before/after.

    Under torchrun every rank runs this job: it joins the group first and leaves it at the end.
    ``should_stop`` cuts the base model's measures short (exact match: the run ends ``stopped``
    before training; sample answers: none kept).
    """
    config, _ = run_config(run)
    info = RankInfo.from_env()
    group = start_group(config, info) if info.grouped else None
    try:
        return _train(run, workspace, emit, recipe_ready, group, should_stop)
    finally:
        end_group()


def _train(run: RunRecord, workspace: Workspace, emit: Emit, recipe_ready: Callable[[FineTune], None],
           group: Group | None, should_stop: Callable[[], bool]) -> dict[str, Any]:
    """``train_job`` inside its group (None: one process)."""
    config, job = run_config(run)
    base = base_model_path(config, workspace)
    tokenizer, added = load_run_tokenizer(base, config)
    if added:
        emit(Log("info", f"{base}: no chat template; training with ChatML, its markers added as special tokens "
                         f"(ids {added}, rows trained) and <|im_end|> as EOS"))
    with one_at_a_time(workspace.cache_dir, group is not None):  # the first rank fills the cache
        prepared = prepare_run_data(config, job, tokenizer, workspace, run.id, emit)
    new_tokens = tuple(sorted(set(added) | set(prepared.control_ids)))
    data = RecipeData(prepared.train, prepared.eval, tokenizer.pad_token_id, len(tokenizer), new_tokens,
                      prepared.eval_sets)
    resume = Path(job["resume_from"]) if job.get("resume_from") else None
    if resume is not None:
        emit(Stage("loading_checkpoint", detail=resume.name))
        check_checkpoint(resume)  # one line naming a damaged file, before anything is written
    whole = resume is not None and not uses_adapter(config) and not is_sharded(resume)
    model_path = resume if whole else base  # (sharded weights load into the base's shape in recipe.setup)
    emit(Stage("loading_model", detail=model_path.name))
    model = load_for_method(model_path, config)
    fit_embeddings(model, len(tokenizer), config.training.seed)
    stop_at(model, tokenizer)
    probe = prepared.probe
    base_probe = probe if resume is None else []
    metrics: dict[str, Any] = {"train_samples": len(data.train), "eval_samples": len(data.eval)}
    if base_probe and not base_kept_apart(config):
        metrics["exact_match_base"] = exact_match(model, tokenizer, probe, config.eval.max_new_tokens,
                                                  should_stop=should_stop, emit=emit, detail="(base model)").accuracy
    output = Path(run.output_dir)
    lead = group is None or group.lead
    board = TensorBoardLog(output / "tensorboard") if config.logging.tensorboard and lead else None
    emit = with_tensorboard(emit, board) if board else emit
    mixture = check_mixture(data.train, resume)
    recipe = FineTune(config, model, data, output / "checkpoints", emit,
                      meta={"run_id": run.id, "base_model": str(base), "config": run.config, **mixture},
                      group=group)
    samples = SampleGenerations(tokenizer, config.eval.sample_prompts, config.eval.sample_steps,
                                config.eval.max_new_tokens, recipe.emit)
    recipe.step_hooks.append(samples)
    recipe.setup(resume_from=resume)
    if resume is None:
        samples.base(recipe.model, should_stop)
    if group is not None:
        emit(Runtime(world_size=group.world, strategy=group.strategy, backend=group.backend))
        emit(Log("info", f"{group.describe()}: each optimizer step trains a global batch of "
                         f"{global_batch(recipe)} samples, every rank its share"))
        if note := parity_note(recipe.config, recipe.model):
            emit(Log("info", note))
        if note := checkpoint_note(group, recipe.checkpoint_dir):
            emit(Log("info", note))
    trainable, total = trainable_parameters(recipe.model)
    emit(Log("info", f"{recipe.objective.summary()}, {method_summary(config)}: training {trainable:,} of "
                     f"{total:,} parameters on {len(data.train)} samples for {recipe.total_steps} steps"))
    recipe_ready(recipe)
    try:
        reason = recipe.train()
        if base_probe and base_kept_apart(config) and reason != "stopped":
            metrics["exact_match_base"] = _base_exact_match(recipe, tokenizer, base_probe)
        metrics.update(_finish(recipe, tokenizer, probe, output, reason))
    finally:
        if board:
            board.close()
    return metrics


def checkpoint_note(group: Group, folder: Path) -> str:
    """How an FSDP group writes its checkpoints ("" for DDP, whose rank 0 holds the whole model).

    Every rank calls it (finding out whether every rank sees ``folder`` is collective).
    """
    if group.strategy != "fsdp":
        return ""
    if group.shard_root(folder) is not None:
        return "checkpoints: sharded, each rank writes its own shards (torch.distributed.checkpoint)"
    return (f"checkpoints: gathered on rank 0 and written whole, since a rank on another machine does not see "
            f"{folder}; on a filesystem every machine shares, at the same path, each rank writes its own shards")


def check_mixture(train: Any, resume: Path | None) -> dict[str, Any]:
    """``{"mixture": signature}`` of mixed sources for the checkpoints ({} for one file); a resumed run
    whose sources changed since its checkpoint (sizes, weights) is refused, as it could not continue exactly."""
    if not isinstance(train, Mixture):
        return {}
    signature = train.signature()
    saved = read_checkpoint_meta(resume).get("mixture") if resume is not None else None
    if saved is not None and saved != signature:
        raise UserError(f"{resume}: the data sources changed since this checkpoint (then {mixture_words(saved)}; "
                        f"now {mixture_words(signature)}); the run cannot continue exactly, start a new one")
    return {"mixture": signature}


def mixture_words(signature: Any) -> str:
    """``chat 58 samples (87 an epoch), multi 58 samples (29 an epoch)`` from a mixture's signature."""
    try:
        return ", ".join(f"{name} {size} samples ({count} an epoch)" for name, size, count in
                         zip(signature["names"], signature["sizes"], signature["counts"], strict=True))
    except (KeyError, TypeError, ValueError):
        return str(signature)


def base_kept_apart(config: Config) -> bool:
    """Whether the trained model still holds the untouched base (an adapter over it, no fake quant).

    Then the base's exact match is measured after training with the adapter switched off, so
    the first optimizer step does not wait for a hundred greedy generations.
    """
    return uses_adapter(config) and config.training.method != "qat"


def _base_exact_match(recipe: FineTune, tokenizer: Any, probe: list[Conversation]) -> float:
    """Exact match of the base: the trained adapter model with its adapter disabled."""
    with recipe.model.disable_adapter():
        return exact_match(recipe.model, tokenizer, probe, recipe.config.eval.max_new_tokens,
                           emit=recipe.emit, detail="(base model)").accuracy


def method_summary(config: Config) -> str:
    """The training method in a few words, e.g. ``qlora (4-bit nf4 base)``."""
    method = config.training.method
    if method == "qlora":
        return f"qlora ({describe(config.quant)} base)"
    if method == "qat":
        lora = " + LoRA" if config.qat.lora else ""
        return (f"qat{lora} (int4 weights in groups of {config.qat.group_size}, int8 activations, "
                f"fake quantization from step {config.qat.fake_quant_after_n_steps})")
    return method


def _finish(recipe: FineTune, tokenizer: Any, probe: list[Conversation], output: Path, reason: str) -> dict[str, Any]:
    """Save the final weights with the tokenizer and measure the trained model."""
    final = output / "final"
    recipe.emit(Stage("saving_model", detail=str(final)))
    save_final(recipe, tokenizer, final)
    metrics: dict[str, Any] = {"stopped_reason": reason, "steps": recipe.progress.step,
                               "final_path": str(final)}
    if recipe.losses:
        metrics.update(first_loss=recipe.losses[0], last_loss=recipe.losses[-1])
    if recipe.data.eval:
        evaluated_now = getattr(recipe, "last_eval_step", None) == recipe.progress.step
        same_model = recipe.config.training.method != "qat"  # qat's final model is the converted one
        if reason == "stopped" and not (evaluated_now and same_model):  # a stop does not wait for one
            recipe.emit(Log("info", "stopped: no final evaluation (train-eval evaluates any checkpoint)"))
        else:
            if not (evaluated_now and same_model):
                recipe.evaluate()
            metrics["eval_loss"] = recipe.last_eval_loss
            metrics.update({f"eval_{name}": value for name, value in recipe.last_eval_metrics.items()})
    metrics.update(samples_seen(recipe.data.train, recipe.feed.batches.plan, recipe.progress.data_state))
    if probe and reason != "stopped":
        metrics["exact_match"] = exact_match(recipe.model, tokenizer, probe, recipe.config.eval.max_new_tokens,
                                             emit=recipe.emit).accuracy
    return metrics


def save_final(recipe: FineTune, tokenizer: Any, final: Path) -> None:
    """Write the final model and tokenizer into a temporary folder, then rename it to ``final``.

    A crash mid-write leaves no half-written ``final/``; a full disk is a ``DiskFullError``.
    """
    qat_model = recipe.config.training.method == "qat"
    if qat_model:
        recipe.model = qat.convert(recipe.model, recipe.config.qat)  # (every rank: exact match follows)
    group = recipe.group
    model = recipe.model if group is None else group.savable(recipe.model, uses_adapter(recipe.config))
    if not recipe.lead:
        return
    tmp = final.with_name(TMP_PREFIX + final.name)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(tmp):
            if qat_model:
                qat.save_quantized(recipe.model, tmp, recipe.config.qat)
            else:
                model.save_pretrained(str(tmp), safe_serialization=True, **save_options(model))
            tokenizer.save_pretrained(str(tmp))
            save_generation_config(recipe.model, tmp, tokenizer)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def global_batch(recipe: FineTune) -> int:
    """Samples (or packed rows) in one optimizer step's global batch."""
    training = recipe.config.training
    return int(training.batch_size) * recipe.progress.data_ranks * training.gradient_accumulation_steps


@contextlib.contextmanager
def one_at_a_time(folder: Path, grouped: bool) -> Iterator[None]:
    """Hold a lock on ``folder`` (grouped ranks on one machine prepare data in turn; the first fills the cache)."""
    if not grouped:
        yield
        return
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".prepare.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export_job(run: RunRecord, workspace: Workspace, emit: Emit) -> dict[str, Any]:
    """Export a checkpoint as an adapter or a merged standalone model into the run's output folder."""
    config, job = run_config(run)
    result = export_checkpoint(Path(job["target"]), Path(run.output_dir), bool(job.get("merge")), config, emit)
    emit(Log("info", f"exported {result['kind']} to {result['output']}"))
    return result


def eval_job(run: RunRecord, workspace: Workspace, emit: Emit,
             should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Evaluate a model folder, adapter or checkpoint on a dataset with the run's objective.

    The data goes through the token cache as a training run's does, and the loss and metrics come
    from the objective and ``evaluate_loss``, as a run's evaluations do: eval loss and perplexity
    for sft and pretrain (plus exact match on chat data), eval loss and the rewards for pairs and
    judged answers. A stop request ends it between two batches (``EvalStopped``; the run is
    recorded as stopped).
    """
    config, job = run_config(run)
    target = Path(job["target"])
    emit(Stage("loading_model", detail=target.name))
    model, tokenizer = load_for_eval(target, config, job.get("reference", ""))
    config = precision.resolve(config, emit, next(model.parameters()).device)
    objective = eval_objective_for(model, target, config, job.get("reference", ""))
    samples = prepare_eval_data(config, Path(job["data"]), tokenizer, workspace, run.id, emit)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:  # data.prepend_tokens added
        model.resize_token_embeddings(len(tokenizer))
    result = evaluate_loss(model, samples, config.eval.batch_size, tokenizer.pad_token_id,
                           config.training.precision, should_stop=should_stop, objective=objective, emit=emit)
    metrics: dict[str, Any] = {"objective": objective.name, "eval_loss": result.loss, "samples": len(samples)}
    if result.metrics:
        metrics.update(result.metrics)
    else:
        metrics.update(perplexity=result.perplexity, tokens=result.tokens)
    if getattr(objective, "reference", None) is not None:
        metrics["reference"] = "the base, adapter off" if objective.reference.adapter_off else job["reference"]
    probe = probe_conversations(Path(job["data"]), config) if objective.records == "chat" else []
    if probe:
        metrics["exact_match"] = exact_match(model, tokenizer, probe, config.eval.max_new_tokens,
                                             should_stop=should_stop, emit=emit).accuracy
    return metrics


def eval_objective_for(model: Any, target: Path, config: Config, reference: str) -> Any:
    """The run's objective, attached to ``model`` with its reference model where it has one.

    An adapter's reference is its base with the adapter switched off; a full model's is the base
    its run started from (``reference``), loaded when the objective asks for it.
    """
    adapter = (target / "adapter_config.json").is_file()
    config = replace(config, training=replace(config.training, method="lora" if adapter else "full"))
    objective = make_objective(config)

    def base_copy() -> Any:
        if not reference:
            raise UserError(f"{target}: training.objective = '{objective.name}' compares with the model's "
                            "base, and none is known (no checkpoint of its run beside it); name it with "
                            "--set model.path=BASE_FOLDER")
        return load_model(Path(reference), config).to(device())
    objective.attach(model, base_copy)
    return objective


def load_for_eval(target: Path, config: Config, base: str = "") -> tuple[Any, Any]:
    """A model ready to evaluate from a model folder, an adapter folder or a checkpoint.

    The tokenizer is the target's, else its base's: the adapter's base, or ``base`` (the run's
    base model) for a full-weights checkpoint, which holds no tokenizer.
    """
    if not target.is_dir():
        raise UserError(f"{target}: no such model or checkpoint folder")
    adapter = target / "adapter_config.json"
    source = inspect_source(target, fallback_base=Path(base) if base else None)
    tokenizer = export_tokenizer(source)
    if not adapter.is_file():
        return load_model(source.weights, config).to(device()), tokenizer
    from peft import PeftModel

    assert source.base is not None
    base_model = load_model(source.base, config)
    fit_embeddings(base_model, len(tokenizer), config.training.seed)
    model = PeftModel.from_pretrained(base_model, str(source.weights))
    return model.to(device()), tokenizer
