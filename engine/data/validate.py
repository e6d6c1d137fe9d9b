"""The validation report: which records of a file are usable, and why each other one is not (no torch).

``check_file`` reads leniently and returns a ``ValidationReport``; ``valid_conversations`` is
the same check as a stream, used by the pipeline: it yields each valid conversation and adds
every problem to the report it is given, so ``data.on_invalid = "skip"`` still reports. Reasons
(``Issue.code``): bad_json, too_deep, not_utf8, not_object, ragged_row, unknown_shape, missing_role_or_content,
roles_out_of_order, empty_content, invalid_value, too_long, duplicate, wrong_objective (a record of
another kind than ``training.objective`` trains on: preference data under sft, chat data under dpo),
template (the model's own chat template cannot render the record, or renders it so that the loss
cannot be placed; checked only when a template is given, ``engine.data.chat_template``).
Records are read as examples of the objective's kind (``engine.data.examples``); a length is that
of an example's longest sequence (the longer side of a pair).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.data.chat_template import ModelTemplate
from engine.data.examples import Example, detect_shape, sequences, to_example
from engine.data.formats import BadRecord, detect_format, read_items
from engine.data.shapes import Message
from engine.data.template import assistant_turns
from engine.errors import DataError

Measure = Callable[[list[Message]], int]
"""The length of a conversation in the report's unit (tokens or characters)."""


@dataclass(frozen=True)
class Issue:
    """One invalid record: where it is, the field at fault ("" for the whole record), why."""

    where: str
    field: str
    code: str
    reason: str

    def line(self) -> str:
        """The issue as one line: ``file:line: field: reason``."""
        return f"{self.where}: {self.field + ': ' if self.field else ''}{self.reason}"


_MEDIA_KEYS = ("images", "image", "videos", "audios")
_TOOL_KEYS = ("tools", "functions")
_TOOL_ROLES = {"function", "tool", "observation", "function_call", "ipython"}
_TURN_KEYS = ("messages", "conversations", "chosen", "rejected", "prompt", "completion")


def unsupported_kind(record: dict[str, Any]) -> str:
    """``"multimodal"`` or ``"tool-calling"`` when a record holds what text training cannot learn, else ""."""
    if any(key in record for key in _MEDIA_KEYS):
        return "multimodal"
    if any(key in record for key in _TOOL_KEYS):
        return "tool-calling"
    for key in _TURN_KEYS:
        turns = record.get(key)
        for turn in turns if isinstance(turns, list) else [turns]:
            if isinstance(turn, dict):
                role = turn.get("role", turn.get("from"))
                if role in _TOOL_ROLES or "tool_calls" in turn or "function_call" in turn:
                    return "tool-calling"
                turn = turn.get("content", turn.get("value"))
            if isinstance(turn, str) and "<image>" in turn:
                return "multimodal"
    return ""


_PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_][\w.]*\s*\}\}")

WARNING_CODES = ("too_long", "duplicate")
"""Issues ``train`` accepts (a too-long example is truncated; a duplicate is kept or dropped as
``data.duplicates`` says): ``data validate`` reports them as warnings, and ``on_invalid = "fail"``
does not stop a run on them."""


