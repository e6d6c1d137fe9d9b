"""Resuming a finished run: the same max steps is refused with a reason; more steps (and a new peak
learning rate) train on from its last step."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import fake_checkpoint
from test_engine_control import LIMIT_S, tiny_config, wait_for

from engine.api import Engine
from engine.errors import UserError
from engine.resume import refuse_nothing_left
from engine.workspace import Workspace

CONFIG = {"model": {"path": "/models/tiny"}, "training": {"max_steps": 40, "learning_rate": 1e-3},
          "job": {"data": "/data/train.jsonl"}}


def finished_run(engine: Engine, run_id: str, step: int, config: dict) -> Path:
    """A finished run whose last checkpoint (``final``) is at ``step``."""
    output = engine.workspace.run_dir(run_id)
    engine.store.create_run(run_id, "train", config, "m", "/data/train.jsonl", output_dir=str(output))
    engine.store.update_run(run_id, status="finished")
    folder = fake_checkpoint(output / "checkpoints" / f"step-{step:06d}", run_id, step=step, config=config)
    meta = (folder / "progress.json").read_text().replace('"config"', '"reason": "final", "config"')
    (folder / "progress.json").write_text(meta)
    engine.store.add_checkpoint(run_id, step, folder, None)
    return folder


def test_resuming_the_last_step_with_the_same_max_steps_says_so(tmp_path: Path) -> None:
    engine = Engine(Workspace(tmp_path / "ws"))
    finished_run(engine, "a", 40, CONFIG)
    with pytest.raises(UserError, match=r"step-000040 is at step 40 and the run's max steps is 40: no step is left"):
        engine.resume_run("a")
    with pytest.raises(UserError, match="max steps is 30: no step is left"):
        engine.resume_run("a", max_steps=30)
    by_epochs = {**CONFIG, "training": {"max_steps": 0, "epochs": 2}}
    finished_run(engine, "b", 12, by_epochs)
    with pytest.raises(UserError, match="trained all its epochs .step 12.: no step is left"):
        engine.resume_run("b")
    plan = engine.resume_plan("a")
    assert (plan["step"], plan["max_steps"], plan["learning_rate"]) == (40, 40, 1e-3)
    assert engine.store.list_runs(limit=10)[0].id in ("a", "b"), "nothing was started"
    engine.close()


def test_a_run_killed_after_its_last_step_resumes_to_finish(tmp_path: Path) -> None:
    engine = Engine(Workspace(tmp_path / "ws"))
    folder = finished_run(engine, "a", 40, CONFIG)
    refuse_nothing_left(folder, 40, raised=False, finished=False)  # its final model and evaluation are left
    with pytest.raises(UserError, match="no step is left"):
        refuse_nothing_left(folder, 40, raised=False, finished=True)
    engine.close()


@pytest.mark.slow
def test_a_finished_run_resumed_with_more_steps_and_a_new_peak_trains_on(tiny_model_dir, chat_files, tmp_path):
    engine = Engine(Workspace(tmp_path / "ws"))
    config = tiny_config(tiny_model_dir, "training.max_steps=4", "checkpoint.save_steps=2",
                         "training.warmup_steps=0")
    source = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    wait_for(lambda: engine.get_run(source).status not in ("pending", "running"), "the source run", LIMIT_S)
    assert engine.get_run(source).status == "finished"
    with pytest.raises(UserError, match="no step is left"):
        engine.resume_run(source)
    resumed = engine.resume_run(source, max_steps=6, learning_rate=5e-4)
    wait_for(lambda: engine.get_run(resumed).status not in ("pending", "running"), "the resumed run", LIMIT_S)
    run = engine.get_run(resumed)
    assert run.status == "finished", run.error
    steps = {m["step"]: m for m in engine.metrics(resumed) if m["loss"] is not None}
    assert sorted(steps) == [5, 6]
    assert 0 < steps[5]["lr"] <= 5e-4, "the schedule goes on at the new peak"
    log = (engine.workspace.run_dir(resumed) / "worker.log").read_text()
    assert "learning rate: peak 5.00e-04 from here on (was 1.00e-03)" in log
    engine.close()
