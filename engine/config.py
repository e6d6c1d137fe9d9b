"""The typed, layered configuration: dataclass sections and the loader that fills them.

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
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import tomlkit
from tomlkit.exceptions import TOMLKitError

from engine.errors import ConfigError
from engine.project import PROJECT_ROOT

CONFIG_DIR: Path = PROJECT_ROOT / "config"
"""Shipped configuration: ``default.toml`` and the built-in model shapes in ``models/``."""
DEFAULT_FILE: Path = CONFIG_DIR / "default.toml"
ENV_PREFIX = "LLAMAHOME_"

Rule = Callable[[Any], "str | None"]


def _rule(test: Callable[[Any], bool], problem: str) -> dict[str, Rule]:
    """Field metadata: ``problem`` is reported when ``test(value)`` is false."""
    return {"rule": lambda v: None if test(v) else problem}


_ABOVE_0 = _rule(lambda v: v > 0, "must be > 0")
_AT_LEAST_0 = _rule(lambda v: v >= 0, "must be >= 0")
_FRACTION = _rule(lambda v: 0 <= v <= 1, "must be between 0.0 and 1.0")


class _Section:
    """Validation shared by the section dataclasses: checks and normalises every field."""

    def __post_init__(self) -> None:
        section = _SECTION_NAMES[type(self)]
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            setattr(self, f.name, check_value(type(self), f.name, value, f"{section}.{f.name}"))


@dataclass
class ModelConfig(_Section):
    """The base model to fine-tune."""
    path: str = ""
    """Local ``save_pretrained`` folder; "" uses the built-in base named by ``builtin``."""
    builtin: str = "tiny-llama"
    """Built-in base: the name of a file in ``config/models/``."""
    prebuilt: bool = True
    """Use the pre-built copy of the built-in base shipped in ``data/base/`` when it matches."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model folder."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Data type the weights are loaded in."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    """Attention kernel; "auto" = SDPA where the model family supports it, else eager (both pack)."""


@dataclass(frozen=True)
class DataSource:
    """One file of a weighted mixture (a ``[[data.sources]]`` table)."""
    path: str
    """The data file (or folder)."""
    weight: float = 1.0
    """Its share of the mixture, relative to the other sources' weights."""
    format: str = ""
    """Its format; "" = ``data.format`` (or detected)."""
    name: str = ""
    """What the run history calls it (per-source sample counts and eval losses); "" = the file's name."""


SOURCE_KEYS = ("path", "weight", "format", "name")


def check_sources(value: Any, key_path: str) -> list[DataSource]:
    """``[[data.sources]]`` tables as ``DataSource`` objects, each key checked, names made unique."""
    if not isinstance(value, list):
        raise ConfigError(f"{key_path} = {show(value)}: expected [[data.sources]] tables (path, weight, format)")
    sources = [_source_entry(entry, f"{key_path}[{number}]") for number, entry in enumerate(value, 1)]
    named = [replace_name(s) for s in sources]
    seen: set[str] = set()
    for number, source in enumerate(named, 1):
        if source.name in seen:
            raise ConfigError(f"{key_path}[{number}].name = {source.name!r}: another source has this name; "
                              "give each source its own name")
        seen.add(source.name)
    return named


def replace_name(source: DataSource) -> DataSource:
    """The source named after its file when it has no name."""
    if source.name:
        return source
    name = Path(source.path).name
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ".arrow"):
        name = name.removesuffix(suffix)
    return dataclasses.replace(source, name=name or "source")


def _source_entry(entry: Any, where: str) -> DataSource:
    """One ``[[data.sources]]`` table, checked."""
    if isinstance(entry, DataSource):
        entry = dataclasses.asdict(entry)
    elif isinstance(entry, str):  # --set data.sources=a.jsonl,b.jsonl: equal weights
        entry = {"path": entry}
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} = {show(entry)}: expected a table with path, weight and format")
    for key in entry:
        if key not in SOURCE_KEYS:
            raise ConfigError(f"unknown key '{where}.{key}' (known keys: {', '.join(SOURCE_KEYS)})")
    path, weight = entry.get("path"), entry.get("weight", 1.0)
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}.path = {show(path)}: expected the path of a data file")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"{where}.weight = {show(weight)}: must be a number > 0")
    for key in ("format", "name"):
        if not isinstance(entry.get(key, ""), str):
            raise ConfigError(f"{where}.{key} = {show(entry[key])}: expected a string")
    return DataSource(path, float(weight), entry.get("format", "").strip(), entry.get("name", "").strip())