@dataclass
class ValidationReport:
    """Counts of valid and invalid records of one file and every issue found."""

    path: str
    format: str
    length_unit: str
    max_length: int
    valid: int = 0
    issues: list[Issue] = field(default_factory=list)
    objective: str = "sft"
    """The objective the records were read for (it decides which shapes are valid)."""
    shape: str = ""
    """The record shape of the file's first record (``examples.detect_shape``)."""
    mixed: str = ""
    """A warning naming the first record whose shape differs from the first one's ("" if none)."""
    unsupported: dict[str, list[Any]] = field(default_factory=dict)
    """Multimodal / tool-calling records: ``{kind: [count, first where]}``."""
    placeholders: list[Any] = field(default_factory=lambda: [0, "", ""])
    """Records with ``{{name}}`` template placeholders left in: ``[count, first where, the placeholder]``."""

    def note_placeholders(self, where: str, example: Example) -> None:
        """Count a valid example whose text still holds a ``{{name}}`` placeholder."""
        for messages in sequences(example):
            for message in messages:
                content = message.get("content")
                found = _PLACEHOLDER.search(content) if isinstance(content, str) and "{{" in content else None
                if found:
                    if not self.placeholders[0]:
                        self.placeholders[1:] = [where, found.group(0)]
                    self.placeholders[0] += 1
                    return

    def note_shape(self, where: str, record: dict[str, Any]) -> None:
        """Remember the first record's shape; warn once at the first record of another shape; count
        multimodal and tool-calling records."""
        kind = unsupported_kind(record)
        if kind:
            self.unsupported.setdefault(kind, [0, where])[0] += 1
        name = detect_shape(record)[1]
        if not self.shape:
            self.shape = name
        elif name != self.shape and not self.mixed:
            self.mixed = (f"{where}: record shape {name}, while the first record's is {self.shape}: "
                          "the file mixes record shapes")

    @property
    def invalid(self) -> int:
        """How many records were rejected."""
        return len(self.issues)

    @property
    def total(self) -> int:
        """How many records were read."""
        return self.valid + self.invalid

    @property
    def errors(self) -> int:
        """How many records are unusable (issues that are not warnings)."""
        return sum(1 for issue in self.issues if issue.code not in WARNING_CODES)

    @property
    def warnings(self) -> int:
        """How many issues are warnings ``train`` accepts (too long, duplicate)."""
        return self.invalid - self.errors

    def counts(self) -> dict[str, int]:
        """Issues per reason code, most frequent first."""
        return dict(Counter(issue.code for issue in self.issues).most_common())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {"path": self.path, "format": self.format, "objective": self.objective,
                "total": self.total, "valid": self.valid,
                "invalid": self.invalid, "errors": self.errors, "warnings": self.warnings,
                "length_unit": self.length_unit, "max_length": self.max_length,
                "counts": self.counts(), "shape": self.shape, "mixed_shapes": self.mixed,
                "placeholders": {"records": self.placeholders[0], "first": self.placeholders[1]},
                "unsupported": {kind: {"records": n, "first": where} for kind, (n, where) in self.unsupported.items()},
                "issues": [asdict(issue) for issue in self.issues]}


def char_length(messages: list[Message]) -> int:
    """Characters of all message contents."""
    return sum(len(m["content"]) for m in messages)


def classify(message: str) -> tuple[str, str, str]:
    """``(code, field, reason)`` of a ``to_messages`` error text (without its ``where:`` prefix)."""
    if message.startswith("training.objective"):
        return "wrong_objective", "", message
    if message.startswith("unknown record shape"):
        return "unknown_shape", "", message
    if message.startswith("the conversation must end"):
        return "roles_out_of_order", "messages", message
    head, sep, reason = message.partition(": ")
    fld, reason = (head, reason) if sep else ("", message)
    if "roles out of order" in reason:
        return "roles_out_of_order", fld, reason
    if "empty content" in reason:
        return "empty_content", fld, reason
    if "missing" in reason or "unknown role" in reason or "unknown speaker" in reason:
        return "missing_role_or_content", fld, reason
    return "invalid_value", fld, reason


def _digest(example: Example) -> bytes:
    """A short hash of an example, to find exact duplicates."""
    body = json.dumps(sequences(example) + [[{"label": getattr(example, "desirable", None)}]], ensure_ascii=False)
    return hashlib.blake2b(body.encode(), digest_size=12).digest()


def example_length(example: Example, measure: Measure) -> int:
    """The length of an example's longest sequence."""
    return max(measure(messages) for messages in sequences(example))


def check_record(where: str, item: dict[str, Any] | BadRecord, seen: set[bytes] | None, measure: Measure,
                 max_length: int, objective: str = "sft", template: ModelTemplate | None = None) -> Example | Issue:
    """A record's example when valid, else the Issue that rejects it; ``seen`` tracks duplicates (None: not).

    With a ``template`` (the model's own chat template) a record it cannot render is an issue too.
    """
    if isinstance(item, BadRecord):
        return Issue(where, "", item.code, item.reason)
    try:
        messages = to_example(item, where, objective)
    except DataError as err:
        code, fld, reason = classify(str(err).removeprefix(f"{where}: "))
        return Issue(where, fld, code, reason)
    problem = template_problem(template, messages) if template is not None else ""
    if problem:
        return Issue(where, "", "template", problem)
    length = example_length(messages, measure)
    if length > max_length:
        return Issue(where, "", "too_long", f"length {length}, over the limit of {max_length}")
    if seen is None:
        return messages
    digest = _digest(messages)
    if digest in seen:
        return Issue(where, "", "duplicate", "exact duplicate of an earlier record")
    seen.add(digest)
    return messages


def template_problem(template: ModelTemplate, example: Example) -> str:
    """Why the model's chat template cannot train on an example ("" when it can)."""
    if isinstance(example, str):  # raw text (pretrain) is trained without a template
        return ""
    for messages in sequences(example):
        try:
            if template.check_turns:
                assistant_turns(template.render, messages)
            else:
                template.render(messages)
        except DataError as err:
            return f"{err} ({template.origin})"
        except Exception as err:  # noqa: BLE001 - the template's own refusal (raise_exception) or failure
            return f"the chat template ({template.origin}) cannot render this record: {err}"
    return ""


