"""A resumed run writes only into its own folder; the workspace stays private; nothing stale is left.

One finished run, then a run resumed from its middle checkpoint, both through real workers
started with a permissive umask (022): the source run's files must be byte-identical before and
after, the history must list exactly the checkpoints on disk, the worker's log must hold the
run's lines, and no file or folder in the workspace may be open to group or others.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
import torch
from test_engine_control import LIMIT_S, tiny_config, wait_for

from engine.api import Engine
from engine.workspace import Workspace

TOTAL_STEPS = 6


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder``: relative path -> sha256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tiny_model_dir, chat_files, tmp_path_factory):
    """A finished run and a run resumed from its step-4 checkpoint, made under umask 022."""
    old_mask = os.umask(0o022)
    try:
        workspace = Workspace(tmp_path_factory.mktemp("own") / "ws")
        engine = Engine(workspace)
        os.umask(0o022)  # as if the user's own umask came back: the workers must not depend on it
        config = tiny_config(tiny_model_dir, f"training.max_steps={TOTAL_STEPS}", "checkpoint.save_steps=2",
                             "checkpoint.keep_last_n=2")
        source = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
        wait_for(lambda: engine.get_run(source).status not in ("pending", "running"), "the source run", LIMIT_S)
        before = _snapshot(workspace.run_dir(source))
        resumed = engine.resume_run(str(workspace.run_dir(source) / "checkpoints" / "step-000004"))
        wait_for(lambda: engine.get_run(resumed).status not in ("pending", "running"), "the resumed run", LIMIT_S)
        yield {"engine": engine, "workspace": workspace, "source": source, "resumed": resumed, "before": before}
        engine.close()
    finally:
        os.umask(old_mask)


def test_the_resumed_run_leaves_the_source_runs_files_byte_identical(runs):
    engine, workspace = runs["engine"], runs["workspace"]
    source, resumed = engine.get_run(runs["source"]), engine.get_run(runs["resumed"])
    assert (source.status, resumed.status) == ("finished", "finished"), resumed.error
    assert _snapshot(workspace.run_dir(source.id)) == runs["before"]
    assert resumed.output_dir == str(workspace.run_dir(resumed.id))
    assert [c.step for c in engine.checkpoints(resumed.id)] == [TOTAL_STEPS]
    assert (Path(resumed.output_dir) / "final" / "adapter_model.safetensors").is_file()
    losses = {run: {m["step"]: m["loss"] for m in engine.metrics(run) if m["loss"] is not None}
              for run in (source.id, resumed.id)}
    assert sorted(losses[resumed.id]) == [5, 6]
    torch.testing.assert_close(torch.tensor([losses[resumed.id][s] for s in (5, 6)]),
                               torch.tensor([losses[source.id][s] for s in (5, 6)]))


def test_the_history_lists_exactly_the_checkpoints_on_disk(runs):
    engine, workspace = runs["engine"], runs["workspace"]
    on_disk = sorted(p.name for p in (workspace.run_dir(runs["source"]) / "checkpoints").iterdir())
    assert on_disk == ["step-000004", "step-000006"]
    assert [Path(c.path).name for c in engine.store.checkpoints(runs["source"])] == on_disk


def test_worker_log_holds_the_runs_lines(runs):
    log = (runs["workspace"].run_dir(runs["source"]) / "worker.log").read_text()
    assert "training" in log and "parameters" in log
    assert "info: checkpoint step 6" in log and "step: step 6/6  loss" in log and "info: finished" in log
    for stage in ("tokenizing 0/", "loading model", "training", "evaluating", "saving checkpoint step-000006",
                  "saving the final model"):
        assert f"stage: {stage}" in log, stage
    assert "%|" not in log and "\r" not in log, "one line per event, no progress bars"


def test_the_console_log_view_holds_the_lines_of_worker_log(runs):
    """The log view words the stored events as the worker words them into worker.log, in the same order."""
    from engine.log_lines import EventLines

    engine, run_id = runs["engine"], runs["source"]
    words, view = EventLines(), []
    for stored in engine.store.events(run_id, limit=100_000):
        line = words.line(stored.event, stored.time)
        if line is not None:
            view.append(f"{line.level}: {line.text}")
    log = [row.split(" ", 2)[2] for row in
           (runs["workspace"].run_dir(run_id) / "worker.log").read_text().splitlines() if row[:2] == "20"]
    assert len(view) > 20 and view == [row for row in log if row in set(view)]


def test_nothing_in_the_workspace_is_open_to_other_users(runs):
    root = runs["workspace"].root
    open_to_others = [f"{p.relative_to(root)} {stat.filemode(p.stat().st_mode)}"
                      for p in [root, *root.rglob("*")] if p.stat().st_mode & 0o077]
    assert open_to_others == []
    assert not list(root.rglob(".space-reserve")), "the worker gives its reserved space back"