@dataclass
class DataConfig(_Section):
    """How the training data is split, tokenized and fed."""
    sources: list[DataSource] = field(default_factory=list)
    """Files mixed by weight while streaming (``[[data.sources]]``: path, weight, optional format and
    name); empty = the one file given to ``train``."""
    max_length: int = field(default=512, metadata=_ABOVE_0)
    """Longest example in tokens; longer ones are truncated."""
    validation_split: float = field(default=0.05, metadata=_rule(lambda v: 0 <= v <= 0.5,
                                                                  "must be between 0.0 and 0.5"))
    """Fraction held out for evaluation when no eval file is given."""
    num_workers: int = field(default=0, metadata=_AT_LEAST_0)
    """Processes that tokenize data when it is first prepared (0 = one per CPU core)."""
    train_on: Literal["assistant", "all", "last"] = "assistant"
    """Which tokens the loss is computed on."""
    shuffle: bool = True
    """Shuffle the training examples every epoch."""
    format: str = field(default="", metadata=_rule(lambda v: v == v.strip(), "must be a format name or \"\""))
    """Data file format (jsonl, json, csv, tsv, text, text-blocks, parquet or a plugin); "" detects it."""
    on_invalid: Literal["fail", "skip"] = "fail"
    """An invalid record stops the run ("fail") or is left out and reported ("skip")."""
    duplicates: Literal["keep", "drop"] = "keep"
    """Exact duplicate records are trained on ("keep") or left out ("drop"); both are reported."""
    prepend_tokens: list[str] = field(default_factory=list)
    """Control tokens added to the tokenizer and put before every sample (no loss on them)."""
    packing: bool = False
    """Pack samples into fixed blocks (no padding, no attention across samples)."""
    pack_length: int = field(default=0, metadata=_AT_LEAST_0)
    """Tokens per packed block; 0 = ``max_length``."""
    batch_tokens: int = field(default=0, metadata=_AT_LEAST_0)
    """Token budget of a length-bucketed dynamic batch; 0 = ``training.batch_size`` samples."""
    pad_to_multiple_of: int = field(default=1, metadata=_ABOVE_0)
    """Pad each padded batch's length up to a multiple of this."""
    sort_by_length: bool = False
    """Order batches by sample length instead of shuffling."""
    drop_last: bool = False
    """Drop an epoch's last, incomplete batch."""
    prefetch_depth: int = field(default=4, metadata=_ABOVE_0)
    """Batches prepared ahead of the training step on a background thread."""
    augment_mask_prob: float = field(default=0.0, metadata=_FRACTION)
    """Probability that an input token is replaced by the pad token (labels unchanged)."""
    augment_replace_prob: float = field(default=0.0, metadata=_FRACTION)
    """Probability that an input token is replaced by a random token (labels unchanged)."""
    augment_rotate_prob: float = field(default=0.0, metadata=_FRACTION)
    """Probability that an input token is swapped with its right neighbour (labels unchanged)."""


