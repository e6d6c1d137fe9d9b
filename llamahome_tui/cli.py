"""The ``llamahome-tui`` command line: parse arguments and hand them to the commands.

Every user error (bad flag, config key, data file) ends as one line on stderr and exit code 2,
without a traceback. This process never imports torch: runs happen in worker processes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from engine.errors import UserError

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a command ended by SIGPIPE (128 + 13): its reader stopped reading."""

# Each module adds its sub-commands with ``register(subparsers)`` and sets ``handler``, a
# function ``(args) -> exit code``. They must stay light to import: no torch.
COMMAND_MODULES = ("llamahome_tui.commands", "llamahome_tui.data_commands", "llamahome_tui.run_commands",
                   "llamahome_tui.train_commands", "llamahome_tui.chat_commands")
# Without --no-ui these open the console (on the screen they concern); others run headless.
CONSOLE_COMMANDS = (None, "train", "train-resume", "runs")


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
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not args.no_ui and args.command in CONSOLE_COMMANDS:
        try:
            from llamahome_tui.app import run_console  # Textual is imported only for the console

            return run_console(args)
        except UserError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return EXIT_USAGE
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:  # `... | head`: the reader stopped; end quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_BROKEN_PIPE
