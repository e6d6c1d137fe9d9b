"""The configuration's sections: one dataclass per ``[section]`` of ``config/default.toml``.

Each field holds its default, its type, its rule (``config_values.field_rule``) and a docstring
that the console shows beside it; a section checks every field as it is built. ``Config`` holds
one of each; the loader that fills them from files, environment and flags is ``engine.config``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.config_values import ABOVE_0, AT_LEAST_0, FRACTION, check_value, field_rule, show
from engine.errors import ConfigError


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
    sources: list[DataSource] = field(default_factory=list, metadata={"check": check_sources})
    """Files mixed by weight while streaming (``[[data.sources]]``: path, weight, optional format and
    name); empty = the one file given to ``train``."""
    max_length: int = field(default=512, metadata=ABOVE_0)
    """Longest example in tokens; longer ones are truncated."""
    validation_split: float = field(default=0.05, metadata=field_rule(lambda v: 0 <= v <= 0.5,
                                                                  "must be between 0.0 and 0.5"))
    """Fraction held out for evaluation when no eval file is given."""
    num_workers: int = field(default=0, metadata=AT_LEAST_0)
    """Processes that tokenize data when it is first prepared (0 = one per CPU core)."""
    train_on: Literal["assistant", "all", "last"] = "assistant"
    """Which tokens the loss is computed on."""
    shuffle: bool = True
    """Shuffle the training examples every epoch."""
    format: str = field(default="", metadata=field_rule(lambda v: v == v.strip(), "must be a format name or \"\""))
    """Data file format (jsonl, json, csv, tsv, text, text-blocks, parquet or a plugin); "" detects it."""
    on_invalid: Literal["fail", "skip"] = "fail"
    """An invalid record stops the run ("fail") or is left out and reported ("skip")."""
    duplicates: Literal["keep", "drop"] = "keep"
    """Exact duplicate records are trained on ("keep") or left out ("drop"); both are reported."""
    prepend_tokens: list[str] = field(default_factory=list)
    """Control tokens added to the tokenizer and put before every sample (no loss on them)."""
    packing: bool = False
    """Pack samples into fixed blocks (no padding, no attention across samples)."""
    pack_length: int = field(default=0, metadata=AT_LEAST_0)
    """Tokens per packed block; 0 = ``max_length``."""
    batch_tokens: int = field(default=0, metadata=AT_LEAST_0)
    """Token budget of a length-bucketed dynamic batch; 0 = ``training.batch_size`` samples."""
    pad_to_multiple_of: int = field(default=1, metadata=ABOVE_0)
    """Pad each padded batch's length up to a multiple of this."""
    sort_by_length: bool = False
    """Order batches by sample length instead of shuffling."""
    drop_last: bool = False
    """Drop an epoch's last, incomplete batch."""
    prefetch_depth: int = field(default=4, metadata=ABOVE_0)
    """Batches prepared ahead of the training step on a background thread."""
    augment_mask_prob: float = field(default=0.0, metadata=FRACTION)
    """Probability that an input token is replaced by the pad token (labels unchanged)."""
    augment_replace_prob: float = field(default=0.0, metadata=FRACTION)
    """Probability that an input token is replaced by a random token (labels unchanged)."""
    augment_rotate_prob: float = field(default=0.0, metadata=FRACTION)
    """Probability that an input token is swapped with its right neighbour (labels unchanged)."""


