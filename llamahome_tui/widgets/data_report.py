"""A data file's validation report, stats, versions and preview, as rich Text (no widgets, no Textual).

``build_report`` reads the file with the data layer's ``check_file`` and ``compute_stats`` (light:
no torch) and renders: the verdict, issue counts, token-length percentiles and histogram, roles,
the dataset versions runs trained on, and a few samples as conversations. The issues themselves
come back as a list for the screen's issue table; ``record_context`` gives the lines around one.
With ``data.duplicates = "keep"`` a duplicate is usable, so it counts as a warning, not invalid.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from rich.text import Text

from engine.api import (
    DatasetStats,
    Issue,
    Message,
    UserError,
    ValidationReport,
    check_file,
    compute_stats,
    histogram_text,
    new_report,
    open_binary,
    valid_conversations,
)

ROLE_STYLE = {"system": "bold yellow", "user": "bold green", "assistant": "bold cyan"}
PREVIEW = 3
CONTEXT_LINES = 4
"""Lines shown above and below an offending line."""
LINE_CHARS = 2000
"""Longest part of one line read for the context view."""


@dataclass
class FileReport:
    """What the datasets screen shows for one file: the report text and the issues, in file order."""

    text: Text
    issues: list[Issue] = field(default_factory=list)
    kept_duplicates: int = 0
    """Duplicates that ``data.duplicates = "keep"`` trains on (listed among the issues, as warnings)."""


def conversation_text(where: str, messages: list[Message], width: int = 72) -> Text:
    """One conversation: a rule with where it came from, then ``role: content`` per message."""
    text = Text(f"── {where} ".ljust(width, "─") + "\n", style="dim")
    for message in messages:
        role = message["role"]
        text.append(f"{role:>9}: ", style=ROLE_STYLE.get(role, "bold"))
        text.append(message["content"].strip() + "\n")
    return text


def split_where(where: str) -> tuple[Path, str, int] | None:
    """``(file, kind, number)`` of ``file:N`` (kind ``line``) or ``file: record N``; None otherwise."""
    path, _, line = where.rpartition(":")
    if line.isdigit() and path:
        return Path(path), "line", int(line)
    path, sep, rest = where.rpartition(": record ")
    if sep and rest.isdigit():
        return Path(path), "record", int(rest)
    return None


def record_context(where: str, radius: int = CONTEXT_LINES) -> list[tuple[int | None, str, bool]]:
    """The offending record in its file: ``(line number, text, is the offending one)`` rows.

    ``file:N`` gives lines N-radius..N+radius; ``file: record N`` (a JSON array) gives that record
    pretty-printed. Empty when the file or the record cannot be read back.
    """
    found = split_where(where)
    if found is None or not found[0].is_file():
        return []
    path, kind, number = found
    if kind == "record":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, ValueError):
            return []
        records = next((v for v in data.values() if isinstance(v, list)), []) if isinstance(data, dict) else data
        if not isinstance(records, list) or not 0 < number <= len(records):
            return []
        shown = json.dumps(records[number - 1], indent=2, ensure_ascii=False)
        return [(None, line, True) for line in shown.splitlines()]
    first = max(number - radius, 1)
    try:
        with open_binary(path) as raw:  # a .gz / .zst file is read decompressed
            lines = list(islice(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), first - 1, number + radius))
    except (OSError, EOFError, UserError):
        return []
    return [(first + i, line.rstrip("\n")[:LINE_CHARS], first + i == number) for i, line in enumerate(lines)]


def report_text(report: ValidationReport, keep_duplicates: bool) -> tuple[Text, int]:
    """Verdict and issue counts; returns the text and how many duplicates are kept."""
    kept = sum(1 for i in report.issues if i.code == "duplicate") if keep_duplicates else 0
    invalid = report.invalid - kept
    text = Text()
    ok = invalid == 0
    text.append("✓ valid" if ok else f"✗ {invalid:,} invalid", style="bold green" if ok else "bold red")
    text.append(f"  {report.valid + kept:,} of {report.total:,} records usable · format {report.format}\n")
    if kept:
        text.append(f"  ⚠ {kept:,} duplicates (kept: data.duplicates = \"keep\")", style="yellow")
        text.append("  r: the first\n", style="dim")
    counts = {code: n for code, n in report.counts().items() if not (kept and code == "duplicate")}
    if counts:
        text.append("  " + ", ".join(f"{code} {n:,}" for code, n in counts.items()), style="red")
        text.append("  (tab: the issues, enter: the record in its file)\n", style="dim")
    return text, kept


def stats_text(stats: DatasetStats) -> Text:
    """Samples, tokens, length percentiles, histogram, roles and duplicates."""
    text = Text("Stats\n", style="bold")
    lengths = stats.lengths
    text.append(f"  {stats.samples:,} samples · {stats.tokens:,} {stats.token_unit}\n")
    text.append("  length " + "  ".join(f"{k} {v:g}" for k, v in lengths.items()) + "\n")
    text.append("  roles " + "  ".join(f"{r} {n:,}" for r, n in stats.role_counts.items()))
    text.append(f" · duplicates {stats.duplicates}\n")
    for line in histogram_text(stats, width=30):
        text.append("  " + line + "\n", style="cyan")
    return text


def short_runs(runs: list[str], shown: int = 3) -> str:
    """``aaaa, bbbb +2``: run ids by their last part (the random suffix), a few of them."""
    if not runs:
        return "no run yet"
    names = [run.rsplit("-", 1)[-1] for run in runs[-shown:]]
    return ", ".join(names) + (f" +{len(runs) - shown}" if len(runs) > shown else "")


def versions_text(versions: list[dict[str, Any]]) -> Text:
    """The recorded versions of a file (fingerprint, counts, the runs that used each), newest first."""
    text = Text("Versions", style="bold")
    text.append("  (v: every dataset's)\n", style="dim")
    if not versions:
        return text.append("  none recorded yet (a run records the version it trains on)\n", style="dim")
    for version in versions:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(version["created_at"]))
        text.append(f"  {version['fingerprint'][:10]}", style="bold")
        text.append(f"  {version['samples']:,} samples · {version['tokens']:,} tokens · {when}")
        text.append(f" · runs: {short_runs(version['runs'])}\n", style="cyan" if version["runs"] else "dim")
    return text


def preview(path: Path, count: int = PREVIEW) -> Iterable[tuple[str, list[Message]]]:
    """The first ``count`` valid conversations of a file."""
    report = new_report(path, None, "characters", 2**62)
    return list(islice(valid_conversations(path, report), count))


def build_report(path: Path, relative: str, keep_duplicates: bool = True,
                 versions: list[dict[str, Any]] | None = None) -> FileReport:
    """The whole report of a data file; a bad file gives its one-line error instead of stats."""
    try:
        report = check_file(path, max_length=2**62)
    except UserError as exc:
        return FileReport(Text(f"✗ {str(exc).replace(str(path), relative)}", style="bold red"))
    text = Text(f"{relative}\n", style="bold")
    verdict, kept = report_text(report, keep_duplicates)
    text.append_text(verdict)
    if report.valid:
        text.append_text(stats_text(compute_stats(path)))
    if versions is not None:
        text.append_text(versions_text(versions))
    if report.valid:
        text.append("Preview\n", style="bold")
        for where, messages in preview(path):
            text.append_text(conversation_text(where.replace(str(path), relative), messages))
    return FileReport(text, report.issues, kept)