@dataclass
class TrainingConfig(_Section):
    """The optimisation loop."""
    method: Literal["lora", "qlora", "qat", "full"] = "lora"
    """Fine-tuning method."""
    objective: str = field(default="sft", metadata={"rule": lambda v: _objective_problem(v)})
    """What is trained: sft, pretrain, dpo, orpo, simpo or kto (``engine.objectives``)."""
    epochs: int = field(default=2, metadata=_ABOVE_0)
    """Passes over the training data (when ``max_steps`` is 0)."""
    max_steps: int = field(default=0, metadata=_AT_LEAST_0)
    """Cap on optimizer steps; 0 runs ``epochs`` epochs."""
    batch_size: int | Literal["auto"] = field(
        default=16, metadata=_rule(lambda v: v == "auto" or v > 0, "must be > 0 or 'auto'"))
    """Examples per forward pass; "auto" = the largest that fits under ``resources.max_memory``."""
    learning_rate: float = field(default=1e-3, metadata=_ABOVE_0)
    """Peak learning rate."""
    warmup_steps: int = field(default=20, metadata=_AT_LEAST_0)
    """Steps of linear warm-up."""
    weight_decay: float = field(default=0.0, metadata=_AT_LEAST_0)
    """AdamW weight decay."""
    gradient_accumulation_steps: int = field(default=1, metadata=_ABOVE_0)
    """Forward passes per optimizer step."""
    max_grad_norm: float = field(default=1.0, metadata=_AT_LEAST_0)
    """Gradient-norm clipping threshold; 0 disables clipping."""
    seed: int = field(default=42, metadata=_AT_LEAST_0)
    """Random seed."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Compute precision; "auto" = bf16 where the hardware computes it natively, fp16 + scaler on
    older CUDA GPUs, fp32 otherwise (fp16 needs a CUDA GPU and uses a gradient scaler)."""
    log_steps: int = field(default=5, metadata=_ABOVE_0)
    """Log the loss every this many optimizer steps."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    compile: bool = False
    """Compile the model with ``torch.compile`` (slow first step, faster later ones)."""


def _objective_problem(name: Any) -> str | None:
    """None when ``name`` is a registered objective, else what is allowed."""
    from engine.objectives import REGISTRY

    return None if name in REGISTRY else f"must be one of {', '.join(REGISTRY)}"


@dataclass
class PretrainConfig(_Section):
    """``training.objective = "pretrain"``: language modelling on raw text."""
    packing: bool = True
    """Pack texts into ``data.pack_length`` blocks (whatever ``data.packing`` says); false pads each."""


@dataclass
class PreferenceConfig(_Section):
    """Preference pairs (``dpo``, ``orpo``, ``simpo``): how a batch of pairs reaches the model."""
    packing: bool = True
    """Pack pairs into rows without padding, each prompt computed once for both answers (which
    attend to it and not to each other); false pads every sequence to the batch's longest, as TRL."""


@dataclass
class DpoConfig(_Section):
    """``training.objective = "dpo"``: direct preference optimization against a reference model."""
    beta: float = field(default=0.1, metadata=_ABOVE_0)
    """Strength of the pull towards the reference (higher: stay closer)."""
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    """The DPO loss: sigmoid (the paper's), ipo (squared, per-token log-ratios) or hinge (SLiC)."""


@dataclass
class OrpoConfig(_Section):
    """``training.objective = "orpo"``: SFT on chosen answers plus an odds-ratio penalty (no reference)."""
    weight: float = field(default=0.1, metadata=_ABOVE_0)
    """Weight (lambda) of the odds-ratio term beside the chosen answers' SFT loss."""


@dataclass
class SimpoConfig(_Section):
    """``training.objective = "simpo"``: length-normalised preference margin (no reference)."""
    beta: float = field(default=2.0, metadata=_ABOVE_0)
    """Scale of the average log-probability rewards."""
    gamma: float = field(default=0.5, metadata=_AT_LEAST_0)
    """Target reward margin, in units of ``beta`` (``gamma / beta`` in the loss)."""


@dataclass
class KtoConfig(_Section):
    """``training.objective = "kto"``: unpaired desirable / undesirable answers against a reference."""
    beta: float = field(default=0.1, metadata=_ABOVE_0)
    """Strength of the pull towards the reference."""
    desirable_weight: float = field(default=1.0, metadata=_ABOVE_0)
    """Weight of the loss on desirable answers."""
    undesirable_weight: float = field(default=1.0, metadata=_ABOVE_0)
    """Weight of the loss on undesirable answers."""


