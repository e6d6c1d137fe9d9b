"""``training.batch_size = "auto"`` on the tiny model: it probes, trains like the number it found, resumes with it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_methods import method_config, new_recipe, recipe_data

from engine.events import CheckpointSaved, Log, Step
from engine.train.auto_batch import probe_length


def auto_config(max_memory: int = 0, cap: int = 4, **training):
    config = method_config("lora", **training)
    return replace(config, training=replace(config.training, batch_size="auto", max_steps=4),
                   resources=replace(config.resources, max_memory=max_memory, max_batch_size=cap))


def losses(events):
    return torch.tensor([e.loss for e in events if isinstance(e, Step)])


def test_auto_trains_exactly_like_the_size_it_found_and_resumes_with_it(tiny_model_dir, chat_files, tmp_path):
    data = recipe_data(tiny_model_dir, chat_files)
    auto_events: list = []
    auto = new_recipe(auto_config(), tiny_model_dir, data, tmp_path / "auto", auto_events)
    assert auto.config.training.batch_size == 4
    assert any(isinstance(e, Log) and "micro-batch 4 (peak" in e.message for e in auto_events)
    auto.train()

    fixed_config = replace(auto_config(), training=replace(auto_config().training, batch_size=4))
    fixed_events: list = []
    new_recipe(fixed_config, tiny_model_dir, data, tmp_path / "fixed", fixed_events).train()
    torch.testing.assert_close(losses(auto_events), losses(fixed_events), rtol=0, atol=0)

    checkpoint = Path([e for e in auto_events if isinstance(e, CheckpointSaved)][-1].path)
    resumed_events: list = []
    resumed = new_recipe(auto_config(cap=64), tiny_model_dir, data, tmp_path / "again", resumed_events,
                         resume=checkpoint)
    assert resumed.config.training.batch_size == 4  # the checkpoint's, not a new probe's
    assert not any(isinstance(e, Log) and "micro-batch" in e.message for e in resumed_events)  # no new probe


def test_probes_use_the_worst_case_row_length(tiny_model_dir, chat_files):
    data = recipe_data(tiny_model_dir, chat_files)
    config = auto_config()
    assert probe_length(data.train, config) == max(len(s.input_ids) for s in data.train)
    padded = replace(config, data=replace(config.data, pad_to_multiple_of=64))
    assert probe_length(data.train, padded) == 64
    packed = replace(config, data=replace(config.data, packing=True, pack_length=256))
    assert probe_length(data.train, packed) == 256


def test_not_even_one_sample_fits(tiny_model_dir, chat_files, tmp_path):
    from engine.errors import UserError

    data = recipe_data(tiny_model_dir, chat_files)
    with pytest.raises(UserError, match=r"even a micro-batch of 1 sample of \d+ tokens needs more than "
                                        r"resources\.max_memory \(1 MiB\)"):
        new_recipe(auto_config(max_memory=1), tiny_model_dir, data, tmp_path, [])
