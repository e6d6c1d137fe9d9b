"""The headless commands: train, train-resume, train-eval and runs, on the Engine facade."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.api import ConfigError, Engine, resolve_config
from engine.store import RunRecord
from engine.workspace import Workspace

if TYPE_CHECKING:
    from engine.api import Config


def register(commands: Any) -> None:
    """Add train, train-resume, train-eval and runs to the command line."""
    train_cmd = commands.add_parser("train", help="fine-tune a model on a dataset")
    train_cmd.add_argument("data", nargs="?", help="training data (a file or folder of any supported format); "
                                                   "leave it out to train on the config's [[data.sources]]")
    train_cmd.add_argument("--model", help="local model folder (save_pretrained); default: the built-in base")
    train_cmd.add_argument("--eval-data", help="evaluation data; default: data.validation_split of DATA")
    train_cmd.add_argument("--output", help="folder for checkpoints and the final model; default: the run's folder")
    add_config_flags(train_cmd)
    train_cmd.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    add_group_flags(train_cmd)
    add_detach_flag(train_cmd)
    train_cmd.set_defaults(handler=with_engine(train))
    resume = commands.add_parser("train-resume", help="continue a stopped or crashed run")
    resume.add_argument("target", metavar="CHECKPOINT_OR_RUN_ID")
    resume.add_argument("--max-steps", type=int, help="change the run's total optimizer steps (e.g. to extend it)")
    resume.add_argument("--learning-rate", type=float,
                        help="the schedule's peak learning rate from the resumed step on")
    add_group_flags(resume)
    add_detach_flag(resume)
    resume.set_defaults(handler=with_engine(train_resume))
    evaluate = commands.add_parser("train-eval", help="eval loss and metrics of a model or checkpoint")
    evaluate.add_argument("target", metavar="MODEL_OR_CHECKPOINT")
    evaluate.add_argument("data")
    evaluate.add_argument("--objective", help="evaluate as this training.objective does (default: the "
                                              "model's run's, else the one the data's records suit)")
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


GROUP_FLAGS = (("nproc_per_node", int, "ranks (processes) on this machine, through torchrun"),
               ("nnodes", int, "machines in the group"),
               ("node_rank", int, "this machine's number, 0 to NNODES - 1 (machine 0 records the run)"),
               ("master_addr", str, "address of machine 0"),
               ("master_port", int, "port of machine 0's rendezvous"),
               ("strategy", str, "ddp or fsdp"))
"""The ``[distributed]`` keys that have a flag of their own (``--nproc-per-node`` ...)."""


def add_group_flags(parser: argparse.ArgumentParser) -> None:
    """``--nproc-per-node`` and torchrun's other flags, setting the ``[distributed]`` keys."""
    for key, kind, text in GROUP_FLAGS:
        choices = ("ddp", "fsdp") if key == "strategy" else None
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, choices=choices,
                            help=f"{text} (distributed.{key})")


def group_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[distributed]`` keys given as flags."""
    return {key: getattr(args, key) for key, _, _ in GROUP_FLAGS if getattr(args, key, None) is not None}


def flag_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The ``--set`` items that ``train``'s own flags stand for, each with the flag as typed."""
    items: dict[str, str] = {}
    if args.model:
        items[f"model.path={json.dumps(str(Path(args.model).resolve()))}"] = f"--model {args.model}"
    if args.max_steps is not None:
        items[f"training.max_steps={args.max_steps}"] = f"--max-steps {args.max_steps}"
    for key, value in group_overrides(args).items():
        items[f"distributed.{key}={json.dumps(value)}"] = f"--{key.replace('_', '-')} {value}"
    return items


def config_with_flags(args: argparse.Namespace, items: dict[str, str]) -> Config:
    """The config with ``--set`` and the flags' items; a bad flag value's error names the flag."""
    try:
        return resolve_config(args.config, [*args.set, *items])
    except ConfigError as err:
        for item, flag in items.items():
            prefix = f"--set {item}: "
            if str(err).startswith(prefix):
                raise ConfigError(f"{flag}: {str(err).removeprefix(prefix)}") from None
        raise


def add_detach_flag(parser: argparse.ArgumentParser) -> None:
    """``--detach``: start the run, print its id and return."""
    parser.add_argument("--detach", action="store_true",
                        help="start the run in the background, print its id and return "
                             "(follow it with: attach RUN_ID)")


def with_engine(handler: Callable[[Engine, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler so it gets an Engine on the chosen workspace, closed afterwards."""
    def run(args: argparse.Namespace) -> int:
        engine = Engine(Workspace.resolve(args.workspace))
        try:
            return handler(engine, args)
        finally:
            engine.close()
    return run


def train(engine: Engine, args: argparse.Namespace) -> int:
    """Fine-tune: check data and config, start the run (after the base build if needed), follow it."""
    from llamahome_tui import headless  # rich's progress bars load only for a headless command

    config = config_with_flags(args, flag_overrides(args))
    run_id = engine.start_training(Path(args.data) if args.data else None, config,
                                   Path(args.eval_data) if args.eval_data else None,
                                   Path(args.output) if args.output else None)
    if args.detach:
        build = engine.waits_for(run_id)
        if build:
            print(f"run {run_id} starts when run {build} has built the base model", file=sys.stderr)
        print(run_id)
        return 0
    return headless.follow_training(engine, run_id)


def train_resume(engine: Engine, args: argparse.Namespace) -> int:
    """Continue a run from a checkpoint folder, or from a run's latest checkpoint, in a new run."""
    from llamahome_tui import headless  # rich's progress bars load only for a headless command

    run_id = engine.resume_run(args.target, max_steps=args.max_steps, learning_rate=args.learning_rate,
                               distributed=group_overrides(args))
    run = engine.get_run(run_id)
    if args.detach:
        print(run_id)
        return 0
    print(f"Resuming run {run.resumed_from} from {Path(run.config['job']['resume_from']).name}")
    return headless.follow(engine, run_id)


def train_eval(engine: Engine, args: argparse.Namespace) -> int:
    """Evaluate a model folder, adapter or checkpoint on a dataset."""
    from llamahome_tui import headless  # rich's progress bars load only for a headless command

    config = resolve_config(args.config, list(args.set))
    run_id = engine.evaluate(Path(args.target), Path(args.data), config, args.objective)
    code = headless.follow(engine, run_id, quiet=args.json)
    result = engine.get_run(run_id)
    if code == 0:
        headless.print_summary(result.final_metrics, as_json=args.json)
    return code


def runs(engine: Engine, args: argparse.Namespace) -> int:
    """Print the run history."""
    from llamahome_tui import headless  # rich's progress bars load only for a headless command

    records = engine.list_runs()
    if args.json:
        print(json.dumps([_run_dict(r) for r in records], indent=2))
    else:
        headless.print_runs(records, engine.resumable())
    return 0


def _run_dict(run: RunRecord) -> dict[str, Any]:
    """A run as plain JSON-able data."""
    return {"id": run.id, "kind": run.kind, "status": run.status, "model": run.model,
            "dataset": run.dataset_path, "created_at": run.created_at, "started_at": run.started_at,
            "ended_at": run.ended_at, "final_metrics": run.final_metrics,
            "resumed_from": run.resumed_from, "output_dir": run.output_dir, "error": run.error,
            "runtime": run.runtime}
