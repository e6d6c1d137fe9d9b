"""Training objectives and the registry the loop looks them up in (light: no torch at import).

An objective (``training.objective``) is one module under ``engine/objectives/`` holding an
``Objective`` (see ``base.py``): the batch form, the loss and the metrics. The registry keeps, for
each name, the kind of record the objective trains on (``engine.data.examples.KINDS``: the data
layer validates, renders and tokenizes by kind, without torch) and where its module is, imported
only when a run needs it. Adding an objective is one module, its tests and one entry here (or a
call to ``register``, which is what plugins and the tests do).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """One registered objective: its record kind and how to get the object."""

    records: str
    """The record kind it trains on: "chat", "text", "pair" or "unpaired"."""
    load: str | Callable[[], Any]
    """``"module:attribute"`` of the ``Objective``, or a function returning it."""
    summary: str = ""
    """A few words for messages and the README."""


REGISTRY: dict[str, Entry] = {
    "sft": Entry("chat", "engine.objectives.sft:OBJECTIVE", "supervised fine-tuning on chat data"),
    "pretrain": Entry("text", "engine.objectives.pretrain:OBJECTIVE", "language modelling on raw text"),
    "dpo": Entry("pair", "engine.objectives.dpo:OBJECTIVE", "direct preference optimization"),
    "orpo": Entry("pair", "engine.objectives.orpo:OBJECTIVE", "odds-ratio preference optimization"),
    "simpo": Entry("pair", "engine.objectives.simpo:OBJECTIVE", "simple preference optimization"),
    "kto": Entry("unpaired", "engine.objectives.kto:OBJECTIVE", "Kahneman-Tversky optimization"),
}
"""Objective name -> its entry (``training.objective`` takes these names)."""


def register(name: str, records: str, load: str | Callable[[], Any], summary: str = "") -> None:
    """Add (or replace) an objective under ``name``."""
    REGISTRY[name] = Entry(records, load, summary)


def entry(name: str) -> Entry:
    """The entry of ``name``; ConfigError naming the key and the known objectives if none."""
    found = REGISTRY.get(name)
    if found is None:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"training.objective: unknown objective {name!r} (expected one of {known})")
    return found


def record_kind(name: str) -> str:
    """The record kind objective ``name`` trains on."""
    return entry(name).records


def objectives_for(kind: str) -> list[str]:
    """The objectives that train on records of ``kind``, in registry order."""
    return [name for name, item in REGISTRY.items() if item.records == kind]


def load(name: str) -> Any:
    """The ``Objective`` registered as ``name`` (its module is imported now; it may import torch)."""
    target = entry(name).load
    if callable(target):
        return target()
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def make(config: Any) -> Any:
    """The objective ``config.training.objective`` names, set up with ``config``."""
    return load(config.training.objective)(config)
