"""The headless commands: train, train-resume, train-eval and runs, on the Engine facade."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.api import Engine, latest_checkpoint_dir
from engine.builtin import base_dir, is_built
from engine.checkpoint_meta import read_checkpoint_meta
from engine.config import Config, config_from_dict, config_to_dict, load_config, model_family
from engine.data.dataset import fingerprint, load_conversations
from engine.errors import UserError
from engine.store import RunRecord
from engine.workspace import Workspace
from llamahome_tui.headless import follow, print_runs, print_summary


def register(commands: Any) -> None:
    """Add train, train-resume, train-eval and runs to the command line."""
    train_cmd = commands.add_parser("train", help="fine-tune a model on a dataset")
    train_cmd.add_argument("data", help="training data (.jsonl or .json)")
    train_cmd.add_argument("--model", help="local model folder (save_pretrained); default: the built-in base")
    train_cmd.add_argument("--eval-data", help="evaluation data; default: data.validation_split of DATA")
    train_cmd.add_argument("--output", help="folder for checkpoints and the final model; default: the run's folder")
    add_config_flags(train_cmd)
    train_cmd.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    train_cmd.set_defaults(handler=with_engine(train))
    resume = commands.add_parser("train-resume", help="continue a stopped or crashed run")
    resume.add_argument("target", metavar="CHECKPOINT_OR_RUN_ID")
    resume.add_argument("--max-steps", type=int, help="change the run's total optimizer steps (e.g. to extend it)")
    resume.set_defaults(handler=with_engine(train_resume))
    evaluate = commands.add_parser("train-eval", help="loss and perplexity of a model or checkpoint")
    evaluate.add_argument("target", metavar="MODEL_OR_CHECKPOINT")
    evaluate.add_argument("data")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_flags(evaluate)
    evaluate.set_defaults(handler=with_engine(train_eval))
    history = commands.add_parser("runs", help="the run history")
    history.add_argument("--json", action="store_true", help="print the runs as JSON")
    history.set_defaults(handler=with_engine(runs))


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--set`` for commands that take a config."""
    parser.add_argument("--config", help="a TOML file layered over config/default.toml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. training.learning_rate=1e-4")


def with_engine(handler: Callable[[Engine, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler so it gets an Engine on the chosen workspace, closed afterwards."""
    def run(args: argparse.Namespace) -> int:
        engine = Engine(Workspace.resolve(args.workspace))
        try:
            return handler(engine, args)
        finally:
            engine.close()
    return run


def resolve_config(config_file: str | None, overrides: list[str]) -> Config:
    """Layer the config, including the model family's overrides."""
    path = Path(config_file) if config_file else None
    first = load_config(path, overrides)
    return load_config(path, overrides, family=model_family(first))


def train(engine: Engine, args: argparse.Namespace) -> int:
    """Fine-tune: check data and config, build the base if needed, start and follow the run."""
    overrides = list(args.set)
    if args.model:
        overrides.append(f"model.path={json.dumps(str(Path(args.model).resolve()))}")
    if args.max_steps is not None:
        overrides.append(f"training.max_steps={args.max_steps}")
    config = resolve_config(args.config, overrides)
    data = Path(args.data).resolve()
    load_conversations(data)
    eval_data = Path(args.eval_data).resolve() if args.eval_data else None
    if eval_data:
        load_conversations(eval_data)
    if not config.model.path and not ensure_builtin_base(engine, config):
        return 1
    stored = {**config_to_dict(config),
              "job": {"data": str(data), "eval_data": str(eval_data) if eval_data else ""}}
    output = str(Path(args.output).resolve()) if args.output else ""
    run_id = engine.start_run("train", stored, config.model.path or config.model.builtin,
                              str(data), output, fingerprint=fingerprint(data))
    return follow(engine, run_id)


def ensure_builtin_base(engine: Engine, config: Config) -> bool:
    """Build the built-in base model once (its own run in the history); False if that failed."""
    folder = base_dir(engine.workspace.models_dir, config.model.builtin)
    if is_built(folder):
        return True
    print(f"Building the built-in base model '{config.model.builtin}' (first time only)")
    run_id = engine.start_run("build-base", config_to_dict(config), config.model.builtin,
                              output_dir=str(folder))
    return follow(engine, run_id) == 0


def train_resume(engine: Engine, args: argparse.Namespace) -> int:
    """Continue a run from a checkpoint folder, or from a run's latest checkpoint."""
    checkpoint, previous = _resume_point(engine, args.target)
    stored = dict(previous.config)
    stored["job"] = {**stored.get("job", {}), "resume_from": str(checkpoint)}
    if args.max_steps is not None:
        stored["training"] = {**stored["training"], "max_steps": args.max_steps}
        config_from_dict({k: v for k, v in stored.items() if k != "job"})
    run_id = engine.start_run("train", stored, previous.model, previous.dataset_path,
                              previous.output_dir, resumed_from=previous.id,
                              fingerprint=previous.dataset_fingerprint)
    print(f"Resuming run {previous.id} from {checkpoint.name}")
    return follow(engine, run_id)


def _resume_point(engine: Engine, target: str) -> tuple[Path, RunRecord]:
    """The checkpoint to resume from and the run that wrote it."""
    path = Path(target)
    if path.is_dir():
        meta = read_checkpoint_meta(path)
        return path.resolve(), engine.get_run(meta["run_id"])
    run = engine.get_run(target)
    checkpoint = latest_checkpoint_dir(run)
    if checkpoint is None:
        raise UserError(f"run {run.id} has no checkpoint to resume from")
    return checkpoint, run


def train_eval(engine: Engine, args: argparse.Namespace) -> int:
    """Evaluate a model folder, adapter or checkpoint on a dataset."""
    target, data = Path(args.target).resolve(), Path(args.data).resolve()
    if not target.is_dir():
        raise UserError(f"{args.target}: no such model or checkpoint folder")
    load_conversations(data)
    config = resolve_config(args.config, list(args.set))
    stored = {**config_to_dict(config), "job": {"target": str(target), "data": str(data)}}
    run_id = engine.start_run("eval", stored, str(target), str(data), fingerprint=fingerprint(data))
    code = follow(engine, run_id, quiet=args.json)
    result = engine.get_run(run_id)
    if code == 0:
        print_summary(result.final_metrics, as_json=args.json)
    return code


def runs(engine: Engine, args: argparse.Namespace) -> int:
    """Print the run history."""
    records = engine.list_runs()
    if args.json:
        print(json.dumps([_run_dict(r) for r in records], indent=2))
    else:
        print_runs(records)
    return 0


def _run_dict(run: RunRecord) -> dict[str, Any]:
    """A run as plain JSON-able data."""
    return {"id": run.id, "kind": run.kind, "status": run.status, "model": run.model,
            "dataset": run.dataset_path, "created_at": run.created_at, "started_at": run.started_at,
            "ended_at": run.ended_at, "final_metrics": run.final_metrics,
            "resumed_from": run.resumed_from, "output_dir": run.output_dir, "error": run.error}