@dataclass
class TrainingConfig(_Section):
    """The optimisation loop."""
    method: Literal["lora", "qlora", "qat", "full"] = "lora"
    """Fine-tuning method."""
    objective: str = field(default="sft", metadata={"rule": lambda v: _objective_problem(v)})
    """What is trained: sft, pretrain, dpo, orpo, simpo or kto (``engine.objectives``)."""
    epochs: int = field(default=2, metadata=ABOVE_0)
    """Passes over the training data (when ``max_steps`` is 0)."""
    max_steps: int = field(default=0, metadata=AT_LEAST_0)
    """Cap on optimizer steps; 0 runs ``epochs`` epochs."""
    batch_size: int | Literal["auto"] = field(
        default=16, metadata=field_rule(lambda v: v == "auto" or v > 0, "must be > 0 or 'auto'"))
    """Examples per forward pass; "auto" = the largest that fits under ``resources.max_memory``."""
    learning_rate: float = field(default=1e-3, metadata=ABOVE_0)
    """Peak learning rate."""
    warmup_steps: int = field(default=20, metadata=AT_LEAST_0)
    """Steps of linear warm-up."""
    weight_decay: float = field(default=0.0, metadata=AT_LEAST_0)
    """AdamW weight decay."""
    gradient_accumulation_steps: int = field(default=1, metadata=ABOVE_0)
    """Forward passes per optimizer step."""
    max_grad_norm: float = field(default=1.0, metadata=AT_LEAST_0)
    """Gradient-norm clipping threshold; 0 disables clipping."""
    seed: int = field(default=42, metadata=AT_LEAST_0)
    """Random seed."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Compute precision; "auto" = bf16 where the hardware computes it natively, fp16 + scaler on
    older CUDA GPUs, fp32 otherwise (fp16 needs a CUDA GPU and uses a gradient scaler)."""
    log_steps: int = field(default=5, metadata=ABOVE_0)
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
    beta: float = field(default=0.1, metadata=ABOVE_0)
    """Strength of the pull towards the reference (higher: stay closer)."""
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    """The DPO loss: sigmoid (the paper's), ipo (squared, per-token log-ratios) or hinge (SLiC)."""


@dataclass
class OrpoConfig(_Section):
    """``training.objective = "orpo"``: SFT on chosen answers plus an odds-ratio penalty (no reference)."""
    weight: float = field(default=0.1, metadata=ABOVE_0)
    """Weight (lambda) of the odds-ratio term beside the chosen answers' SFT loss."""


@dataclass
class SimpoConfig(_Section):
    """``training.objective = "simpo"``: length-normalised preference margin (no reference)."""
    beta: float = field(default=2.0, metadata=ABOVE_0)
    """Scale of the average log-probability rewards."""
    gamma: float = field(default=0.5, metadata=AT_LEAST_0)
    """Target reward margin, in units of ``beta`` (``gamma / beta`` in the loss)."""


@dataclass
class KtoConfig(_Section):
    """``training.objective = "kto"``: unpaired desirable / undesirable answers against a reference."""
    beta: float = field(default=0.1, metadata=ABOVE_0)
    """Strength of the pull towards the reference."""
    desirable_weight: float = field(default=1.0, metadata=ABOVE_0)
    """Weight of the loss on desirable answers."""
    undesirable_weight: float = field(default=1.0, metadata=ABOVE_0)
    """Weight of the loss on undesirable answers."""


@dataclass
class LoraConfig(_Section):
    """LoRA adapter settings (methods ``lora`` and ``qlora``)."""
    r: int = field(default=16, metadata=ABOVE_0)
    """Rank of the update matrices."""
    alpha: int = field(default=32, metadata=ABOVE_0)
    """Scaling numerator: updates are scaled by ``alpha / r``."""
    dropout: float = field(default=0.05, metadata=field_rule(lambda v: 0 <= v < 1, "must be >= 0 and < 1"))
    """Dropout on the LoRA input."""
    target_modules: list[str] | Literal["auto"] = field(
        default="auto",
        metadata=field_rule(lambda v: v == "auto" or bool(v and all(n.strip() for n in v)),
                       "must be 'auto' or a non-empty list of names"))
    """Layers that get adapters: "auto" = every linear and Conv1D projection (not the output head)."""
    bias: Literal["none", "all", "lora_only"] = "none"
    """Which biases are trained."""


@dataclass
class QuantConfig(_Section):
    """How the base model is quantized for ``training.method = "qlora"`` (bitsandbytes)."""
    bits: int = field(default=4, metadata=field_rule(lambda v: v in (4, 8), "must be 4 or 8"))
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
    group_size: int = field(default=32, metadata=ABOVE_0)
    """Weights per quantization group; must divide every linear layer's input features."""
    fake_quant_after_n_steps: int = field(default=0, metadata=AT_LEAST_0)
    """Optimizer steps trained without fake quantization before it is turned on."""
    lora: bool = False
    """Train LoRA adapters (the [lora] keys) over the fake-quantized base instead of all weights."""


