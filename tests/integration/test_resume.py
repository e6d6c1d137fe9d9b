"""Exact resume: a run stopped after step k and resumed matches an uninterrupted run (CPU, fp32)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.checkpoint_meta import read_checkpoint_meta
from engine.config import Config
from engine.data.dataset import load_conversations, tokenize_all
from engine.events import CheckpointSaved, Eval, Step
from engine.train.methods import load_for_method, uses_adapter
from engine.train.model import load_tokenizer
from engine.train.recipe import FineTune, RecipeData

TOTAL = 10
STOP_AFTER = 4


def _config(method: str) -> Config:
    config = Config()
    packed = method.endswith("-packed")
    method = method.removesuffix("-packed")
    return replace(
        config,
        data=replace(config.data, packing=packed, pack_length=128, prefetch_depth=2),
        training=replace(config.training, method=method, max_steps=TOTAL, batch_size=8, log_steps=1,
                         learning_rate=5e-3, warmup_steps=2, gradient_accumulation_steps=2, seed=7),
        lora=replace(config.lora, r=4, alpha=8, dropout=0.1),
        qat=replace(config.qat, group_size=16, fake_quant_after_n_steps=2),
        checkpoint=replace(config.checkpoint, save_steps=1000, keep_last_n=0),
        eval=replace(config.eval, steps=3, generate_samples=0),
    )


def _recipe(config: Config, model_dir: Path, data: RecipeData, out: Path, events: list,
            model_path: Path | None = None) -> FineTune:
    model = load_for_method(model_path or model_dir, config)
    return FineTune(config, model, data, out, events.append, meta={"run_id": "test"})


def _data(model_dir: Path, files: tuple[Path, Path]) -> RecipeData:
    tokenizer = load_tokenizer(model_dir)
    train = tokenize_all(tokenizer, load_conversations(files[0]), "assistant", 128)
    held = tokenize_all(tokenizer, load_conversations(files[1]), "assistant", 128)
    return RecipeData(train, held, tokenizer.pad_token_id)


def _losses(events: list) -> list[float]:
    return [e.loss for e in events if isinstance(e, Step)]


@pytest.mark.parametrize("method", ["lora", "full", "qlora", "qat", "lora-packed"])
def test_stop_and_resume_matches_uninterrupted_run(tiny_model_dir, chat_files, tmp_path, method):
    config, data = _config(method), _data(tiny_model_dir, chat_files)

    full_events: list = []
    straight = _recipe(config, tiny_model_dir, data, tmp_path / "a", full_events)
    straight.setup()
    assert straight.train() == "finished"

    first_events: list = []
    first = _recipe(config, tiny_model_dir, data, tmp_path / "b", first_events)
    first.setup()
    original_emit = first.emit

    def stop_at_k(event):
        original_emit(event)
        if isinstance(event, Step) and event.step == STOP_AFTER:
            first.stop_requested = True
    first.emit = stop_at_k
    assert first.train() == "stopped"
    saved = [e for e in first_events if isinstance(e, CheckpointSaved)]
    assert saved[-1].step == STOP_AFTER
    checkpoint = Path(saved[-1].path)

    second_events: list = []
    weights_from = None if uses_adapter(config) else checkpoint
    second = _recipe(config, tiny_model_dir, data, tmp_path / "b", second_events, weights_from)
    second.setup(resume_from=checkpoint)
    assert second.progress.step == STOP_AFTER
    assert second.train() == "finished"

    resumed = _losses(first_events) + _losses(second_events)
    torch.testing.assert_close(torch.tensor(resumed), torch.tensor(_losses(full_events)), rtol=0, atol=1e-6)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items(),
                                 strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert _losses(full_events)[-1] < _losses(full_events)[0]


def test_a_stop_during_an_evaluation_cuts_it_short_and_the_resumed_run_evaluates_that_step_first(
        tiny_model_dir, chat_files, tmp_path):
    config, data = _config("lora"), _data(tiny_model_dir, chat_files)
    straight_events: list = []
    straight = _recipe(config, tiny_model_dir, data, tmp_path / "a", straight_events)
    straight.setup()
    assert straight.train() == "finished"

    first_events: list = []
    first = _recipe(config, tiny_model_dir, data, tmp_path / "b", first_events)
    first.setup()
    first.interrupt = lambda: first.progress.step == 3  # a stop arrives during step 3's evaluation
    assert first.train() == "stopped"
    assert not [e for e in first_events if isinstance(e, Eval)], "the cut evaluation reports nothing"
    checkpoint = Path([e for e in first_events if isinstance(e, CheckpointSaved)][-1].path)
    assert checkpoint.name == "step-000003" and read_checkpoint_meta(checkpoint)["progress"]["eval_pending"]

    second_events: list = []
    second = _recipe(config, tiny_model_dir, data, tmp_path / "b", second_events)
    second.setup(resume_from=checkpoint)
    assert second.train() == "finished"
    evals = [(e.step, e.eval_loss) for e in second_events if isinstance(e, Eval)]
    assert evals == [(e.step, e.eval_loss) for e in straight_events if isinstance(e, Eval)]
    assert _losses(first_events) + _losses(second_events) == _losses(straight_events)
    assert second.progress.best_eval_loss == straight.progress.best_eval_loss