@dataclass
class LoraConfig(_Section):
    """LoRA adapter settings (methods ``lora`` and ``qlora``)."""
    r: int = field(default=16, metadata=_ABOVE_0)
    """Rank of the update matrices."""
    alpha: int = field(default=32, metadata=_ABOVE_0)
    """Scaling numerator: updates are scaled by ``alpha / r``."""
    dropout: float = field(default=0.05, metadata=_rule(lambda v: 0 <= v < 1, "must be >= 0 and < 1"))
    """Dropout on the LoRA input."""
    target_modules: list[str] | Literal["auto"] = field(
        default="auto",
        metadata=_rule(lambda v: v == "auto" or bool(v and all(n.strip() for n in v)),
                       "must be 'auto' or a non-empty list of names"))
    """Layers that get adapters: "auto" = every linear and Conv1D projection (not the output head)."""
    bias: Literal["none", "all", "lora_only"] = "none"
    """Which biases are trained."""


@dataclass
class QuantConfig(_Section):
    """How the base model is quantized for ``training.method = "qlora"`` (bitsandbytes)."""
    bits: int = field(default=4, metadata=_rule(lambda v: v in (4, 8), "must be 4 or 8"))
    """Bits per base weight."""
    type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type."""
    double_quant: bool = True
    """Quantize the 4-bit scales too (saves about 0.4 bits per weight)."""
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Data type the 4-bit layers compute in."""


@dataclass
class QatConfig(_Section):
    """Quantization-aware training (``training.method = "qat"``, torchao int4 weights, int8 activations)."""
    group_size: int = field(default=32, metadata=_ABOVE_0)
    """Weights per quantization group; must divide every linear layer's input features."""
    fake_quant_after_n_steps: int = field(default=0, metadata=_AT_LEAST_0)
    """Optimizer steps trained without fake quantization before it is turned on."""
    lora: bool = False
    """Train LoRA adapters (the [lora] keys) over the fake-quantized base instead of all weights."""


@dataclass
class EarlyStoppingConfig(_Section):
    """Stopping when the eval loss stops improving."""
    enabled: bool = False
    """Whether early stopping is on."""
    patience: int = field(default=3, metadata=_ABOVE_0)
    """Evaluations without improvement before stopping."""
    min_delta: float = field(default=0.0, metadata=_AT_LEAST_0)
    """Smallest drop in eval loss that counts as an improvement."""


@dataclass
class CheckpointConfig(_Section):
    """When checkpoints are written and how many are kept."""
    save_steps: int = field(default=100, metadata=_ABOVE_0)
    """Save every this many optimizer steps."""
    keep_last_n: int = field(default=3, metadata=_AT_LEAST_0)
    """Step checkpoints kept; 0 keeps all."""
    save_best: bool = True
    """Keep the checkpoint with the lowest eval loss."""


@dataclass
class EvalConfig(_Section):
    """Evaluation during and after training."""
    steps: int = field(default=100, metadata=_AT_LEAST_0)
    """Evaluate every this many optimizer steps; 0 = only at the end."""
    batch_size: int = field(default=16, metadata=_ABOVE_0)
    """Examples per evaluation forward pass."""
    max_batches: int = field(default=0, metadata=_AT_LEAST_0)
    """Evaluate on at most this many batches; 0 = all."""
    generate_samples: int = field(default=128, metadata=_AT_LEAST_0)
    """Eval prompts answered greedily at the end for exact-match accuracy; 0 disables."""
    max_new_tokens: int = field(default=32, metadata=_ABOVE_0)
    """Longest generated answer, in tokens."""
    sample_prompts: list[str] = field(default_factory=list)
    """User prompts the model answers during training (shown as generations)."""
    sample_steps: int = field(default=0, metadata=_AT_LEAST_0)
    """Generate answers to ``sample_prompts`` every this many optimizer steps; 0 disables."""


@dataclass
class CacheConfig(_Section):
    """Size and age limits of the caches."""
    memory_size: int = field(default=512, metadata=_ABOVE_0)
    """In-memory cache limit, MiB."""
    disk_size: int = field(default=10240, metadata=_ABOVE_0)
    """On-disk cache limit, MiB."""
    max_age_days: int = field(default=30, metadata=_ABOVE_0)
    """Entries older than this are removed."""


