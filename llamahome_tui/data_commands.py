"""The headless data commands: ``data validate``, ``data stats`` and ``tokenizer train``.

Exit codes: 0 when all is well (too-long and duplicate records, which ``train`` accepts, are only
warnings); 1 when ``data validate`` finds invalid records (they are all
listed); 2 with one line for a missing, empty or unreadable file or a bad flag. Light: no torch
(``tokenizer train`` imports transformers to save a standard tokenizer folder).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import DataError, UserError

if TYPE_CHECKING:  # the data modules (numpy with the statistics) load when a data command runs,
    from engine.data.validate import ValidationReport  # not when the command line is parsed
from engine.workspace import Workspace

EXIT_INVALID = 1


def register(commands: Any) -> None:
    """Add ``data validate|stats`` and ``tokenizer train`` to the command line."""
    data = commands.add_parser("data", help="check and describe a dataset")
    actions = data.add_subparsers(dest="data_command", required=True, parser_class=type(data))
    validate = actions.add_parser("validate", help="list every invalid record (exit 1 if any)")
    stats = actions.add_parser("stats", help="samples, tokens, lengths, roles, duplicates, outliers")
    for sub in (validate, stats):
        sub.add_argument("file")
        sub.add_argument("--format", help="force the format (jsonl, json, csv, tsv, text, text-blocks, parquet)")
        sub.add_argument("--model", help="model folder whose tokenizer counts tokens (validate: and whose "
                                         "chat template renders every record)")
        sub.add_argument("--json", action="store_true", help="print the report as JSON")
        sub.add_argument("--objective", help="read records as this training.objective reads them "
                                             "(default: from the file's first record: sft, dpo or kto)")
    validate.add_argument("--max-length", type=int, help="length limit in tokens (default: data.max_length)")
    validate.set_defaults(handler=validate_command)
    stats.set_defaults(handler=stats_command)
    tokenizer = commands.add_parser("tokenizer", help="train a tokenizer")
    tok_actions = tokenizer.add_subparsers(dest="tokenizer_command", required=True, parser_class=type(tokenizer))
    train = tok_actions.add_parser("train", help="train a byte-level BPE tokenizer on data files")
    train.add_argument("files", nargs="+")
    train.add_argument("--vocab-size", type=int, required=True)
    train.add_argument("--special-tokens", nargs="*", default=[], help="extra special tokens")
    train.add_argument("--user-symbols", nargs="*", default=[], help="strings always kept as one token")
    train.add_argument("--min-frequency", type=int, default=2)
    train.add_argument("--output", default="tokenizer", help="folder to save it in (default: ./tokenizer)")
    train.set_defaults(handler=tokenizer_train_command)


def _tokenizer(model: str | None) -> Any:
    """The light tokenizer of ``--model``, or None."""
    from engine.data.stats import load_light_tokenizer

    if not model:
        return None
    folder = Path(model)
    if not folder.is_dir():
        raise UserError(f"--model {model}: no such folder")
    return load_light_tokenizer(folder)


def _length_limit(flag: int | None) -> int:
    """``--max-length`` when given (at least 1, else a one-line error, exit 2), else ``data.max_length``."""
    if flag is None:
        from engine.config import load_config

        return int(load_config().data.max_length)
    if flag < 1:
        raise UserError(f"--max-length {flag}: must be at least 1")
    return flag


def validate_command(args: argparse.Namespace) -> int:
    """Check every record of a file; print the report; exit 1 when any is invalid."""
    from engine.data.chat_template import read_model_template
    from engine.data.stats import CHARS_PER_TOKEN, token_measure
    from engine.data.validate import char_length, check_file

    limit = _length_limit(args.max_length)
    tokenizer = _tokenizer(args.model)
    objective = _objective(args)
    if tokenizer is not None:
        template = read_model_template(Path(args.model))
        report = check_file(Path(args.file), token_measure(tokenizer, template), limit, "tokens", args.format,
                            objective, template)
    else:
        report = check_file(Path(args.file), char_length, limit * CHARS_PER_TOKEN,
                            "characters", args.format, objective)
    if report.total == 0:
        raise DataError(f"{args.file}: no records found")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report_lines(report)))
    return EXIT_INVALID if report.errors else 0


WARNING_NOTES = {"too_long": " (warning: train cuts it at data.max_length and leaves it out when no answer token "
                             "is left)",
                 "duplicate": " (warning: train keeps or drops it as data.duplicates says)"}


def report_lines(report: ValidationReport) -> list[str]:
    """The report as text: a summary, counts by reason, then one line per issue."""
    from engine.data.validate import WARNING_CODES, placeholder_line, unsupported_lines

    lines = [f"{report.path} ({report.format}, as {report.objective} reads it): {report.total} records, "
             f"{report.valid} valid, "
             f"{report.errors} invalid, {report.warnings} warnings "
             f"(length limit {report.max_length} {report.length_unit})"]
    lines += [f"  {code}: {count}{' (warning)' if code in WARNING_CODES else ''}"
              for code, count in report.counts().items()]
    lines += [f"warning: {report.mixed}"] if report.mixed else []
    lines += [f"warning: {line}; train refuses them" for line in unsupported_lines(report)]
    lines += [f"warning: {line}" for line in [placeholder_line(report)] if line]
    lines += [f"{issue.line()}{WARNING_NOTES.get(issue.code, '')}" for issue in report.issues]
    return lines


def _objective(args: argparse.Namespace) -> str:
    """``--objective`` (checked), else the one the file's first record suits."""
    from engine.data.examples import file_objective
    from engine.objectives import entry

    if args.objective:
        try:
            entry(args.objective)
        except UserError as err:
            raise UserError(f"--objective {args.objective}: {str(err).split(': ', 1)[1]}") from None
        return str(args.objective)
    return file_objective(Path(args.file), args.format)


