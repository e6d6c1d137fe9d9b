"""An evaluation stops when asked; Step events carry the training time, carried over a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_methods import method_config, new_recipe, recipe_data

from engine.events import CheckpointSaved, Step
from engine.train.evaluate import EvalStopped, evaluate_loss


def test_evaluation_stops_between_batches_when_asked(tiny_model_dir, chat_files):
    data = recipe_data(tiny_model_dir, chat_files)
    from engine.train.model import load_model

    model = load_model(tiny_model_dir, method_config("lora")).train()
    asked = []

    def stop_on_third() -> bool:
        asked.append(1)
        return len(asked) == 3
    with pytest.raises(EvalStopped, match=r"stopped after 2 of 6 evaluation batches"):
        evaluate_loss(model, data.eval, 4, data.pad_id, should_stop=stop_on_third)
    assert model.training  # left in the mode it was found in
    assert evaluate_loss(model, data.eval, 4, data.pad_id).loss > 0


def test_steps_report_elapsed_training_time_across_a_resume(tiny_model_dir, chat_files, tmp_path):
    data = recipe_data(tiny_model_dir, chat_files)
    events: list = []
    first = new_recipe(method_config("lora"), tiny_model_dir, data, tmp_path / "a", events)
    first.total_steps = 3
    first.train()
    elapsed = [e.elapsed_s for e in events if isinstance(e, Step)]
    assert elapsed[0] > 0 and elapsed == sorted(elapsed)
    checkpoint = Path([e for e in events if isinstance(e, CheckpointSaved)][-1].path)
    later: list = []
    second = new_recipe(method_config("lora"), tiny_model_dir, data, tmp_path / "b", later, resume=checkpoint)
    second.total_steps = 5
    second.train()
    resumed = [e.elapsed_s for e in later if isinstance(e, Step)]
    assert resumed[0] > elapsed[-1]


@pytest.mark.parametrize("then", ["stop", "resume"])
def test_a_pause_checkpoint_is_not_written_again_by_the_stop_or_final_save(tiny_model_dir, chat_files, tmp_path,
                                                                           then):
    import threading

    from engine.control import ControlState, TrainingControl

    data = recipe_data(tiny_model_dir, chat_files)
    events: list = []
    recipe = new_recipe(method_config("lora"), tiny_model_dir, data, tmp_path, events)
    recipe.total_steps = 1  # resumed, the run ends at once: its final save is at the paused step
    state = ControlState()
    recipe.control = TrainingControl(state, lambda step, path: threading.Timer(0.2, state.apply, [[then]]).start(),
                                     lambda step: None)
    state.apply(["pause"])
    assert recipe.train() == ("stopped" if then == "stop" else "finished")
    saved = [e.step for e in events if isinstance(e, CheckpointSaved)]
    assert saved == [1] and recipe.progress.step == 1
    assert Path(next(e for e in events if isinstance(e, CheckpointSaved)).path).is_dir()
