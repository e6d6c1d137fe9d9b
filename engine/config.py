"""The typed, layered configuration: the loader that fills the sections (``engine.config_sections``).

Layers, later wins: ``config/default.toml`` -> the user's file -> ``[model_configs.<family>]``
tables from those files -> ``LLAMAHOME_<SECTION>__<KEY>`` environment variables -> ``--set
SECTION.KEY=VALUE`` flags. Every value is checked as it is read, so an error names its source, the
key path, the value and what is allowed, in one line. Light on imports (no torch, no transformers):
the UI process imports it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import tomlkit
from tomlkit.exceptions import TOMLKitError

from engine.config_sections import (  # noqa: F401  (re-exported: engine.config is the configuration's public face)
    SECTIONS,
    CacheConfig,
    CheckpointConfig,
    Config,
    DataConfig,
    DataSource,
    DistributedConfig,
    DpoConfig,
    EarlyStoppingConfig,
    EvalConfig,
    KtoConfig,
    LoggingConfig,
    LoraConfig,
    ModelConfig,
    OrpoConfig,
    PreferenceConfig,
    PretrainConfig,
    QatConfig,
    QuantConfig,
    ResourcesConfig,
    Sections,
    SimpoConfig,
    TrainingConfig,
    check_sources,
    replace_name,
)
from engine.config_values import check_value, field_map, hints, show  # noqa: F401  (re-exported)
from engine.errors import ConfigError
from engine.project import PROJECT_ROOT

CONFIG_DIR: Path = PROJECT_ROOT / "config"
"""Shipped configuration: ``default.toml`` and the built-in model shapes in ``models/``."""
DEFAULT_FILE: Path = CONFIG_DIR / "default.toml"
ENV_PREFIX = "LLAMAHOME_"


def _check_sections(doc: Mapping[str, Any], prefix: str = "") -> Sections:
    """Check a ``{section: {key: value}}`` mapping; ``prefix`` is prepended to key paths."""
    out: Sections = {}
    for name, table in doc.items():
        cls = SECTIONS.get(name)
        if cls is None:
            raise ConfigError(f"unknown section [{prefix}{name}] (known sections: {', '.join(SECTIONS)})"
                              f"{_did_you_mean(name, SECTIONS)}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{prefix}{name} = {show(table)}: expected a table [{prefix}{name}]")
        out[name] = {}
        for key, value in table.items():
            if key not in field_map(cls):
                raise ConfigError(f"unknown key '{prefix}{name}.{key}' (known keys in [{name}]: "
                                  f"{', '.join(field_map(cls))}){_did_you_mean(key, field_map(cls))}")
            out[name][key] = check_value(cls, key, value, f"{prefix}{name}.{key}")
    return out


def _did_you_mean(word: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


@contextmanager
def _source(label: str | None) -> Iterator[None]:
    """Prefix a ConfigError raised inside with where the value came from."""
    try:
        yield
    except ConfigError as err:
        if not label:
            raise
        raise ConfigError(f"{label}: {err}".replace("\n", " ")) from None


# --- reading the layers -----------------------------------------------------------------------

def _label(path: Path) -> str:
    """How a file is named in messages: shipped files relative to the project root."""
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def _read_toml(path: Path, label: str) -> tomlkit.TOMLDocument:
    """Parse a TOML file, keeping comments; errors are ``label:LINE: invalid TOML: reason``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ConfigError(f"{label}: cannot read: {reason}") from None
    try:
        return tomlkit.parse(text)
    except TOMLKitError as err:
        line = getattr(err, "line", None)
        reason = re.sub(r" at line \d+ col \d+$", "", str(err)).replace("'\\x00'", "end of file")
        raise ConfigError(f"{label}{f':{line}' if line else ''}: invalid TOML: {reason}") from None


def _read_config_file(path: Path) -> tuple[str, Sections, dict[str, Sections]]:
    """``(label, sections, {family: sections})`` of a config file, every value checked."""
    label = str(path) if path.resolve() != DEFAULT_FILE.resolve() else _label(path)
    doc = _read_toml(path, label).unwrap()
    with _source(label):
        families = doc.pop("model_configs", {})
        if not isinstance(families, Mapping):
            raise ConfigError(f"model_configs = {show(families)}: expected [model_configs.<family>] tables")
        checked: dict[str, Sections] = {}
        for family, tables in families.items():
            if not isinstance(tables, Mapping):
                raise ConfigError(f"model_configs.{family} = {show(tables)}: expected a table of sections")
            checked[family.lower()] = _check_sections(tables, f"model_configs.{family}.")
        return label, _check_sections(doc), checked