def _default_tokenizer(args: argparse.Namespace) -> Any:
    """``--model``'s tokenizer, else the built-in base's when it is built, else None."""
    from engine.data.stats import load_light_tokenizer

    if args.model:
        return _tokenizer(args.model)
    from engine.builtin import base_dir, is_built
    from engine.config import load_config

    config = load_config()
    folder = base_dir(Workspace.resolve(args.workspace).models_dir, config.model.builtin)
    return load_light_tokenizer(folder) if is_built(folder) else None


def stats_command(args: argparse.Namespace) -> int:
    """Print the statistics of a file."""
    from engine.data.stats import compute_stats, histogram_text

    stats = compute_stats(Path(args.file), _default_tokenizer(args), args.format, objective=_objective(args))
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
        return 0
    lengths = ", ".join(f"{k} {v:g}" for k, v in stats.lengths.items())
    unit = "pairs" if "chosen" in stats.sides else "answers" if "desirable" in stats.sides else "samples"
    print(f"{stats.path} (as {stats.objective} reads it): {stats.samples} {unit}, {stats.tokens} {stats.token_unit}, "
          f"{stats.invalid} invalid, {stats.duplicates} duplicates")
    print(f"length per sample ({stats.token_unit}): {lengths}")
    for side, summary in stats.sides.items():
        print(f"  {side}: " + ", ".join(f"{k} {v:g}" for k, v in summary.items()))
    print("\n".join(histogram_text(stats)))
    print("roles: " + ", ".join(f"{role} {count}" for role, count in stats.role_counts.items()))
    for where, length in stats.outliers:
        print(f"outlier: {where}: {length}")
    return 0


def _texts(paths: list[Path]) -> Iterator[str]:
    """The text of every valid record of every file (each message's content)."""
    from engine.data.validate import new_report, valid_conversations

    for path in paths:
        report = new_report(path, None, "characters", 2**62)
        for _, messages in valid_conversations(path, report):
            yield from (m["content"] for m in messages)


def tokenizer_train_command(args: argparse.Namespace) -> int:
    """Train a BPE tokenizer on the files and save it with ``save_pretrained``."""
    from engine.data.tokenizer import train_bpe_tokenizer

    if args.vocab_size < 64:
        raise UserError(f"--vocab-size {args.vocab_size}: must be at least 64")
    paths = [Path(p) for p in args.files]
    for path in paths:
        list(zip(range(1), _texts([path]), strict=False))  # fail early on a bad file
    tokenizer = train_bpe_tokenizer(_texts(paths), args.vocab_size, args.min_frequency,
                                    args.special_tokens, user_symbols=args.user_symbols)
    tokenizer.save_pretrained(args.output)
    print(f"saved a tokenizer of {len(tokenizer)} tokens to {args.output}")
    return 0
