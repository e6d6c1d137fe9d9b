"""Shared pieces of the training benchmarks: the model, the data, the measurements.

Every path trains the same tiny Llama shape (config/models/tiny-llama.toml, random weights —
throughput does not depend on them) with LoRA r=8 on q/k/v/o, on the same samples: the shipped
chat data plus generated conversations of 30–500 tokens.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.quiet import quiet_libraries  # noqa: E402

quiet_libraries()

RESULTS = ROOT / "bench" / "results"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class PathResult:
    """What one training path measured over the timed steps."""

    name: str
    precision: str
    steps: int
    seconds: float
    real_tokens: int
    computed_tokens: int
    peak_rss_mb: float
    losses: list[float]

    @property
    def tokens_per_s(self) -> float:
        """Real (non-pad) tokens trained per second."""
        return self.real_tokens / self.seconds

    @property
    def pad_share(self) -> float:
        """Share of computed token positions that were padding."""
        return 1 - self.real_tokens / max(self.computed_tokens, 1)

    def to_json(self) -> dict[str, Any]:
        """Plain data, with the derived figures."""
        return {**asdict(self), "tokens_per_s": self.tokens_per_s, "pad_share": self.pad_share}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tokenizer_and_model(seed: int = 0) -> tuple[Any, Any]:
    """A tokenizer trained on the base corpus and a randomly initialised tiny Llama."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.config import load_model_shape
    from engine.data.tokenizer import train_bpe_tokenizer

    shape = load_model_shape("tiny-llama")
    corpus = (ROOT / shape["pretrain"]["corpus"]).read_text().splitlines()[:20000]
    tokenizer = train_bpe_tokenizer(corpus, shape["tokenizer"]["vocab_size"])
    torch.manual_seed(seed)
    config = LlamaConfig(**{**shape["shape"], "vocab_size": len(tokenizer)},
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    return tokenizer, model


def variable_length_conversations(count: int, seed: int) -> list[list[dict[str, str]]]:
    """Chat samples of about 30–500 tokens: several shipped answers joined in one turn."""
    from engine.data.dataset import load_conversations

    shipped = load_conversations(ROOT / "data" / "samples" / "chat_train.jsonl")
    rng = random.Random(seed)
    conversations = []
    for _ in range(count):
        parts = rng.sample(shipped, rng.choice([1, 2, 4, 8, 16, 24]))
        question = " ".join(p.messages[-2]["content"] for p in parts)
        answer = " ".join(p.messages[-1]["content"] for p in parts)
        conversations.append([{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
    return conversations


def samples(tokenizer: Any, count: int = 2000, seed: int = 0, max_length: int = 512) -> list[Any]:
    """Tokenized samples with loss masks on the assistant turn."""
    from engine.data.template import tokenize_conversation

    return [tokenize_conversation(tokenizer, c, "assistant", max_length)
            for c in variable_length_conversations(count, seed)]


def lora_model(model: Any, r: int = 8) -> Any:
    """The model wrapped with LoRA on q/k/v/o, no dropout (deterministic)."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0,
                                            target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))


class StepClock:
    """Times optimizer steps after a warm-up."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.marks: list[float] = []

    def tick(self) -> None:
        """Call at the end of every optimizer step."""
        self.marks.append(time.perf_counter())

    def timed(self) -> float:
        """Seconds from the end of the warm-up to the last step."""
        return self.marks[-1] - self.marks[self.warmup - 1]


def machine() -> dict[str, Any]:
    """What the figures were measured on: the CPU kind (native bf16 or not), cores and threads.

    The CPU kind differs between machines, and bf16 is many times slower on one without native
    bf16 (AVX2-only), so every result names it.
    """
    import os

    import torch

    from engine.threads import physical_cores
    from engine.train.precision import detect

    hardware = detect("cpu")
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "") if Path("/proc/cpuinfo").is_file() else ""
    return {"cpu": model, "cpu_capability": hardware.describe_cpu(), "native_bf16": hardware.cpu_native_bf16,
            "physical_cores": physical_cores(), "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY")}


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``, with the machine it was measured on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path
