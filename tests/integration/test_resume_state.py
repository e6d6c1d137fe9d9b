"""What a resumed recipe must know besides weights: which checkpoint is the best, and that a
damaged trainer state is one line naming it (never torch's ``weights_only=False`` advice)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_resume import _config, _data, _recipe

from engine.errors import UserError
from engine.events import Step
from engine.train import checkpoint as ckpt

EVAL_LOSSES = {2: 1.0, 4: 0.5, 6: 0.9, 8: 0.95}
"""Step 4 is the best evaluation; later ones are worse."""


def _scripted_eval(recipe) -> None:
    """Make ``recipe.evaluate`` return ``EVAL_LOSSES`` instead of measuring."""
    def evaluate(should_stop=None) -> float:
        recipe.last_eval_loss, recipe.last_eval_step = EVAL_LOSSES[recipe.progress.step], recipe.progress.step
        return recipe.last_eval_loss
    recipe.evaluate = evaluate


def test_the_best_checkpoint_survives_pruning_after_a_resume(tiny_model_dir, chat_files, tmp_path: Path) -> None:
    config = _config("lora")
    config = replace(config, training=replace(config.training, max_steps=8),
                     eval=replace(config.eval, steps=2),
                     checkpoint=replace(config.checkpoint, save_steps=2, keep_last_n=1, save_best=True))
    data = _data(tiny_model_dir, chat_files)
    first = _recipe(config, tiny_model_dir, data, tmp_path / "ckpt", events := [])
    first.setup()
    _scripted_eval(first)
    emit = first.emit
    first.emit = lambda e: (emit(e), isinstance(e, Step) and e.step == 5 and setattr(first, "stop_requested", True))
    assert first.train() == "stopped"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-000004", "step-000005"]

    second = _recipe(config, tiny_model_dir, data, tmp_path / "ckpt", events)
    second.setup(resume_from=tmp_path / "ckpt" / "step-000005")
    _scripted_eval(second)
    assert second.train() == "finished"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-000004", "step-000008"]
    assert second.best_checkpoint == tmp_path / "ckpt" / "step-000004"


def test_a_garbage_trainer_state_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / ckpt.STATE_FILE).write_bytes(b"\x80\x04\x95garbage that is not a torch archive")
    with pytest.raises(UserError) as caught:
        ckpt.load_trainer_state(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / ckpt.STATE_FILE}: unreadable trainer state")
    assert "weights_only" not in message and "\n" not in message