@dataclass
class EarlyStoppingConfig(_Section):
    """Stopping when the eval loss stops improving."""
    enabled: bool = False
    """Whether early stopping is on."""
    patience: int = field(default=3, metadata=ABOVE_0)
    """Evaluations without improvement before stopping."""
    min_delta: float = field(default=0.0, metadata=AT_LEAST_0)
    """Smallest drop in eval loss that counts as an improvement."""


@dataclass
class CheckpointConfig(_Section):
    """When checkpoints are written and how many are kept."""
    save_steps: int = field(default=100, metadata=ABOVE_0)
    """Save every this many optimizer steps."""
    keep_last_n: int = field(default=3, metadata=AT_LEAST_0)
    """Step checkpoints kept; 0 keeps all."""
    save_best: bool = True
    """Keep the checkpoint with the lowest eval loss."""


@dataclass
class EvalConfig(_Section):
    """Evaluation during and after training."""
    steps: int = field(default=100, metadata=AT_LEAST_0)
    """Evaluate every this many optimizer steps; 0 = only at the end."""
    batch_size: int = field(default=16, metadata=ABOVE_0)
    """Examples per evaluation forward pass."""
    max_batches: int = field(default=0, metadata=AT_LEAST_0)
    """Evaluate on at most this many batches; 0 = all."""
    generate_samples: int = field(default=128, metadata=AT_LEAST_0)
    """Eval prompts answered greedily at the end for exact-match accuracy; 0 disables."""
    max_new_tokens: int = field(default=32, metadata=ABOVE_0)
    """Longest generated answer, in tokens."""
    sample_prompts: list[str] = field(default_factory=list)
    """User prompts the model answers during training (shown as generations)."""
    sample_steps: int = field(default=0, metadata=AT_LEAST_0)
    """Generate answers to ``sample_prompts`` every this many optimizer steps; 0 disables."""


@dataclass
class CacheConfig(_Section):
    """Size and age limits of the caches."""
    memory_size: int = field(default=512, metadata=ABOVE_0)
    """In-memory cache limit, MiB."""
    disk_size: int = field(default=10240, metadata=ABOVE_0)
    """On-disk cache limit, MiB."""
    max_age_days: int = field(default=30, metadata=ABOVE_0)
    """Entries older than this are removed."""


@dataclass
class ResourcesConfig(_Section):
    """Limits on what a run may use of the machine."""
    max_memory: int = field(default=0, metadata=AT_LEAST_0)
    """MiB a training step may peak at (``training.batch_size = "auto"``); 0 = 90 % of the device's."""
    max_batch_size: int = field(default=64, metadata=ABOVE_0)
    """Largest micro-batch ``training.batch_size = "auto"`` tries."""
    threads: int = field(default=0, metadata=AT_LEAST_0)
    """Compute threads of a run; 0 = its share of the physical cores among the workspace's live runs."""


@dataclass
class DistributedConfig(_Section):
    """A training run as a torchrun group of ranks (DDP or FSDP2); 1 process on 1 machine is a plain run."""
    nproc_per_node: int = field(default=1, metadata=ABOVE_0)
    """Ranks (processes) on each machine: one per GPU, or a few single-thread ranks on a CPU."""
    nnodes: int = field(default=1, metadata=ABOVE_0)
    """Machines in the group."""
    node_rank: int = field(default=0, metadata=AT_LEAST_0)
    """This machine's number, 0 to ``nnodes - 1``; machine 0 records the run."""
    master_addr: str = ""
    """Address of machine 0 (needed when ``nnodes`` > 1)."""
    master_port: int = field(default=29500, metadata=field_rule(lambda v: 0 < v < 65536, "must be a port, 1 to 65535"))
    """Port machine 0 listens on for the group's rendezvous."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """ddp = every rank holds the whole model; fsdp = weights, gradients and optimizer state sharded (FSDP2)."""
    timeout_s: int = field(default=300, metadata=ABOVE_0)
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