def parse_text(section: str, key: str, text: str) -> Any:
    """A value typed as text (env, ``--set``, an input box): TOML when it parses, else the string."""
    hint = hints(SECTIONS[section]).get(key) if section in SECTIONS else None
    text = text.strip()
    try:
        parsed = tomlkit.parse(f"v = {text}").unwrap()
        value = parsed["v"] if parsed.keys() == {"v"} else text
    except TOMLKitError:
        value = text
    if hint is str or get_origin(hint) is Literal:
        return value if isinstance(value, str) else text
    if get_origin(hint) in (Union, UnionType):
        choices = [c for arm in get_args(hint) if get_origin(arm) is Literal for c in get_args(arm)]
        if text in choices:
            return text
        if any(get_origin(arm) is list for arm in get_args(hint)) and isinstance(value, str):
            return [part.strip() for part in text.split(",") if part.strip()]
    if hint is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if get_origin(hint) is list and not isinstance(value, list):
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _assignment(key_path: str, text: str) -> Sections:
    """One ``section.key`` set from text, checked."""
    section, dot, key = key_path.strip().partition(".")
    if not dot or not section or not key:
        raise ConfigError(f"'{key_path}': expected SECTION.KEY, e.g. training.learning_rate")
    return _check_sections({section: {key: parse_text(section, key, text)}})


def _env_layers(env: Mapping[str, str]) -> list[tuple[str, Sections]]:
    """``LLAMAHOME_<SECTION>__<KEY>`` variables (any case); other ``LLAMAHOME_*`` are ignored."""
    layers = []
    for name in sorted(env):
        rest = name.upper().removeprefix(ENV_PREFIX)
        if rest == name.upper() or "__" not in rest:
            continue
        section, _, key = rest.lower().partition("__")
        with _source(name):
            layers.append((name, _assignment(f"{section}.{key}", env[name])))
    return layers


def _set_layers(overrides: Sequence[str]) -> list[tuple[str, Sections]]:
    """``--set SECTION.KEY=VALUE`` flags."""
    layers = []
    for item in overrides:
        label = f"--set {item}"
        with _source(label):
            key_path, eq, text = item.partition("=")
            if not eq:
                raise ConfigError("expected SECTION.KEY=VALUE, e.g. training.learning_rate=1e-4")
            layers.append((label, _assignment(key_path, text)))
    return layers


def _build(layers: Sequence[tuple[str | None, Sections]]) -> tuple[Config, dict[str, str | None]]:
    """Merge checked layers over the defaults; returns the config and each key path's source."""
    merged = config_to_dict(Config())
    sources: dict[str, str | None] = {}
    for label, sections in layers:
        for section, values in sections.items():
            merged[section].update(values)
            sources.update({f"{section}.{key}": label for key in values})
    return Config(**{name: cls(**merged[name]) for name, cls in SECTIONS.items()}), sources


def load_config(config_file: Path | None = None, overrides: Sequence[str] = (),
                env: Mapping[str, str] | None = None, family: str | None = None) -> Config:
    """The resolved configuration: defaults < file < family overrides < environment < ``--set``."""
    files = [_read_config_file(DEFAULT_FILE)]
    if config_file is not None:
        files.append(_read_config_file(Path(config_file)))
    layers: list[tuple[str | None, Sections]] = [(label, sections) for label, sections, _ in files]
    if family:
        layers += [(label, fams[family.lower()]) for label, _, fams in files if family.lower() in fams]
    layers += _env_layers(os.environ if env is None else env)
    layers += _set_layers(overrides)
    config, sources = _build(layers)
    if config.training.batch_size == "auto" and config.data.batch_tokens > 0:
        with _source(sources.get("training.batch_size")):
            raise ConfigError("training.batch_size = 'auto': not used with data.batch_tokens > 0 (the token "
                              "budget sets the batch); set data.batch_tokens = 0 or a number of samples")
    if not config.model.path:
        with _source(sources.get("model.builtin")):
            _check_builtin(config.model.builtin)
    check_distributed(config, sources)
    return config


