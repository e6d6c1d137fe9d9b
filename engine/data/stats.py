"""Dataset statistics: samples, tokens, length percentiles, histogram, roles, duplicates, outliers.

Light (no torch, no transformers): token counts use the model folder's ``tokenizer.json``
through the ``tokenizers`` library on the ChatML rendering of each conversation; without a
tokenizer they are estimated as characters / 4 and labelled so. The same ``DatasetStats``
object feeds the headless command and the TUI. Memory per sample is one int64 length; only the
longest samples' locations are kept (outlier candidates).
"""

from __future__ import annotations

import heapq
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.chat_template import ModelTemplate
from engine.data.examples import Judged, Pair, sequences
from engine.data.shapes import Message
from engine.data.template import chatml_spans
from engine.data.validate import Measure, ValidationReport, char_length, new_report, valid_conversations
from engine.errors import DataError

PERCENTILES = (50, 90, 95, 99)
CHARS_PER_TOKEN = 4
PAIR_SIDES = ("chosen", "rejected")
JUDGED_SIDES = ("desirable", "undesirable")


def load_light_tokenizer(folder: Path) -> Any:
    """The ``tokenizers.Tokenizer`` of a model folder (its tokenizer.json); DataError if none."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"{folder}: no tokenizer.json in this model folder")
    return Tokenizer.from_file(str(path))


def token_measure(tokenizer: Any, template: ModelTemplate | None = None) -> Measure:
    """Tokens of a conversation rendered with ``template`` (ChatML without one), with a ``tokenizers.Tokenizer``.

    A conversation the template cannot render is measured in its ChatML rendering (the
    validation names it).
    """
    def measure(messages: list[Message]) -> int:
        if messages and messages[0]["role"] == "text":  # raw text: no template
            return len(tokenizer.encode(messages[0]["content"], add_special_tokens=False).ids)
        text = ""
        if template is not None:
            try:
                text = template.render(messages)
            except Exception:  # noqa: BLE001 - counted below; the template check reports the record
                text = ""
        text = text or chatml_spans(messages, "all")[0]
        return len(tokenizer.encode(text, add_special_tokens=False).ids)
    return measure


def estimate_measure(messages: list[Message]) -> int:
    """An estimate of a conversation's tokens: characters / 4, at least 1."""
    return max(1, -(-char_length(messages) // CHARS_PER_TOKEN))


@dataclass
class DatasetStats:
    """What ``data stats`` shows about one file."""

    path: str
    samples: int
    invalid: int
    tokens: int
    token_unit: str
    lengths: dict[str, float]
    histogram: list[tuple[int, int, int]]
    role_counts: dict[str, int]
    duplicates: int
    outliers: list[tuple[str, int]] = field(default_factory=list)
    objective: str = "sft"
    """The objective the records were read for; a pair's length is both sides together."""
    sides: dict[str, dict[str, float]] = field(default_factory=dict)
    """Preference pairs: the count and length summary of the chosen and of the rejected sequences;
    KTO records: of the desirable and of the undesirable answers."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {"path": self.path, "samples": self.samples, "invalid": self.invalid,
                "tokens": self.tokens, "token_unit": self.token_unit, "lengths": self.lengths,
                "histogram": [list(b) for b in self.histogram], "role_counts": self.role_counts,
                "duplicates": self.duplicates, "outliers": [list(o) for o in self.outliers],
                "objective": self.objective, "sides": self.sides}


def compute_stats(path: Path, tokenizer: Any = None, fmt: str | None = None,
                  bins: int = 10, max_outliers: int = 20, objective: str = "sft") -> DatasetStats:
    """Read ``path`` once and compute its statistics (invalid records are counted, not measured).

    Records are read as ``objective`` reads them; a pair counts once, its length both sides'.
    """
    measure = token_measure(tokenizer) if tokenizer is not None else estimate_measure
    unit = "tokens" if tokenizer is not None else "estimated tokens (characters / 4)"
    report: ValidationReport = new_report(path, fmt, unit, 2**62)
    roles: Counter[str] = Counter()
    lengths, chosen, rejected = array("q"), array("q"), array("q")
    longest: list[tuple[int, int, str]] = []  # (length, -index, where): the max_outliers longest
    names = PAIR_SIDES
    for where, example in valid_conversations(path, report, measure, fmt, objective=objective):
        parts = [measure(messages) for messages in sequences(example)]
        roles.update(m["role"] for messages in sequences(example) for m in messages)
        lengths.append(sum(parts))
        if isinstance(example, Pair):
            chosen.append(parts[0])
            rejected.append(parts[1])
        elif isinstance(example, Judged):  # kto: the answers judged desirable, then the others
            (chosen if example.desirable else rejected).append(parts[0])
            names = JUDGED_SIDES
        _keep_longest(longest, (lengths[-1], -len(lengths) + 1, where), max_outliers)
    if not lengths:
        raise DataError(f"{path}: no valid records ({report.invalid} invalid)")
    values = np.frombuffer(lengths, dtype=np.int64)
    duplicates = sum(1 for issue in report.issues if issue.code == "duplicate")
    sides = {name: {"count": len(side), **_summary(np.frombuffer(side, dtype=np.int64))}
             for name, side in zip(names, (chosen, rejected), strict=True) if len(side)}
    return DatasetStats(str(path), len(values), report.invalid - duplicates, int(values.sum()), unit,
                        _summary(values), _histogram(values, bins), dict(roles.most_common()),
                        duplicates, _outliers(values, longest), objective, sides)


def _summary(values: np.ndarray) -> dict[str, float]:
    """Min, mean, max and the percentiles of the lengths."""
    summary = {"min": float(values.min()), "mean": round(float(values.mean()), 1), "max": float(values.max())}
    summary.update({f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES})
    return summary


def _histogram(values: np.ndarray, bins: int) -> list[tuple[int, int, int]]:
    """``(low, high, count)`` for equal-width length bins."""
    counts, edges = np.histogram(values, bins=min(bins, max(1, int(values.max() - values.min()) + 1)))
    return [(int(edges[i]), int(edges[i + 1]), int(c)) for i, c in enumerate(counts)]


def _keep_longest(heap: list[tuple[int, int, str]], item: tuple[int, int, str], limit: int) -> None:
    """Keep the ``limit`` largest items in a min-heap (so memory does not grow with the file)."""
    if len(heap) < limit:
        heapq.heappush(heap, item)
    elif limit and item > heap[0]:
        heapq.heapreplace(heap, item)


def _outliers(values: np.ndarray, longest: list[tuple[int, int, str]]) -> list[tuple[str, int]]:
    """Samples longer than Q3 + 3 IQR (Tukey's far-out fence), longest first (first in file on ties).

    Only the longest samples can be outliers, so those kept while reading are enough.
    """
    q1, q3 = np.percentile(values, [25, 75])
    fence = q3 + 3 * (q3 - q1)
    return [(where, length) for length, _, where in sorted(longest, reverse=True) if length > fence]


def histogram_text(stats: DatasetStats, width: int = 40) -> list[str]:
    """The length histogram as text bars, one line per bin."""
    peak = max((count for _, _, count in stats.histogram), default=0) or 1
    return [f"{low:>7}-{high:<7} {'█' * max(1 if count else 0, round(count / peak * width)):<{width}} {count}"
            for low, high, count in stats.histogram]
