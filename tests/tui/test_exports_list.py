"""The exports list on the checkpoints screen: where a run's checkpoints were exported or merged, full
paths, ``y`` copies one."""

from __future__ import annotations

from history import fake_run

from llamahome_tui.widgets.filter_table import FilterTable

RUN = "20260101-000000-aaaa"


def exported_run(engine) -> tuple[str, str]:
    """A run with a merge done by an export run and an adapter folder written by ``train-export``."""
    fake_run(engine, RUN, 20, 3.0)
    run_dir = engine.workspace.run_dir(RUN)
    merged = run_dir / "exports" / "step-000020-merged"
    merged.mkdir(parents=True)
    store = engine.store
    job = {"job": {"target": str(run_dir / "checkpoints" / "step-000020"), "merge": True}}
    store.create_run("20260101-000200-xport", "export", job, "m", "", output_dir=str(merged))
    store.update_run("20260101-000200-xport", status="finished",
                     final_metrics={"kind": "merged", "output": str(merged)})
    adapter = run_dir / "exports" / "step-000010-adapter"
    adapter.mkdir(parents=True)
    return str(merged), str(adapter)


async def test_exports_are_listed_with_paths_to_copy(make_app, engine):
    merged, adapter = exported_run(engine)
    fake_run(engine, "20260101-000100-bbbb", 10, 2.0)  # another run, no exports
    app = make_app("checkpoints", run_id=RUN)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        table = app.screen.query_one("#ckpt-exports", FilterTable)
        assert table.display
        rows = {table.get_row_at(i)[3]: table.get_row_at(i)[:3] for i in range(table.row_count)}
        shown = f"ws/runs/{RUN}/exports"  # relative to the current folder (the test's)
        assert rows == {f"{shown}/step-000020-merged": ["merged", "step-000020", "finished"],
                        f"{shown}/step-000010-adapter": ["adapter", "step-000010", "on disk"]}
        table.focus()
        table.move_cursor(row=table.keys.index(adapter))
        await pilot.press("y")
        assert app.clipboard == adapter, "the full path is copied"
        runs = app.screen.query_one("#ckpt-runs", FilterTable)
        runs.move_cursor(row=runs.keys.index("20260101-000100-bbbb"))
        await pilot.pause(0.1)
        assert not table.display, "a run without exports shows no list"


def test_an_export_whose_folder_is_gone_says_missing(engine):
    merged, _ = exported_run(engine)
    import shutil

    shutil.rmtree(merged)
    status = {e["path"]: e["status"] for e in engine.exports(RUN)}
    assert status[merged] == "missing"


async def test_at_80_columns_the_path_keeps_its_end(make_app, engine, monkeypatch):
    """The folder name (``-merged`` / ``-adapter``) is what tells two exports apart: a narrow
    terminal cuts a path's start, not its end, and the table does not scroll sideways."""
    monkeypatch.chdir("/")  # paths shown whole: longer than 80 columns leave them
    merged, adapter = exported_run(engine)
    app = make_app("checkpoints", run_id=RUN)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        table = app.screen.query_one("#ckpt-exports", FilterTable)
        paths = [str(table.get_row_at(i)[3]) for i in range(table.row_count)]
        assert sorted(p.rsplit("/", 1)[-1] for p in paths) == ["step-000010-adapter", "step-000020-merged"], paths
        assert all(p.startswith("…") for p in paths), paths
        assert table.virtual_size.width <= table.size.width
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("y")
        assert app.clipboard in (merged, adapter), "y still copies the whole path"
