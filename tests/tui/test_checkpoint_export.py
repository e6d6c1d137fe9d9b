"""Exporting and merging a checkpoint from the checkpoints screen, through Engine.export_checkpoint."""

from __future__ import annotations

import json

from history import fake_run
from textual.widgets import Input, Static

from engine.events import Finished, Log, Started
from llamahome_tui.screens.dialogs import PromptScreen


def adapter_checkpoint(folder, base) -> None:
    """Make a checkpoint folder look like a LoRA adapter over a local base model."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (base / "tokenizer.json").write_text("{}")
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))


def fake_worker(engine, started: list):
    """``Engine.start_run`` without a process: the run is recorded and ends as an export job would."""
    def start_run(kind, config, model, dataset_path="", output_dir="", resumed_from=None, fingerprint=""):
        run_id = f"20260101-000200-x{len(started)}"
        started.append((kind, config["job"], output_dir))
        store = engine.store
        store.create_run(run_id, kind, config, model, dataset_path, fingerprint, output_dir)
        kind_done = "merged" if config["job"]["merge"] else "adapter"
        store.add_event(run_id, Started(run_id, kind, 0, model, ""))
        store.add_event(run_id, Log("info", f"exported {kind_done} to {output_dir}"))
        store.add_event(run_id, Finished({"output": output_dir, "kind": kind_done}))
        store.update_run(run_id, status="finished", final_metrics={"output": output_dir, "kind": kind_done})
        return run_id
    return start_run


def status(app) -> str:
    return str(app.screen.query_one("#ckpt-status", Static).render())


async def test_merge_starts_an_export_job_and_shows_its_result(make_app, engine, tmp_path, monkeypatch):
    run_id = fake_run(engine, "20260101-000000-aaaa", 30, 3.0)
    folder = engine.workspace.run_dir(run_id) / "checkpoints" / "step-000030"
    adapter_checkpoint(folder, tmp_path / "base")
    started: list = []
    monkeypatch.setattr(engine, "start_run", fake_worker(engine, started))
    app = make_app("checkpoints", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#ckpt-table")
        table.focus()
        table.move_cursor(row=2)
        await pilot.press("M")
        prompt = app.screen
        assert isinstance(prompt, PromptScreen)
        default = engine.workspace.run_dir(run_id) / "exports" / "step-000030-merged"
        assert prompt.query_one(Input).value == str(default)
        out = tmp_path / "merged-out"
        prompt.query_one(Input).value = str(out)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        assert started == [("export", {"target": str(folder.resolve()), "merge": True}, str(out))]
        assert "finished: merged in " + str(out) in status(app)
        assert app.state.watched == {"20260101-000200-x0"}


async def test_export_of_a_folder_that_is_no_adapter_says_why(make_app, engine, monkeypatch):
    run_id = fake_run(engine, "20260101-000000-aaaa", 10, 3.0)
    started: list = []
    monkeypatch.setattr(engine, "start_run", fake_worker(engine, started))
    app = make_app("checkpoints", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#ckpt-table").focus()
        await pilot.press("x")
        assert isinstance(app.screen, PromptScreen)
        assert app.screen.query_one(Input).value.endswith("exports/step-000010-model")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        assert started == []
        assert "export failed" in status(app) and "not a checkpoint, adapter or model folder" in status(app)
