"""A data file's validation report, stats and preview, as rich Text (no widgets, no Textual).

``build_report`` reads the file with the data layer's ``check_file`` and ``compute_stats`` (light:
no torch) and renders: the verdict, every issue's ``file:line`` with the offending line itself,
counts, token-length percentiles and histogram, roles, and a few samples as conversations.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from pathlib import Path

from rich.text import Text

from engine.data.shapes import Message
from engine.data.stats import DatasetStats, compute_stats, histogram_text
from engine.data.validate import ValidationReport, check_file, new_report, valid_conversations
from engine.errors import UserError

ROLE_STYLE = {"system": "bold yellow", "user": "bold green", "assistant": "bold cyan"}
PREVIEW = 3
ISSUES_SHOWN = 8


def conversation_text(where: str, messages: list[Message], width: int = 72) -> Text:
    """One conversation: a rule with where it came from, then ``role: content`` per message."""
    text = Text(f"── {where} ".ljust(width, "─") + "\n", style="dim")
    for message in messages:
        role = message["role"]
        text.append(f"{role:>9}: ", style=ROLE_STYLE.get(role, "bold"))
        text.append(message["content"].strip() + "\n")
    return text


def source_line(where: str) -> str | None:
    """The raw text at ``file:line`` (for an issue), or None when it is not a line reference."""
    path, _, line = where.rpartition(":")
    if not line.isdigit() or not Path(path).is_file():
        return None
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        found = next(islice(handle, int(line) - 1, None), None)
    return None if found is None else found.rstrip("\n")[:200]


def report_text(report: ValidationReport, relative: str) -> Text:
    """Verdict, issue counts and the first issues with their offending lines."""
    text = Text()
    ok = not report.issues
    text.append("✓ valid" if ok else f"✗ {report.invalid} invalid", style="bold green" if ok else "bold red")
    text.append(f"  {report.valid:,} of {report.total:,} records usable · format {report.format}\n")
    if report.issues:
        text.append("  " + ", ".join(f"{code} {n}" for code, n in report.counts().items()) + "\n", style="red")
    for issue in report.issues[:ISSUES_SHOWN]:
        text.append("  " + issue.line().replace(report.path, relative) + "\n", style="red")
        line = source_line(issue.where)
        if line is not None:
            text.append(f"      │ {line}\n", style="dim")
    if len(report.issues) > ISSUES_SHOWN:
        text.append(f"  … {len(report.issues) - ISSUES_SHOWN} more\n", style="red")
    return text


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


def preview(path: Path, count: int = PREVIEW) -> Iterable[tuple[str, list[Message]]]:
    """The first ``count`` valid conversations of a file."""
    report = new_report(path, None, "characters", 2**62)
    return list(islice(valid_conversations(path, report), count))


def build_report(path: Path, relative: str) -> Text:
    """The whole report of a data file; a bad file gives its one-line error instead of stats."""
    try:
        report = check_file(path, max_length=2**62)
    except UserError as exc:
        return Text(f"✗ {str(exc).replace(str(path), relative)}", style="bold red")
    text = Text(f"{relative}\n", style="bold")
    text.append_text(report_text(report, relative))
    if report.valid:
        text.append_text(stats_text(compute_stats(path)))
        text.append("Preview\n", style="bold")
        for where, messages in preview(path):
            text.append_text(conversation_text(where.replace(str(path), relative), messages))
    return text