@dataclass
class ResourcesConfig(_Section):
    """Limits on what a run may use of the machine."""
    max_memory: int = field(default=0, metadata=_AT_LEAST_0)
    """MiB a training step may peak at (``training.batch_size = "auto"``); 0 = 90 % of the device's."""
    max_batch_size: int = field(default=64, metadata=_ABOVE_0)
    """Largest micro-batch ``training.batch_size = "auto"`` tries."""
    threads: int = field(default=0, metadata=_AT_LEAST_0)
    """Compute threads of a run; 0 = its share of the physical cores among the workspace's live runs."""


@dataclass
class DistributedConfig(_Section):
    """A training run as a torchrun group of ranks (DDP or FSDP2); 1 process on 1 machine is a plain run."""
    nproc_per_node: int = field(default=1, metadata=_ABOVE_0)
    """Ranks (processes) on each machine: one per GPU, or a few single-thread ranks on a CPU."""
    nnodes: int = field(default=1, metadata=_ABOVE_0)
    """Machines in the group."""
    node_rank: int = field(default=0, metadata=_AT_LEAST_0)
    """This machine's number, 0 to ``nnodes - 1``; machine 0 records the run."""
    master_addr: str = ""
    """Address of machine 0 (needed when ``nnodes`` > 1)."""
    master_port: int = field(default=29500, metadata=_rule(lambda v: 0 < v < 65536, "must be a port, 1 to 65535"))
    """Port machine 0 listens on for the group's rendezvous."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """ddp = every rank holds the whole model; fsdp = weights, gradients and optimizer state sharded (FSDP2)."""
    timeout_s: int = field(default=300, metadata=_ABOVE_0)
    """Seconds a rank waits in a collective for the others before the group ends (a hung rank)."""


@dataclass
class LoggingConfig(_Section):
    """What is logged and where."""
    level: Literal["info", "debug", "warning"] = "info"
    """Lowest level of messages shown and written."""
    tensorboard: bool = False
    """Also write TensorBoard event files."""


@dataclass
class Config:
    """The whole resolved configuration of a run: one attribute per section of default.toml."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    qat: QatConfig = field(default_factory=QatConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    dpo: DpoConfig = field(default_factory=DpoConfig)
    orpo: OrpoConfig = field(default_factory=OrpoConfig)
    simpo: SimpoConfig = field(default_factory=SimpoConfig)
    kto: KtoConfig = field(default_factory=KtoConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


SECTIONS: dict[str, type[_Section]] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
"""Section name -> its dataclass, in file order."""
_SECTION_NAMES = {cls: name for name, cls in SECTIONS.items()}

Sections = dict[str, dict[str, Any]]


# --- checking single values -------------------------------------------------------------------

@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


@cache
def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def show(value: Any) -> str:
    """A value the way an error message shows it (TOML-like: ``true``, ``'text'``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


def _coerce(hint: Any, value: Any) -> tuple[Any, str | None]:
    """``(value, None)`` with ints widened to floats, or ``(value, what was expected)``."""
    if get_origin(hint) in (Union, UnionType):
        problems = []
        for arm in get_args(hint):
            checked, problem = _coerce(arm, value)
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
    if _hints(cls)[key] == list[DataSource]:
        return check_sources(value, key_path)
    checked, problem = _coerce(_hints(cls)[key], value)
    if problem is None and (rule := _fields(cls)[key].metadata.get("rule")):
        problem = rule(checked)
    if problem:
        raise ConfigError(f"{key_path} = {show(value)}: {problem}")
    return checked


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
            if key not in _fields(cls):
                raise ConfigError(f"unknown key '{prefix}{name}.{key}' (known keys in [{name}]: "
                                  f"{', '.join(_fields(cls))}){_did_you_mean(key, _fields(cls))}")
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
    hint = _hints(SECTIONS[section]).get(key) if section in SECTIONS else None
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
