"""The Try it screen's dialogs: pick a model to chat with, and change the generation settings.

Both answer with ``ModalScreen.dismiss(value)``; Esc cancels with None.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from engine.api import ChatModel, GenerationSettings, UserError

KIND_NAMES = {"final": "final model", "checkpoint": "checkpoint", "export": "export"}


def shown_path(path: str, root: Path) -> str:
    """A path relative to the workspace when it is inside it, else as it is."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def model_option(model: ChatModel, root: Path) -> Option:
    """One line of the list: the run, what it is, and where (inside the run's folder, or in full).

    An export written into a training run's folder is listed under that run (the export job's
    own id means nothing to the user), so its path is short too.
    """
    runs = root / "runs"
    try:
        inside = Path(model.path).relative_to(runs).parts
    except ValueError:
        inside = ()
    owner = inside[0] if model.kind == "export" and len(inside) > 1 else model.run_id
    text = Text()
    text.append(f"{owner}  ", style="bold")
    text.append(f"{KIND_NAMES.get(model.kind, model.kind):<13}", style="cyan")
    text.append(shown_path(model.path, runs / owner))
    return Option(text, id=model.path)


class ModelPickScreen(ModalScreen["str | None"]):
    """Pick a run's final model, a checkpoint or an export from the history, or type a folder or run id."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, models: Sequence[ChatModel], root: Path) -> None:
        super().__init__()
        self.models, self.root = list(models), root

    def compose(self) -> ComposeResult:
        """The list of models on disk, the path input and the keys."""
        with Vertical(classes="dialog chat-pick"):
            yield Label("Try which model?", classes="dialog-question")
            if self.models:
                yield OptionList(*(model_option(m, self.root) for m in self.models), id="pick-list")
            else:
                yield Label("No final model, checkpoint or export in the run history yet.", classes="muted")
            yield Input(placeholder="or type a folder or a run id, then enter", id="pick-path")
            yield Label("[b]enter[/b] try it   [b]tab[/b] list / path   [b]esc[/b] cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        """Focus the list when there is one, else the path input."""
        self.query_one("#pick-list" if self.models else "#pick-path").focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Answer with the chosen model's folder."""
        event.stop()
        self.dismiss(event.option.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Answer with what was typed (None when empty)."""
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Answer None."""
        self.dismiss(None)


SETTING_LABELS = {"max_new_tokens": "max new tokens", "temperature": "temperature (0: greedy)", "top_p": "top-p"}


class ChatSettingsScreen(ModalScreen["GenerationSettings | None"]):
    """Change max new tokens, temperature and top-p; Enter checks and keeps them, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, settings: GenerationSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        """One labelled input a setting, an error line and the keys."""
        values = self.settings.as_dict()
        with Vertical(classes="dialog"):
            yield Label("Generation settings", classes="dialog-question")
            for key, label in SETTING_LABELS.items():
                with Horizontal(classes="setting-row"):
                    yield Label(label, classes="setting-label")
                    yield Input(f"{values[key]:g}" if isinstance(values[key], float) else str(values[key]),
                                id=f"setting-{key}", classes="setting-input")
            yield Label("", id="settings-error", classes="error")
            yield Label("[b]enter[/b] keep   [b]tab[/b] next   [b]esc[/b] cancel", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Check every value; keep them all, or say what is wrong with the first bad one."""
        event.stop()
        settings = self.settings
        try:
            for key in SETTING_LABELS:
                settings = settings.with_value(key, self.query_one(f"#setting-{key}", Input).value)
        except UserError as exc:
            self.query_one("#settings-error", Label).update(str(exc))
            return
        self.dismiss(settings)

    def action_cancel(self) -> None:
        """Answer None."""
        self.dismiss(None)
