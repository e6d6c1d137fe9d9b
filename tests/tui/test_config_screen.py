"""The config screen: model-family overrides, resetting a key, unsaved edits on quit/leave, 80x24."""

from __future__ import annotations

from screen_text import line_with
from textual.widgets import Input, Label, Static

from engine.config import load_config
from llamahome_tui.screens.config import ConfigScreen
from llamahome_tui.screens.dialogs import ConfirmScreen
from llamahome_tui.widgets.config_form import ValueEditor
from llamahome_tui.widgets.filter_table import FilterTable


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_family_overrides_are_shown_edited_saved_and_reset(make_app, workspace):
    config_file = workspace.root / "config.toml"
    config_file.write_text("# mine\n[lora]\nr = 32\n")
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConfigScreen)
        table = screen.query_one(FilterTable)
        await pilot.press("f")
        assert "[model_configs.llama] overrides" in text_of(screen, "#config-presets")
        await pilot.press("slash", *"lora.r", "enter")
        assert table.keys == ["model_configs.llama.lora.r"]
        assert screen.text_of("model_configs.llama.lora.r") == ""
        assert "base value: 32" in text_of(screen, "#config-help")
        await pilot.press("enter")
        editor = app.screen
        assert isinstance(editor, ValueEditor)
        assert editor.query_one(Input).value == "32", "an unset override starts from the base value"
        editor.query_one(Input).value = "8"
        await pilot.press("enter")
        assert screen.edits == {"model_configs.llama.lora.r": "8"}
        await pilot.pause()
        assert "changed" in line_with(app, "lora.r ")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.edits == {} and "override" in line_with(app, "lora.r ")
        assert load_config(config_file, env={}, family="llama").lora.r == 8
        assert load_config(config_file, env={}).lora.r == 32, "the plain key is untouched"
        assert "# mine" in config_file.read_text()
        await pilot.press("delete", "ctrl+s")
        await pilot.pause()
        assert "model_configs" not in config_file.read_text()
        assert load_config(config_file, env={}, family="llama").lora.r == 32
        await pilot.press("f")
        assert table.keys == ["lora.r"] and screen.text_of("lora.r") == "32"


async def test_quitting_with_unsaved_edits_asks_and_leaving_says_so(make_app, workspace):
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        assert app.state.config_edits and app.screen.edits is app.state.config_edits
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, ConfigScreen) and app.return_code is None
        await pilot.press("3")
        assert app.current_mode == "training"
        assert any("unsaved config edit" in str(n.message) for n in app._notifications)
        await pilot.press("2", "ctrl+s", "q")
        await pilot.pause()
    assert app.return_code == 0
    assert 'method = "lora"' in (workspace.root / "config.toml").read_text()


async def test_long_values_are_cut_so_the_changed_marker_shows_at_80_columns(make_app):
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("slash", *"target_modules", "enter", "enter")
        editor = app.screen
        assert isinstance(editor, ValueEditor)
        editor.query_one(Input).value = "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head"
        await pilot.press("enter")
        assert "lm_head" in screen.edits["lora.target_modules"]
        await pilot.pause(0.3)
        row = line_with(app, "lora.target_modules")
        assert "…" in row and row.rstrip().endswith("changed"), row


async def test_data_sources_read_as_toml_tables_and_edit_back_unchanged(make_app, workspace):
    config_file = workspace.root / "config.toml"
    config_file.write_text('[[data.sources]]\npath = "chat.jsonl"\nweight = 3\n\n'
                           '[[data.sources]]\npath = "more.csv"\nformat = "csv"\nname = "extra"\n')
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("slash", *"sources", "enter")
        assert screen.text_of("data.sources") == ('[{path = "chat.jsonl", weight = 3.0, name = "chat"}, '
                                                  '{path = "more.csv", weight = 1.0, format = "csv", name = "extra"}]')
        await pilot.press("enter")
        editor = app.screen
        assert isinstance(editor, ValueEditor)
        editor.query_one(Input).value = editor.query_one(Input).value.replace("3.0", "2.5")  # checked live
        await pilot.pause()
        assert str(editor.query_one("#value-error", Label).render()) == ""
        await pilot.press("enter")
        assert app.screen is screen and "data.sources" in screen.edits
        await pilot.press("ctrl+s")
        await pilot.pause()
    sources = load_config(config_file, env={}).data.sources
    assert [(s.path, s.weight, s.format, s.name) for s in sources] == [("chat.jsonl", 2.5, "", "chat"),
                                                                       ("more.csv", 1.0, "csv", "extra")]
    assert "[[data.sources]]" in config_file.read_text()


async def test_a_help_text_with_toml_tables_shows_as_written(make_app):
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("slash", *"data.sources", "enter")
        await pilot.pause()
        assert '[{path="a.jsonl", weight=3}, {path="b.jsonl"}]' in text_of(app.screen, "#config-help")
