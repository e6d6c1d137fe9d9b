"""Using the terminal: charts with axes, legend and eval points; columns that widen; the too-small notice; gauges."""

from __future__ import annotations

import math

from history import fake_run
from screen_text import line_with, screen_lines

from llamahome_tui.screens.config import ConfigScreen
from llamahome_tui.widgets import run_panels
from llamahome_tui.widgets.filter_table import FilterTable
from llamahome_tui.widgets.line_chart import LineChart, Series, nice_step, render_chart
from llamahome_tui.widgets.run_feed import RunFeed
from llamahome_tui.widgets.run_panels import SystemSample, gauges_text


def losses(steps: int) -> Series:
    xs = list(range(1, steps + 1))
    return Series("train", [3 * math.exp(-s / 25) + 0.5 for s in xs], "cyan", xs)


def test_the_chart_has_a_legend_step_labels_and_eval_markers():
    evals = Series("eval", [2.5, 1.5, 1.0], "magenta", [20, 40, 60], markers=True)
    rows = render_chart([losses(60), evals], 60, 10).plain.splitlines()
    assert len(rows) == 10
    assert "━ train" in rows[0] and "• eval 1" in rows[0], "legend: each series, its mark and last value"
    assert rows[-1].split()[0] == "step" and rows[-1].split()[-3:] == ["20", "40", "60"]
    assert sum(row.count("•") for row in rows[1:-1]) == 3, "one marker per evaluation"


def test_step_labels_are_round_numbers_and_the_last_step_shows():
    rows = render_chart([losses(57)], 100, 6).plain.splitlines()
    labels = rows[-1].split()[1:]
    assert labels[-1] == "57" and "10" in labels and "50" in labels
    assert nice_step(57, 6) == 10 and nice_step(20000, 2) == 10000 and nice_step(3, 8) == 1


def test_the_chart_is_as_tall_as_it_is_given():
    for height in (6, 20, 35):
        assert len(render_chart([losses(30)], 50, height).plain.splitlines()) == height


async def test_charts_grow_with_the_terminal(make_app, engine):
    run_id = fake_run(engine, "20260101-000000-aaaa", 60, 3.0)
    heights = []
    for size in ((80, 24), (120, 40)):
        app = make_app("training", run_id=run_id)
        async with app.run_test(size=size) as pilot:
            await pilot.app.workers.wait_for_complete()
            await pilot.pause(0.3)
            chart = app.screen.query_one(LineChart)
            heights.append(chart.size.height)
            assert "━ train" in line_with(app, "• eval"), "the legend is drawn"
            assert "step" in line_with(app, " 60")
    assert heights[0] >= 9 and heights[1] >= heights[0] + 8, heights


async def test_the_runs_time_column_shows_whole_at_80_columns(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 60, 3.0, data="/a/rather/long/folder/name/of/the/dataset_file.jsonl")
    app = make_app("runs")
    async with app.run_test(size=(80, 24)):
        header = line_with(app, "best eval")
        assert header.rstrip().endswith("time")
        assert line_with(app, "20260101-000000-aaaa").rstrip().endswith("1:00")
        assert "…" in line_with(app, "20260101-000000-aaaa"), "the dataset column gives way"
    app = make_app("runs")
    async with app.run_test(size=(120, 40)):
        assert "dataset_file.jsonl" in line_with(app, "20260101-000000-aaaa"), "and widens when there is room"


async def test_the_config_value_column_uses_a_wide_terminal(make_app, workspace):
    path = "/a/long/path/to/a/model/folder/saved/with/save_pretrained"
    (workspace.root / "config.toml").write_text(f'[model]\npath = "{path}"\n')
    for size, whole in (((80, 24), False), ((120, 40), True)):
        app = make_app("config")
        async with app.run_test(size=size):
            assert isinstance(app.screen, ConfigScreen)
            row = line_with(app, "model.path")
            assert (path in row) is whole, row
            assert len(row.rstrip()) <= size[0]


async def test_below_80x24_a_notice_says_so_instead_of_a_cut_layout(make_app):
    app = make_app("runs")
    async with app.run_test(size=(60, 20)) as pilot:
        text = "\n".join(screen_lines(app))
        assert "Terminal too small: 60×20" in text and "needs 80×24" in text
        assert "Runs" not in line_with(app, "too small") and "Quit" not in text
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "too small" not in "\n".join(screen_lines(app))
        assert "5 Runs" in line_with(app, "Datasets")
        await pilot.resize_terminal(100, 23)
        await pilot.pause()
        assert "Terminal too small: 100×23" in "\n".join(screen_lines(app))


async def test_keys_still_work_behind_the_notice(make_app):
    app = make_app("runs")
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.press("1")
        assert app.current_mode == "datasets"
        assert "too small" in "\n".join(screen_lines(app))


def sample() -> SystemSample:
    return SystemSample((10.0, 50.0, 95.0, 0.0), 3 * 2**30, 8 * 2**30, 60 * 2**30, 100 * 2**30)


def test_gauges_show_the_machine_beside_the_run(monkeypatch):
    from engine.events import Resources, Step

    monkeypatch.setattr(run_panels, "_cores", lambda: 4)
    monkeypatch.setattr(run_panels, "total_memory_mb", lambda: 8192.0)
    feed = RunFeed("r1")
    feed.apply(Step(1, 10, 0.1, 2.0, 1e-3, 1.0, 100.0, 1.0))
    feed.apply(Resources(101.0, 512.0, None, None))
    text = gauges_text(feed, sample(), 30).plain
    assert "1.0 cores" in text and "512M" in text, "the run's own, CPU in cores (not 101 % of a half bar)"
    assert "39% ×4" in text and "3.0G/8.0G" in text and "40.0G free" in text, "the machine's"
    cores = next(line for line in text.splitlines() if line.startswith("cores"))
    bars = cores.split()[1]
    assert len(bars) == 4 and bars[2] == "█" and bars[3] == "▁" and bars[0] < bars[1], "a bar per core"
    assert "GPU" not in text, "no GPU lines without a GPU"


def test_the_runs_gauges_clear_when_it_ends():
    from engine.events import Finished, Resources

    feed = RunFeed("r1")
    feed.apply(Resources(101.0, 512.0, None, None))
    feed.apply(Finished({}))
    text = gauges_text(feed, sample(), 30).plain
    assert "cores" not in text.split("machine")[0] and "run: ended" in text
    assert "machine" in text and "free" in text, "the machine's stay"


async def test_elastic_columns_re_share_the_width_on_resize(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 5, 3.0, data="/x/a_dataset_with_a_rather_long_file_name_indeed.jsonl")
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(FilterTable)
        narrow = table._widths[table.elastic]
        await pilot.resize_terminal(130, 30)
        await pilot.pause()
        assert table._widths[table.elastic] > narrow
