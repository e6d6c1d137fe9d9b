"""Sample generations during training: answers to ``eval.sample_prompts`` every ``eval.sample_steps``.

A step hook for the recipe; each answer leaves as a ``Generation`` event (the console shows them,
by step and prompt). Before a fresh run's first step, ``base`` answers the same prompts with the
untrained model (``Generation.base``), so the console can show base and fine-tuned side by side.
Generation is greedy and draws no random numbers, so it never changes a run's losses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engine.data.template import render
from engine.events import Generation, Log, Stage
from engine.train.evaluate import generate_greedy


class SampleGenerations:
    """Step hook that answers the configured prompts every ``every`` steps."""

    def __init__(self, tokenizer: Any, prompts: list[str], every: int, max_new_tokens: int,
                 emit: Callable[[Any], None]) -> None:
        self.tokenizer, self.prompts, self.every = tokenizer, list(prompts), every
        self.max_new_tokens, self.emit = max_new_tokens, emit

    def due(self, step: int) -> bool:
        """Whether the step just finished is one to generate at."""
        return bool(self.prompts) and self.every > 0 and step > 0 and step % self.every == 0

    def __call__(self, recipe: Any) -> None:
        """Generate and emit answers when due."""
        step = recipe.progress.step
        if self.due(step):
            self.generate(recipe.model, step, base=False, should_stop=getattr(recipe, "interrupt", None))

    def base(self, model: Any, should_stop: Callable[[], bool] | None = None) -> None:
        """Answer the prompts with the model before its first step (nothing when sampling is off)."""
        if self.prompts and self.every > 0:
            self.generate(model, 0, base=True, detail="(base model)", should_stop=should_stop)

    def generate(self, model: Any, step: int, base: bool, detail: str = "",
                 should_stop: Callable[[], bool] | None = None) -> None:
        """Answer every prompt with ``model`` and emit the answers as ``Generation`` events.

        A stop asked for meanwhile (``should_stop``) ends the generation early and nothing is
        emitted but a line: greedy answers draw no random numbers, so the run resumes the same.
        """
        self.emit(Stage("generating", 0, len(self.prompts), detail))
        rendered = [render(self.tokenizer, [{"role": "user", "content": p}], add_generation_prompt=True)
                    for p in self.prompts]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            answers = generate_greedy(model, self.tokenizer, rendered, self.max_new_tokens,
                                      next(model.parameters()).device, should_stop)
        model.train(was_training)
        if should_stop is not None and should_stop():
            self.emit(Log("info", f"stop: the samples of step {step} were cut short and are not kept"))
            return
        self.emit(Stage("generating", len(self.prompts), len(self.prompts), detail))
        for prompt, answer in zip(self.prompts, answers, strict=True):
            self.emit(Generation(step=step, prompt=prompt, text=answer, base=base))
