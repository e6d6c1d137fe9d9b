"""One configuration value checked against its field: its type, its rule, and how errors show it.

Light (standard library only): the section dataclasses (``engine.config_sections``) check every
field with ``check_value`` as they are built, and the loader (``engine.config``) checks each layer's
values with it, so an error names the key path, the value and what is allowed, in one line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import cache
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from engine.errors import ConfigError

Rule = Callable[[Any], "str | None"]


def field_rule(test: Callable[[Any], bool], problem: str) -> dict[str, Rule]:
    """Field metadata: ``problem`` is reported when ``test(value)`` is false."""
    return {"rule": lambda v: None if test(v) else problem}


ABOVE_0 = field_rule(lambda v: v > 0, "must be > 0")
AT_LEAST_0 = field_rule(lambda v: v >= 0, "must be >= 0")
FRACTION = field_rule(lambda v: 0 <= v <= 1, "must be between 0.0 and 1.0")


@cache
def hints(cls: type) -> dict[str, Any]:
    """The type hints of a section's fields (cached)."""
    return get_type_hints(cls)


@cache
def field_map(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """A section's fields by name (cached)."""
    return {f.name: f for f in dataclasses.fields(cls)}


def show(value: Any) -> str:
    """A value the way an error message shows it (TOML-like: ``true``, ``'text'``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


def coerce(hint: Any, value: Any) -> tuple[Any, str | None]:
    """``(value, None)`` with ints widened to floats, or ``(value, what was expected)``."""
    if get_origin(hint) in (Union, UnionType):
        problems = []
        for arm in get_args(hint):
            checked, problem = coerce(arm, value)
            if problem is None:
                return checked, None
            problems.append(problem.removeprefix("expected "))
        return value, "expected " + " or ".join(problems)
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        ok = isinstance(value, str) and value in choices
        return value, None if ok else "expected one of " + ", ".join(repr(c) for c in choices)
    if hint is bool:
        return value, None if isinstance(value, bool) else "expected true or false"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value, None if ok else "expected an integer"
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), None if math.isfinite(value) else "expected a finite number"
        return value, "expected a number"
    if hint is str:
        return value, None if isinstance(value, str) else "expected a string"
    if get_origin(hint) is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return (list(value), None) if ok else (value, "expected a list of strings")
    raise TypeError(f"unsupported config type {hint!r}")


def check_value(cls: type, key: str, value: Any, key_path: str) -> Any:
    """``value`` checked (and normalised) for field ``key`` of section ``cls``; raises ConfigError."""
    if custom := field_map(cls)[key].metadata.get("check"):  # a field with a checker of its own
        return custom(value, key_path)
    checked, problem = coerce(hints(cls)[key], value)
    if problem is None and (rule := field_map(cls)[key].metadata.get("rule")):
        problem = rule(checked)
    if problem:
        raise ConfigError(f"{key_path} = {show(value)}: {problem}")
    return checked
