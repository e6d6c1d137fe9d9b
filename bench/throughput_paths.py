"""One training path of bench/train_throughput.py, run in its own process; prints JSON.

    python -m bench.throughput_paths {hf_trainer,trl_packed,engine,bare_loop,interleaved} \
        --precision fp32 [--method lora|full]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

from bench.common import LORA_TARGETS, PathResult, StepClock, lora_model, peak_rss_mb, samples, tokenizer_and_model

LEARNING_RATE = 1e-3
PACKED_ROWS = 4
SEQ_LEN = 512
METHOD = "lora"
"""``lora`` (r=8 on q/k/v/o) or ``full`` (every weight trained); set by ``--method``."""


def _adapt(model: Any) -> Any:
    """The model as the method trains it: wrapped with LoRA, or as it is for full fine-tuning."""
    return lora_model(model) if METHOD == "lora" else model


def _autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    import torch

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def hf_trainer(precision: str, steps: int, warmup: int, batch: int) -> PathResult:
    """transformers.Trainer + peft, pad-to-longest batches: what most users run."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    tokenizer, model = tokenizer_and_model()
    model = _adapt(model)
    data = [{"input_ids": s.input_ids, "labels": s.labels} for s in samples(tokenizer)]
    pad = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
    counts: list[tuple[int, int]] = []

    def collate(features: list[dict]) -> dict:
        out = pad(features)
        counts.append((int(out["attention_mask"].sum()), out["input_ids"].numel()))
        return out

    clock = StepClock(warmup)

    class Tick(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            clock.tick()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=warmup + steps,
                                 learning_rate=LEARNING_RATE, lr_scheduler_type="cosine", warmup_steps=warmup,
                                 logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
                                 bf16=precision == "bf16", dataloader_num_workers=0, seed=0,
                                 remove_unused_columns=False, max_grad_norm=1.0, disable_tqdm=True)
        Trainer(model=model, args=args, train_dataset=data, data_collator=collate, callbacks=[Tick()]).train()
    return _result("hf_trainer", precision, steps, clock, counts[warmup:warmup + steps], [])


def trl_packed(precision: str, steps: int, warmup: int, batch: int) -> PathResult:
    """TRL SFTTrainer with packing (what axolotl / LLaMA-Factory users get)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer, model = tokenizer_and_model()
    rows = [{"input_ids": s.input_ids, "completion_mask": [int(label != -100) for label in s.labels]}
            for s in samples(tokenizer)]
    clock = StepClock(warmup)
    counts: list[tuple[int, int]] = []

    class Tick(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            clock.tick()

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, per_device_train_batch_size=PACKED_ROWS, max_steps=warmup + steps,
                           learning_rate=LEARNING_RATE, lr_scheduler_type="cosine", warmup_steps=warmup,
                           logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
                           bf16=precision == "bf16", packing=True, max_length=SEQ_LEN,
                           completion_only_loss=True, dataloader_num_workers=0, seed=0, max_grad_norm=1.0,
                           disable_tqdm=True)
        from peft import LoraConfig

        peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS,
                                 task_type="CAUSAL_LM") if METHOD == "lora" else None
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer, callbacks=[Tick()], peft_config=peft_config)
        _count_batches(trainer, counts, tokenizer.pad_token_id)
        trainer.train()
    return _result("trl_packed", precision, steps, clock, counts[warmup:warmup + steps], [])


def _count_batches(trainer: Any, counts: list[tuple[int, int]], pad_id: int) -> None:
    """Wrap the trainer's collator to count real and computed token positions."""
    inner = trainer.data_collator

    def collate(features: list[dict]) -> dict:
        out = inner(features)
        ids = out["input_ids"]
        real = int(out["attention_mask"].sum()) if "attention_mask" in out else int((ids != pad_id).sum())
        counts.append((real, ids.numel()))
        return out
    trainer.data_collator = collate


def engine(precision: str, steps: int, warmup: int, batch: int) -> PathResult:
    """Our FineTune recipe, as the worker runs it, with ``data.packing = true`` (rows of 512)."""
    clock, counts = StepClock(warmup), []
    with tempfile.TemporaryDirectory() as out:
        recipe, pad_id = _engine_recipe(precision, steps, warmup, out)
        _instrument(recipe, clock, counts, pad_id)
        recipe.train()
    return _result("engine", precision, steps, clock, counts[warmup:warmup + steps], [])


def _engine_recipe(precision: str, steps: int, warmup: int, out: str) -> tuple[Any, int]:
    """A set-up FineTune on the bench model and samples (packed rows, the method's settings, no saves)."""
    from dataclasses import replace
    from pathlib import Path

    from engine.config import Config
    from engine.train.recipe import FineTune, RecipeData

    tokenizer, model = tokenizer_and_model()
    config = Config()
    config = replace(config,
                     data=replace(config.data, packing=True, pack_length=SEQ_LEN, max_length=SEQ_LEN),
                     training=replace(config.training, method=METHOD, max_steps=warmup + steps,
                                      batch_size=PACKED_ROWS, learning_rate=LEARNING_RATE, warmup_steps=warmup,
                                      log_steps=10_000, precision=precision),
                     lora=replace(config.lora, r=8, alpha=16, dropout=0.0, target_modules=LORA_TARGETS),
                     checkpoint=replace(config.checkpoint, save_steps=1_000_000), eval=replace(config.eval, steps=0))
    recipe = FineTune(config, model, RecipeData(samples(tokenizer), [], tokenizer.pad_token_id),
                      Path(out), lambda event: None)
    recipe.setup()
    recipe.save = lambda reason: None  # type: ignore[method-assign]
    return recipe, tokenizer.pad_token_id


