"""Evaluation: the objective's loss and metrics (weighted by its units), and exact match of greedy answers."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from engine.config import Config
from engine.data.chat_tokens import stop_token_ids
from engine.data.dataset import Conversation
from engine.data.template import prompt_text
from engine.objectives.base import Objective, pad_rows
from engine.stages import StageTicker
from engine.train.feed import as_dataset


@dataclass(frozen=True)
class EvalResult:
    """Mean loss over the evaluated units (trained tokens for sft, pairs for dpo...) and the metrics.

    ``perplexity`` is ``exp(loss)``, meaningful for the token-level objectives (sft, pretrain);
    ``metrics`` holds the objective's own (reward accuracy...), means over the same units.
    """

    loss: float
    perplexity: float
    tokens: int
    metrics: dict[str, float] = field(default_factory=dict)


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
def evaluate_loss(model: Any, samples: Any, batch_size: int, pad_id: int,
                  precision: str = "fp32", max_batches: int = 0,
                  should_stop: Callable[[], bool] = lambda: False,
                  objective: Objective | None = None, emit: Callable[[Any], None] | None = None) -> EvalResult:
    """Mean loss and metrics over ``samples`` (all of them unless ``max_batches`` > 0).

    ``samples`` is a dataset (``raw(i)``) or a list of ``TokenizedSample``; ``objective`` (default:
    sft's) forms the batches and computes the loss. ``should_stop`` is asked before every batch;
    when it says yes, ``EvalStopped`` is raised. ``emit`` gets the "evaluating k/N batches" stage.
    """
    objective = objective or Objective(Config())
    dataset = as_dataset(samples)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, units, sums = 0.0, 0, dict[str, float]()
    batches = -(-len(dataset) // batch_size)
    ticker = StageTicker(emit, "evaluating", min(batches, max_batches) if max_batches else batches)
    for index, start in enumerate(range(0, len(dataset), batch_size)):
        if max_batches and index >= max_batches:
            break
        if should_stop():
            model.train(was_training)
            raise EvalStopped(f"stopped after {index} of {-(-len(dataset) // batch_size)} evaluation batches")
        chunk = [dataset.raw(i) for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: v.to(device) for k, v in objective.collate(chunk, pad_id).items()}
        with autocast(precision, device):
            out = objective.compute(model, batch)
        count = int(objective.weight(batch))
        total += float(out.loss) * count
        units += count
        for name, value in out.metrics.items():
            sums[name] = sums.get(name, 0.0) + float(value) * count
        ticker(index + 1)
    ticker.end()
    model.train(was_training)
    mean = total / max(units, 1)
    return EvalResult(mean, math.exp(min(mean, 50.0)), units, {k: v / max(units, 1) for k, v in sums.items()})


@torch.no_grad()
def exact_match(model: Any, tokenizer: Any, conversations: Sequence[Conversation],
                max_new_tokens: int = 32, batch_size: int = 32,
                should_stop: Callable[[], bool] = lambda: False,
                emit: Callable[[Any], None] | None = None, detail: str = "") -> ExactMatch:
    """Greedy answers to each conversation's last prompt, compared with its last assistant turn.

    ``emit`` gets the "measuring exact match k/N answers" stage (``detail``: of which model).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits, examples = 0, []
    ticker = StageTicker(emit, "exact_match", len(conversations), detail)
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
        ticker.add(len(pairs))
    ticker.end()
    model.train(was_training)
    return ExactMatch(hits / max(len(conversations), 1), len(conversations), examples)


def generate_greedy(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int,
                    device: torch.device, should_stop: Callable[[], bool] | None = None) -> list[str]:
    """Greedy continuations of a batch of prompts (left-padded).

    ``should_stop`` is asked after every new token; yes ends the generation there (the answers
    are then cut short: the caller asks it again to know).
    """
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    batch = pad_rows(ids, [[True] * len(i) for i in ids], tokenizer.pad_token_id, left=True)
    criteria = StoppingCriteriaList([AskedToStop(should_stop)]) if should_stop else None
    output = model.generate(input_ids=batch["input_ids"].to(device),
                            attention_mask=batch["attention_mask"].to(device),
                            max_new_tokens=max_new_tokens, do_sample=False, stopping_criteria=criteria,
                            eos_token_id=stop_token_ids(tokenizer), pad_token_id=tokenizer.pad_token_id)
    new = output[:, batch["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


class AskedToStop(StoppingCriteria):
    """Ends a ``generate`` call for every sequence once ``should_stop`` says yes (a stop request)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """All done when asked to stop, else none."""
        return torch.full((input_ids.shape[0],), bool(self.should_stop()), dtype=torch.bool, device=input_ids.device)
