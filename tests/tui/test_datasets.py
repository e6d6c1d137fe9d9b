"""The datasets screen: issues and the offending record in its file, versions, duplicates, the footer."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_chat
from history import fake_run
from screen_text import line_with, screen_lines
from textual.widgets import Static

from llamahome_tui.screens.datasets import DatasetsScreen
from llamahome_tui.screens.record import RecordScreen
from llamahome_tui.widgets.dataset_versions import DatasetVersions
from llamahome_tui.widgets.filter_table import FilterTable


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def settle(pilot) -> None:
    await pilot.pause(0.3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_issue_table_and_enter_shows_the_record_in_its_file(make_app, data_dir):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        report = text_of(screen, "#report-text")
        assert "✗ 1 invalid" in report and "3 of 4 records usable" in report and "bad_json 1" in report
        issues = screen.query_one("#data-issues", FilterTable)
        assert issues.display and issues.keys == ["0"]
        assert "data/broken.jsonl:3" in line_with(app, "bad_json: invalid JSON")
        await pilot.press("tab")
        assert app.focused is issues
        await pilot.press("enter")
        record = app.screen
        assert isinstance(record, RecordScreen)
        lines = screen_lines(app)
        offending = line_with(app, "▶3 ")
        assert '{"messages": [{"role": "user", "content": "hi"}' in offending
        assert any(" 2 {" in row and "What is 1 + 1?" in row for row in lines), "the line above is missing"
        assert any(" 4 {" in row and "What is 3 + 3?" in row for row in lines), "the line below is missing"
        await pilot.press("escape")
        assert isinstance(app.screen, DatasetsScreen)
        await pilot.press("shift+tab", "r")
        assert isinstance(app.screen, RecordScreen), "r from the file table shows the first issue"
        await pilot.press("escape")
        await pilot.press("down")
        await settle(pilot)
        assert not screen.query_one("#data-issues", FilterTable).display
        assert "✓ valid" in text_of(screen, "#report-text")
        await pilot.press("enter")
        assert app.state.dataset == data_dir / "chat.jsonl"


async def test_a_bad_record_of_a_json_array_shows_that_record(make_app, data_dir):
    records = [{"messages": [{"role": "user", "content": "ok?"}, {"role": "assistant", "content": "ok"}]},
               {"messages": [{"role": "user", "content": "no answer here"}]}]
    (data_dir / "array.json").write_text(json.dumps(records))
    (data_dir / "broken.jsonl").unlink()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#data-files", FilterTable).selected_key == "data/array.json"
        await pilot.press("r")
        assert isinstance(app.screen, RecordScreen)
        assert "record 2" in line_with(app, "data/array.json")
        assert "no answer here" in line_with(app, '"content"')


async def test_versions_in_the_report_and_the_v_panel_with_the_runs_that_used_them(make_app, engine, data_dir):
    chat = str((data_dir / "chat.jsonl").resolve())
    run_id = fake_run(engine, "20260101-000000-aaaa", 10, 3.0, data=chat)
    engine.store.add_dataset_version("f1a2b3c4d5e6f7", chat, 12, 74)
    engine.store.link_run_dataset(run_id, "f1a2b3c4d5e6f7")
    engine.store.link_run_dataset("20251231-000000-gone", "f1a2b3c4d5e6f7")  # a deleted run
    assert [v["runs"] for v in engine.datasets(data_dir / "chat.jsonl")] == [[run_id]]
    app = make_app()
    async with app.run_test(size=(80, 40)) as pilot:
        await pilot.press("down")
        await settle(pilot)
        report = text_of(app.screen, "#report-text")
        assert "Versions" in report and "f1a2b3c4d5" in report and "12 samples" in report and "aaaa" in report
        await pilot.press("v")
        panel = app.screen.query_one(DatasetVersions)
        assert panel.display and not app.screen.query_one("#data-report").display
        assert panel.query_one(FilterTable).keys == ["f1a2b3c4d5e6f7"]
        runs_line = text_of(app.screen, "#versions-runs")
        assert run_id in runs_line and "gone" not in runs_line
        assert "chat.jsonl" in line_with(app, "f1a2b3c4d5")
        await pilot.press("escape")
        assert app.current_mode == "datasets" and not panel.display
        assert app.screen.query_one("#data-report").display


async def test_duplicates_are_a_warning_when_kept_and_invalid_when_dropped(make_app, workspace, data_dir):
    write_chat(data_dir / "chat.jsonl", 6)
    lines = (data_dir / "chat.jsonl").read_text().splitlines()
    (data_dir / "chat.jsonl").write_text("\n".join(lines + lines[:2]) + "\n")
    (data_dir / "broken.jsonl").unlink()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        report = text_of(app.screen, "#report-text")
        assert "✓ valid" in report and "8 of 8 records usable" in report
        assert '⚠ 2 duplicates (kept: data.duplicates = "keep")  r: the first' in report and "invalid" not in report
        assert not app.screen.query_one("#data-issues", FilterTable).display
        await pilot.press("r")
        assert isinstance(app.screen, RecordScreen)
        assert "What is 0 + 0?" in line_with(app, "▶7 ")
    (workspace.root / "config.toml").write_text('[data]\nduplicates = "drop"\n')
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        report = text_of(app.screen, "#report-text")
        assert "✗ 2 invalid" in report and "6 of 8 records usable" in report and "duplicate 2" in report
        assert app.screen.query_one("#data-issues", FilterTable).display


async def test_footer_lists_enter_and_fits_80_columns(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        footer = screen_lines(app)[-1]
        assert "⏎ Train" in footer and "v Versions" in footer and footer.rstrip().endswith("q Quit")
        await pilot.press("question_mark")
        assert ("⏎", "Train") in app.screen.keys


async def test_the_names_shown_are_paths_that_open_the_files(make_app, data_dir, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the data folder is not under the current one: absolute paths
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        names = app.screen.query_one("#data-files", FilterTable).keys
        assert sorted(names) == [str(data_dir / "broken.jsonl"), str(data_dir / "chat.jsonl")]
    monkeypatch.chdir(tmp_path)
    assert [Path(name).is_file() for name in ("data/broken.jsonl", "data/chat.jsonl")] == [True, True]


async def test_files_users_have_are_listed_and_a_folder_opens(make_app, data_dir, tmp_path):
    import gzip

    import datasets

    records = [json.loads(line) for line in (data_dir / "chat.jsonl").read_text().splitlines()]
    with gzip.open(data_dir / "more.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    datasets.Dataset.from_list(records).save_to_disk(str(data_dir / "saved"))  # a folder, its shard inside
    (data_dir / "model.tar.gz").write_bytes(b"not data")
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.jsonl").write_text((data_dir / "chat.jsonl").read_text())
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        names = app.screen.query_one("#data-files", FilterTable).keys
        assert sorted(Path(n).name for n in names) == ["broken.jsonl", "chat.jsonl", "more.jsonl.gz", "saved"]
        await pilot.press("o", *str(folder), "enter")
        await settle(pilot)
        table = app.screen.query_one("#data-files", FilterTable)
        assert Path(table.selected_key).resolve() == folder.resolve()
        assert f"{len(records)} records" in text_of(app.screen, "#report-text")


def test_a_record_of_a_compressed_file_shows_as_text(tmp_path):
    import gzip

    from llamahome_tui.widgets.data_report import record_context

    path = tmp_path / "chat.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write('{"a": 1}\n{"b": 2}\n{"c": 3}\n')
    assert record_context(f"{path}:2", radius=1) == [(1, '{"a": 1}', False), (2, '{"b": 2}', True),
                                                      (3, '{"c": 3}', False)]


def test_model_folders_and_the_workspace_state_are_not_listed_as_data(tmp_path):
    from llamahome_tui.screens.datasets import data_files

    data, ws = tmp_path / "data", tmp_path / "ws"
    model = data / "base" / "tiny"
    model.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        (model / name).write_text("{}")
    write_chat(data / "chat.jsonl", 2)
    ws.mkdir()
    (ws / "llamahome.db").write_text("")
    (ws / "console.json").write_text("{}")
    (ws / "mine.json").write_text("[]")
    listed = [path.relative_to(tmp_path).as_posix() for path, _ in data_files([data, ws])]
    assert listed == ["data/chat.jsonl", "ws/mine.json"]


async def test_the_chosen_dataset_is_highlighted_at_start(make_app, data_dir):
    app = make_app(dataset=data_dir / "chat.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#data-files", FilterTable).selected_key == "data/chat.jsonl"
        assert "✓ valid" in text_of(app.screen, "#report-text")
