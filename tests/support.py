"""Test helpers shared across folders: small learnable chat data and a tiny model shape.

Kept out of conftest.py so test modules can import them by a unique name (``support``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
            ("Peru", "Lima"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Chile", "Santiago")]


def chat_records(count: int, seed: int) -> list[dict]:
    """Simple, learnable chat records: sums and capitals."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        if rng.random() < 0.6:
            a, b = rng.randint(0, 30), rng.randint(0, 30)
            question, answer = f"What is {a} + {b}?", f"{a} + {b} = {a + b}"
        else:
            country, city = rng.choice(CAPITALS)
            question, answer = f"What is the capital of {country}?", f"The capital of {country} is {city}."
        records.append({"messages": [{"role": "user", "content": question},
                                     {"role": "assistant", "content": answer}]})
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records one JSON object per line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def corpus_lines() -> list[str]:
    """A small plain-text corpus for the tiny tokenizer."""
    lines = [f"{a} + {b} = {a + b}" for a in range(31) for b in range(0, 31, 3)]
    lines += [f"The capital of {c} is {k}." for c, k in CAPITALS]
    lines += [f"What is {a} + {a}?" for a in range(31)] + ["What is the capital of Peru?"]
    return lines


TINY_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
              "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True}


def preference_records(count: int, seed: int) -> list[dict]:
    """TRL conversational pairs from ``chat_records``: the right answer chosen, another one rejected."""
    chats = chat_records(count, seed)
    rng = random.Random(seed + 1)
    records = []
    for chat in chats:
        answer = chat["messages"][-1]["content"]
        other = answer
        while other == answer:
            other = rng.choice(chats)["messages"][-1]["content"]
        records.append({"prompt": chat["messages"][:-1], "chosen": [{"role": "assistant", "content": answer}],
                        "rejected": [{"role": "assistant", "content": other}]})
    return records


def kto_records(count: int, seed: int) -> list[dict]:
    """TRL KTO records (plain strings): each pair's two answers, labelled desirable and undesirable."""
    records = []
    for pair in preference_records(count // 2, seed):
        prompt = pair["prompt"][-1]["content"]
        records.append({"prompt": prompt, "completion": pair["chosen"][0]["content"], "label": True})
        records.append({"prompt": prompt, "completion": pair["rejected"][0]["content"], "label": False})
    return records


def fake_checkpoint(folder: Path, run_id: str, step: int = 2, config: dict | None = None) -> Path:
    """A checkpoint folder whose files are whole (tiny safetensors, a zip state), for torch-free tests."""
    import struct
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (folder / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with zipfile.ZipFile(folder / "trainer_state.pt", "w") as archive:
        archive.writestr("state/data.pkl", b"x")
    meta = {"run_id": run_id, "progress": {"step": step}, "config": config or {}}
    (folder / "progress.json").write_text(json.dumps(meta))
    return folder


TAUGHT = ("What is the capital of Peru?", "The capital of Peru is Lima.")
"""The question ``finetuned_checkpoint`` teaches the tiny model, and its answer."""


def finetuned_checkpoint(model_dir: Path, out: Path, steps: int = 20, lr: float = 1e-2) -> Path:
    """A LoRA checkpoint of the tiny model that answers ``TAUGHT`` (20 steps: about a second; imports torch).

    Its ``progress.json`` names the base, as a run's checkpoint does.
    """
    from dataclasses import replace

    from engine.config import Config
    from engine.data.dataset import load_conversations, tokenize_all
    from engine.events import CheckpointSaved
    from engine.train.methods import load_for_method
    from engine.train.model import load_tokenizer
    from engine.train.recipe import FineTune, RecipeData

    config = Config()
    config = replace(
        config, training=replace(config.training, method="lora", max_steps=steps, batch_size=8, log_steps=1,
                                 learning_rate=lr, warmup_steps=1, seed=3, precision="fp32"),
        lora=replace(config.lora, r=8, alpha=16, dropout=0.0),
        checkpoint=replace(config.checkpoint, save_steps=1000, keep_last_n=0),
        eval=replace(config.eval, steps=0, generate_samples=0, sample_prompts=[]))
    out.mkdir(parents=True, exist_ok=True)
    record = {"messages": [{"role": "user", "content": TAUGHT[0]}, {"role": "assistant", "content": TAUGHT[1]}]}
    tokenizer = load_tokenizer(model_dir)
    samples = tokenize_all(tokenizer, load_conversations(write_jsonl(out / "taught.jsonl", [record] * 16)),
                           "assistant", 96)
    events: list = []
    data = RecipeData(samples, samples[:2], tokenizer.pad_token_id)
    recipe = FineTune(config, load_for_method(model_dir, config), data, out / "checkpoints", events.append,
                      meta={"run_id": "chat-test", "base_model": str(model_dir)})
    recipe.setup()
    recipe.train()
    return Path([e for e in events if isinstance(e, CheckpointSaved)][-1].path)
