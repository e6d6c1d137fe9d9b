"""The ``llamahome-tui`` command line: parse arguments and hand them to the commands.

Every user error (bad flag, config key, data file) ends as one line on stderr and exit code 2,
without a traceback. This process never imports torch: runs happen in worker processes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the problem on one line and exit 2."""
        sys.stderr.write(f"{self.prog}: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """All commands and flags."""
    parser = _Parser(prog="llamahome-tui", description="Fine-tune language models on your machine.")
    parser.add_argument("--no-ui", action="store_true", help="run headless (batch mode)")
    parser.add_argument("--workspace", help="folder for the run history, runs and caches "
                        "(default: $LLAMAHOME_HOME or ./workspace)")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    train = commands.add_parser("train", help="fine-tune a model on a dataset")
    train.add_argument("data", help="training data (.jsonl or .json)")
    train.add_argument("--model", help="local model folder (save_pretrained); default: the built-in base")
    train.add_argument("--eval-data", help="evaluation data; default: data.validation_split of DATA")
    train.add_argument("--output", help="folder for checkpoints and the final model; default: the run's folder")
    _add_config_flags(train)
    train.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    resume = commands.add_parser("train-resume", help="continue a stopped or crashed run")
    resume.add_argument("target", metavar="CHECKPOINT_OR_RUN_ID")
    resume.add_argument("--max-steps", type=int, help="change the run's total optimizer steps (e.g. to extend it)")
    evaluate = commands.add_parser("train-eval", help="loss and perplexity of a model or checkpoint")
    evaluate.add_argument("target", metavar="MODEL_OR_CHECKPOINT")
    evaluate.add_argument("data")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_config_flags(evaluate)
    runs = commands.add_parser("runs", help="the run history")
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--set`` for commands that take a config."""
    parser.add_argument("--config", help="a TOML file layered over config/default.toml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. training.learning_rate=1e-4")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not args.no_ui:
        sys.stderr.write("llamahome-tui: the interactive console is not available yet; "
                         "run with --no-ui (see --help)\n")
        return EXIT_USAGE
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    from llamahome_tui import commands

    try:
        return commands.run(args)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
