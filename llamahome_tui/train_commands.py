"""``train-export``: write a checkpoint as an adapter or a merged standalone model.

The export runs as an ``export`` job in a worker process (merging loads torch, transformers and
peft; this process never does), recorded in the run history like any other run. The console's
checkpoints screen starts the same job through ``Engine.export_checkpoint``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.api import Engine
from llamahome_tui.commands import add_config_flags, resolve_config, with_engine


def register(commands: Any) -> None:
    """Add ``train-export`` to the command line."""
    export = commands.add_parser(
        "train-export", help="write a checkpoint as an adapter, or a merged standalone model with --merge")
    export.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a checkpoint folder (runs/<id>/checkpoints/step-N), a final folder or an adapter")
    export.add_argument("--merge", action="store_true",
                        help="fold the LoRA adapter into its base and save a standalone model")
    export.add_argument("--output", help="folder to write (must not exist); default: <run>/exports/<checkpoint>-<kind>")
    add_config_flags(export)
    export.set_defaults(handler=with_engine(train_export))


def train_export(engine: Engine, args: argparse.Namespace) -> int:
    """Check the source, start the export job and follow it."""
    from llamahome_tui import headless  # rich's progress bars load only for a headless command

    config = resolve_config(args.config, list(args.set))
    run_id = engine.export_checkpoint(Path(args.checkpoint), args.merge, config,
                                      Path(args.output) if args.output else None)
    code = headless.follow(engine, run_id)
    if code == 0:
        print(f"Exported to {engine.get_run(run_id).output_dir}")
    return code