def _instrument(recipe: Any, clock: StepClock, counts: list[tuple[int, int]], pad_id: int) -> None:
    """Count tokens per optimizer step and tick the clock after each one."""
    next_batch: Callable[[], Any] = recipe._next_batch
    step: Callable[..., Any] = recipe._optimizer_step

    def counted() -> Any:
        batch = next_batch()
        counts.append((batch.real_tokens, batch.computed_tokens))
        return batch

    def timed(*args: Any) -> Any:
        result = step(*args)
        clock.tick()
        return result
    recipe._next_batch = counted
    recipe._optimizer_step = timed


class BareLoop:
    """A hand-written packed loop: every position is a real token (the no-waste limit)."""

    def __init__(self, precision: str) -> None:
        import torch

        tokenizer, model = tokenizer_and_model()
        self.model, self.precision = _adapt(model), precision
        self.ids, self.labels, self.positions = _pack(samples(tokenizer))
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=LEARNING_RATE, fused=True)  # as the engine and HF Trainer

    def step(self, index: int) -> int:
        """Optimizer step ``index`` on the next PACKED_ROWS rows; returns the tokens it trained."""
        import torch

        rows = slice((index * PACKED_ROWS) % (len(self.ids) - PACKED_ROWS), None)
        chunk = {"input_ids": self.ids[rows][:PACKED_ROWS], "labels": self.labels[rows][:PACKED_ROWS],
                 "position_ids": self.positions[rows][:PACKED_ROWS]}
        with _autocast(self.precision):
            loss = self.model(**chunk, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return chunk["input_ids"].numel()


def bare_loop(precision: str, steps: int, warmup: int, batch: int) -> PathResult:
    """The bare packed loop on its own."""
    loop, clock, counts = BareLoop(precision), StepClock(warmup), []
    for index in range(warmup + steps):
        tokens = loop.step(index)
        counts.append((tokens, tokens))
        clock.tick()
    return _result("bare_loop", precision, steps, clock, counts[warmup:warmup + steps], [])


def interleaved(precision: str, steps: int, warmup: int, batch: int) -> dict[str, Any]:
    """Our engine and the bare loop taking turns, one optimizer step each, in one process.

    Separate processes on a shared 2-core machine differ by up to a third run to run (the same
    path, minutes apart), more than the 5 % the engine / bare-loop goal allows; here both see the same
    moment's machine. The engine runs its own ``train()`` loop; a step hook runs one bare-loop
    step (its own copy of the model and optimizer, the same packed rows as ``bare_loop``) and
    times it, and the engine's step is the time between hooks less that. Returns real tokens/s
    of each and their ratio.
    """
    import time

    loop = BareLoop(precision)
    times: dict[str, list[float]] = {"engine": [], "bare_loop": []}
    bare_tokens, mark = [], [0.0]

    def bare_step(recipe: Any) -> None:
        entered = time.perf_counter()
        tokens = loop.step(recipe.progress.step)
        left = time.perf_counter()
        if recipe.progress.step > warmup:
            times["engine"].append(entered - mark[0])
            times["bare_loop"].append(left - entered)
            bare_tokens.append(tokens)
        mark[0] = left

    with tempfile.TemporaryDirectory() as out:
        recipe, pad_id = _engine_recipe(precision, steps, warmup, out)
        counts: list[tuple[int, int]] = []
        _instrument(recipe, StepClock(warmup), counts, pad_id)
        recipe.step_hooks.append(bare_step)
        mark[0] = time.perf_counter()
        recipe.train()
    real = [c[0] for c in counts[warmup:warmup + len(times["engine"])]]  # step s trained counts[s - 1]
    engine_tps = sum(real) / sum(times["engine"])
    bare_tps = sum(bare_tokens) / sum(times["bare_loop"])
    return {"name": "interleaved", "precision": precision, "method": METHOD, "steps": len(times["engine"]),
            "engine_tokens_per_s": engine_tps, "bare_loop_tokens_per_s": bare_tps,
            "ratio_vs_bare_loop": engine_tps / bare_tps, "peak_rss_mb": peak_rss_mb(),
            "engine_step_s": statistics.median(times["engine"]),
            "bare_loop_step_s": statistics.median(times["bare_loop"])}


def _pack(items: list[Any]) -> tuple[Any, Any, Any]:
    """Concatenate samples into rows of SEQ_LEN with per-sample position ids."""
    import torch

    ids, labels, positions = [], [], []
    for sample in items:
        ids.extend(sample.input_ids)
        labels.extend([-100] + sample.labels[1:])
        positions.extend(range(len(sample.input_ids)))
    rows = len(ids) // SEQ_LEN

    def shape(values: list[int]) -> Any:
        return torch.tensor(values[:rows * SEQ_LEN]).view(rows, SEQ_LEN)
    return shape(ids), shape(labels), shape(positions)


def _result(name: str, precision: str, steps: int, clock: StepClock, counts: list[tuple[int, int]],
            losses: list[float]) -> PathResult:
    return PathResult(name, precision, steps, clock.timed(), sum(c[0] for c in counts),
                      sum(c[1] for c in counts), peak_rss_mb(), losses)


def main() -> None:
    """Run one path and print its result as one JSON line."""
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=["hf_trainer", "trl_packed", "engine", "bare_loop", "interleaved"])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    args = parser.parse_args()
    global METHOD
    METHOD = args.method
    torch.manual_seed(0)
    result = globals()[args.path](args.precision, args.steps, args.warmup, args.batch)
    print(json.dumps(result if isinstance(result, dict) else result.to_json()))


if __name__ == "__main__":
    main()