def check_distributed(config: Config, sources: Mapping[str, str | None] | None = None) -> None:
    """The ``[distributed]`` keys that only make sense together; ConfigError naming the key."""
    sources = sources or {}
    group, method = config.distributed, config.training.method
    if group.node_rank >= group.nnodes:
        with _source(sources.get("distributed.node_rank")):
            raise ConfigError(f"distributed.node_rank = {group.node_rank}: must be below distributed.nnodes "
                              f"({group.nnodes})")
    if group.nnodes > 1 and not group.master_addr:
        with _source(sources.get("distributed.nnodes")):
            raise ConfigError(f"distributed.master_addr: needed when distributed.nnodes = {group.nnodes} "
                              "(the address of machine 0)")
    if group.strategy == "fsdp" and method in ("qlora", "qat"):
        with _source(sources.get("distributed.strategy")):
            raise ConfigError(f"distributed.strategy = 'fsdp': not supported with training.method = '{method}' "
                              f"({_NO_FSDP[method]}); use distributed.strategy = 'ddp'")


_NO_FSDP = {"qlora": "FSDP2 cannot shard bitsandbytes 4-bit weights",
            "qat": "fake quantization under FSDP2 is not supported by this engine"}


# --- plain data in and out ---------------------------------------------------------------------

def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The config as plain JSON-ready data: ``{section: {key: value}}``."""
    return dataclasses.asdict(config)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """A config from ``config_to_dict`` output (e.g. read back from JSON); checked, missing keys default."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config = {show(data)}: expected a table of sections")
    return _build([(None, _check_sections(data))])[0]


# --- built-in models and families --------------------------------------------------------------

def list_builtin_models() -> list[str]:
    """Names of the built-in base models (the files in ``config/models/``)."""
    return sorted(p.stem for p in (CONFIG_DIR / "models").glob("*.toml"))


def _check_builtin(name: str) -> None:
    available = list_builtin_models()
    if name not in available:
        raise ConfigError(f"model.builtin = {name!r}: no such built-in model "
                          f"(available: {', '.join(available) or 'none'})")


def load_model_shape(name: str) -> dict[str, Any]:
    """Built-in model ``name`` (``config/models/<name>.toml``) as a plain dict."""
    _check_builtin(name)
    path = CONFIG_DIR / "models" / f"{name}.toml"
    shape = _read_toml(path, _label(path)).unwrap()
    if not isinstance(shape.get("family"), str) or not isinstance(shape.get("shape"), dict):
        raise ConfigError(f"{_label(path)}: expected a 'family' string and a [shape] table")
    return shape


def model_family(config: Config) -> str:
    """The model's family (``llama``, ``qwen2``...): ``model_type`` of the folder, or the built-in's."""
    if not config.model.path:
        return str(load_model_shape(config.model.builtin)["family"])
    where = f"model.path = {config.model.path!r}"
    folder = Path(config.model.path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{where}: no such folder")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{where}: not a save_pretrained folder (no config.json)")
    try:
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{where}: unreadable config.json ({err})") from None
    model_type = meta.get("model_type") if isinstance(meta, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise ConfigError(f"{where}: config.json has no model_type")
    return model_type.lower()


# --- editing a file ----------------------------------------------------------------------------

def set_value(doc_path: Path, key_path: str, value: Any) -> None:
    """Set ``section.key`` (or ``model_configs.<family>.section.key``) in a TOML file.

    The value is checked first (text is parsed as for ``--set``); comments and key order are kept.
    The file is created if it does not exist.
    """
    parts = key_path.split(".")
    prefix = ".".join(parts[:2]) + "." if len(parts) == 4 and parts[0] == "model_configs" else ""
    if len(parts) != (4 if prefix else 2):
        raise ConfigError(f"'{key_path}': expected SECTION.KEY or model_configs.FAMILY.SECTION.KEY")
    section, key = parts[-2:]
    if isinstance(value, str):
        value = parse_text(section, key, value)
    value = _check_sections({section: {key: value}}, prefix)[section][key]
    if isinstance(value, list) and value and isinstance(value[0], DataSource):
        value = [dataclasses.asdict(source) for source in value]  # written as inline tables
    path = Path(doc_path)
    doc = _read_toml(path, str(path)) if path.exists() else tomlkit.document()
    table: Any = doc
    for name in parts[:-1]:
        if name not in table:
            table[name] = tomlkit.table(is_super_table=name != section)
        table = table[name]
    table[key] = value
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