def valid_conversations(path: Path, report: ValidationReport, measure: Measure = char_length,
                        fmt: str | None = None, on_invalid: str = "skip", keep_duplicates: bool = False,
                        objective: str = "sft", notes: bool = False,
                        template: ModelTemplate | None = None) -> Iterator[tuple[str, Example]]:
    """Stream ``(where, example)`` of the valid records; issues go to ``report``.

    Examples are of the kind ``objective`` trains on (for ``sft``: a conversation's messages).

    With ``on_invalid = "fail"`` the first issue raises DataError (its one line). With
    ``keep_duplicates`` duplicates are not looked for (so memory stays flat; the validation
    report and ``data stats`` count them). With ``notes`` the report also gets the file-level
    notes (mixed shapes, multimodal / tool-calling records, placeholders): the check before a run
    and ``data validate`` take them; the worker's pipeline, which runs after that check, does not.
    With a ``template`` every record is rendered with the model's own chat template (the worker's
    pipeline renders them anyway, and names the record it cannot render itself).
    """
    seen: set[bytes] | None = None if keep_duplicates else set()
    for where, item in read_items(path, fmt):
        if notes and isinstance(item, dict):
            report.note_shape(where, item)
        result = check_record(where, item, seen, measure, report.max_length, objective, template)
        if isinstance(result, Issue):
            report.issues.append(result)
            if on_invalid == "fail" and result.code not in WARNING_CODES:
                raise DataError(result.line())
            continue
        report.valid += 1
        if notes:
            report.note_placeholders(where, result)
        yield where, result


def check_file(path: Path, measure: Measure = char_length, max_length: int = 2048,
               length_unit: str = "characters", fmt: str | None = None, objective: str = "sft",
               template: ModelTemplate | None = None) -> ValidationReport:
    """Read the whole file and report every valid and invalid record (as ``objective`` reads them,
    rendered with ``template`` when given)."""
    report = new_report(path, fmt, length_unit, max_length)
    report.objective = objective
    for _ in valid_conversations(path, report, measure, fmt, objective=objective, notes=True, template=template):
        pass
    return report


def new_report(path: Path, fmt: str | None, length_unit: str, max_length: int) -> ValidationReport:
    """An empty report for ``path`` (its format detected when not given)."""
    from engine.data.formats import check_file as check_path

    check_path(path)
    return ValidationReport(str(path), fmt or detect_format(path), length_unit, max_length)


def precheck(path: Path, fmt: str | None = None, on_invalid: str = "fail", keep_duplicates: bool = False,
             objective: str = "sft", max_length: int = 1 << 62,
             template: ModelTemplate | None = None) -> ValidationReport:
    """The check a run makes before it starts, streamed as the worker reads the file.

    It honours ``data.format`` and ``data.on_invalid`` exactly as the pipeline does: with
    ``"fail"`` the first bad record raises DataError (its line), with ``"skip"`` bad records are
    only counted. A file with no usable record raises DataError. Nothing is kept but the counts.
    With the model's own chat ``template`` a record it cannot render is a bad record too.
    """
    report = new_report(path, fmt, "characters", max_length)
    report.objective = objective
    once = replace(template, check_turns=False) if template is not None else None  # one render a record
    for _ in valid_conversations(path, report, char_length, fmt, on_invalid, keep_duplicates, objective, notes=True,
                                 template=once):
        pass
    if not report.valid:
        first = f"; first: {report.issues[0].line()}" if report.issues else ""
        raise DataError(f"{path}: no usable records found{first}")
    for line in unsupported_lines(report):
        raise DataError(f"{line}; remove them (or the field) to train on the text")
    return report


def unsupported_lines(report: ValidationReport) -> list[str]:
    """One line per kind of record text training cannot learn (multimodal, tool-calling)."""
    return [f"{where}: {count} {kind} record{'s' if count > 1 else ''} (first here), which text training "
            "would learn as plain text" for kind, (count, where) in report.unsupported.items()]


def placeholder_line(report: ValidationReport) -> str:
    """The warning about ``{{name}}`` placeholders left in the records ("" if none)."""
    count, where, placeholder = report.placeholders
    if not count:
        return ""
    return (f"{where}: {count} record{'s' if count > 1 else ''} with template placeholders like {placeholder} "
            "left in (first here); they would be trained literally")


def note_lines(report: ValidationReport) -> list[str]:
    """The file-level warnings a run goes on with: record shapes mixed, placeholders left in."""
    return [line for line in (report.mixed, placeholder_line(report)) if line]
