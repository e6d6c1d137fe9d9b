"""Evaluation: token-weighted loss and perplexity, and exact match of greedy answers."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engine.data.dataset import Conversation
from engine.data.template import IGNORE_INDEX, TokenizedSample, prompt_text
from engine.train.batches import collate


@dataclass(frozen=True)
class EvalResult:
    """Mean loss over every trained token of the evaluated samples, and its perplexity."""

    loss: float
    perplexity: float
    tokens: int


@dataclass(frozen=True)
class ExactMatch:
    """Share of prompts answered exactly as the reference, with a few examples."""

    accuracy: float
    total: int
    examples: list[tuple[str, str, str]]


_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 or fp16 autocast when asked for, else nothing."""
    if precision in _AUTOCAST:
        return torch.autocast(device_type=device.type, dtype=_AUTOCAST[precision])
    return contextlib.nullcontext()


class EvalStopped(KeyboardInterrupt):
    """An evaluation was asked to stop before it ended (the worker records the run as stopped)."""


@torch.no_grad()
def evaluate_loss(model: Any, samples: Sequence[TokenizedSample], batch_size: int, pad_id: int,
                  precision: str = "fp32", max_batches: int = 0,
                  should_stop: Callable[[], bool] = lambda: False) -> EvalResult:
    """Token-weighted mean loss over ``samples`` (all of them unless ``max_batches`` > 0).

    ``should_stop`` is asked before every batch; when it says yes, ``EvalStopped`` is raised.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for index, start in enumerate(range(0, len(samples), batch_size)):
        if max_batches and index >= max_batches:
            break
        if should_stop():
            model.train(was_training)
            raise EvalStopped(f"stopped after {index} of {-(-len(samples) // batch_size)} evaluation batches")
        chunk = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        with autocast(precision, device):
            loss = model(**batch).loss
        count = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        total += float(loss) * count
        tokens += count
    model.train(was_training)
    mean = total / max(tokens, 1)
    return EvalResult(mean, math.exp(min(mean, 50.0)), tokens)


@torch.no_grad()
def exact_match(model: Any, tokenizer: Any, conversations: Sequence[Conversation],
                max_new_tokens: int = 32, batch_size: int = 32,
                should_stop: Callable[[], bool] = lambda: False) -> ExactMatch:
    """Greedy answers to each conversation's last prompt, compared with its last assistant turn."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits, examples = 0, []
    for start in range(0, len(conversations), batch_size):
        if should_stop():
            model.train(was_training)
            raise EvalStopped(f"stopped after {start} of {len(conversations)} generated answers")
        pairs = [prompt_text(tokenizer, c.messages) for c in conversations[start:start + batch_size]]
        answers = generate_greedy(model, tokenizer, [p for p, _ in pairs], max_new_tokens, device)
        for (prompt, reference), answer in zip(pairs, answers, strict=True):
            hits += answer.strip() == reference.strip()
            if len(examples) < 5:
                examples.append((prompt, reference, answer))
    model.train(was_training)
    return ExactMatch(hits / max(len(conversations), 1), len(conversations), examples)


def generate_greedy(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int,
                    device: torch.device) -> list[str]:
    """Greedy continuations of a batch of prompts (left-padded)."""
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    samples = [TokenizedSample(i, i) for i in ids]
    batch = collate(samples, tokenizer.pad_token_id, left=True)
    output = model.generate(input_ids=batch["input_ids"].to(device),
                            attention_mask=batch["attention_mask"].to(device),
                            max_new_tokens=max_new_tokens, do_sample=False,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    new = output[:, batch["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)
