"""Helpers for tests that train objectives: data prepared through the real pipeline, small configs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from support import chat_records, kto_records, preference_records, write_jsonl

from engine.config import Config
from engine.data.pipeline import prepare
from engine.data.token_cache import TokenCache
from engine.events import Eval, Step
from engine.train.methods import load_for_method
from engine.train.model import load_tokenizer
from engine.train.recipe import FineTune, RecipeData

RECORDS = {"pair": preference_records, "unpaired": kto_records, "chat": chat_records}


def objective_config(objective: str, method: str = "lora", steps: int = 12, **training: object) -> Config:
    """A small run of ``objective``: batch 8, LoRA r 8, eval every 6 steps, fp32, no generations."""
    config = Config()
    training = {"learning_rate": 5e-3, **training}
    return replace(
        config,
        data=replace(config.data, max_length=96, pack_length=96, prefetch_depth=2, validation_split=0.1),
        training=replace(config.training, objective=objective, method=method, max_steps=steps, batch_size=8,
                         log_steps=1, warmup_steps=2, seed=3, precision="fp32",
                         **training),
        lora=replace(config.lora, r=8, alpha=16, dropout=0.0),
        checkpoint=replace(config.checkpoint, save_steps=1000, keep_last_n=0),
        eval=replace(config.eval, steps=6, generate_samples=0),
    )


def objective_data(config: Config, model_dir: Path, folder: Path, path: Path | None = None) -> RecipeData:
    """Train and held-out samples of the kind ``config``'s objective trains on, through the token cache."""
    from engine.objectives import record_kind

    kind = record_kind(config.training.objective)
    if path is None:
        path = folder / f"{kind}.jsonl"
        if not path.exists():
            write_jsonl(path, RECORDS[kind](120, seed=5))
    tokenizer = load_tokenizer(model_dir)
    prepared = prepare([path], tokenizer, config, TokenCache(folder / "cache"), workers=1)
    train, held = prepared.split(config.data.validation_split, config.training.seed)
    return RecipeData(train, held, tokenizer.pad_token_id, len(tokenizer))


def train(config: Config, model_dir: Path, data: RecipeData, out: Path, events: list,
          resume: Path | None = None, weights: Path | None = None, objective: object = None) -> FineTune:
    """Set up a recipe (resumed from ``resume`` when given) and train it to the end."""
    model = load_for_method(weights or model_dir, config)
    recipe = FineTune(config, model, data, out, events.append, meta={"run_id": "t", "base_model": str(model_dir)},
                      objective=objective)
    recipe.setup(resume_from=resume)
    recipe.train()
    return recipe


def losses(events: list) -> list[float]:
    """Every Step event's loss."""
    return [e.loss for e in events if isinstance(e, Step)]


def evals(events: list) -> list[Eval]:
    """Every Eval event."""
    return [e for e in events if isinstance(e, Eval)]
