"""Load a conversation dataset from a file, validate it, split it and tokenize it.

This is the light part of the pipeline (no torch): the headless command runs it before starting
a worker so that a bad file fails at once with ``file:line``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.examples import Example, to_example
from engine.data.records import read_records
from engine.data.shapes import Message
from engine.data.template import TokenizedSample, TrainOn, tokenize_conversation
from engine.errors import DataError


@dataclass(frozen=True)
class Conversation:
    """One validated conversation and where it came from (``file:line``)."""

    where: str
    messages: list[Message]


def load_conversations(path: Path) -> list[Conversation]:
    """Every record of the file as a validated conversation; DataError on the first bad one."""
    conversations = [Conversation(where, to_example(record, where, "sft"))
                     for where, record in read_records(path)]
    if not conversations:
        raise DataError(f"{path}: no records found")
    return conversations


def load_examples(path: Path, objective: str = "sft") -> list[tuple[str, Example]]:
    """Every record of the file as ``(where, example)`` of the kind ``objective`` trains on.

    DataError on the first bad record (a record of another kind names the objective and the shape).
    """
    examples = [(where, to_example(record, where, objective)) for where, record in read_records(path)]
    if not examples:
        raise DataError(f"{path}: no records found")
    return examples


def fingerprint(path: Path) -> str:
    """A short content hash of a data file, or of a folder's data files and their names (changes when
    any byte does)."""
    from engine.data.formats import folder_files

    digest = hashlib.sha256()
    for file in folder_files(path) if path.is_dir() else [path]:
        if path.is_dir():
            digest.update(f"{file.relative_to(path)}\0".encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def split(conversations: list[Conversation], fraction: float,
          seed: int) -> tuple[list[Conversation], list[Conversation]]:
    """Deterministic train/validation split; the validation part is ``fraction`` of the records."""
    if fraction <= 0 or len(conversations) < 2:
        return conversations, []
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    cut = max(1, int(round(len(order) * fraction)))
    held = set(order[:cut])
    train = [c for i, c in enumerate(conversations) if i not in held]
    return train, [c for i, c in enumerate(conversations) if i in held]


def tokenize_all(tokenizer: Any, conversations: list[Conversation], train_on: TrainOn,
                 max_length: int) -> list[TokenizedSample]:
    """Tokenize conversations; those left with no trained token after truncation are dropped."""
    samples = [tokenize_conversation(tokenizer, c.messages, train_on, max_length)
               for c in conversations]
    return [s for s in samples if s.trained_tokens > 0]
