"""The resume dialog: continue a checkpoint in a new run, with the settings that matter shown and editable.

It shows the run and checkpoint a resume starts from and the step it is at, and lets the user
change the run's max steps and peak learning rate. A finished run whose checkpoint is already at
its max steps says so, and Enter is refused until max steps is raised past the step (resuming it
unchanged would train nothing). Enter answers with ``ResumeChoice``; Esc cancels with None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from llamahome_tui.paths import shown_path


@dataclass(frozen=True)
class ResumeChoice:
    """What the user chose: None where a setting stays as the run had it."""

    max_steps: int | None
    learning_rate: float | None


def parse(plan: dict[str, Any], steps_text: str, rate_text: str) -> ResumeChoice | str:
    """The choice from the two fields, or a one-line reason it cannot be taken."""
    try:
        steps = int(steps_text.replace(",", "").replace("_", "").strip())
    except ValueError:
        return f"max steps: {steps_text.strip() or '(empty)'} is not a whole number"
    try:
        rate = float(rate_text.strip())
    except ValueError:
        return f"learning rate: {rate_text.strip() or '(empty)'} is not a number"
    if rate <= 0:
        return "learning rate: must be above 0"
    if steps < 0:
        return "max steps: must be 0 (train by epochs) or more"
    if 0 < steps <= plan["step"]:
        return f"max steps {steps:,} is not past the checkpoint's step {plan['step']:,}: raise it to train on"
    return ResumeChoice(None if steps == plan["max_steps"] else steps,
                        None if rate == plan.get("learning_rate") else rate)


class ResumeScreen(ModalScreen["ResumeChoice | None"]):
    """Resume from a checkpoint: its run and step, max steps and learning rate to change."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, plan: dict[str, Any]) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        """What it resumes, the two settings, a note line and the keys."""
        plan = self.plan
        steps = plan["max_steps"]
        with Vertical(classes="dialog", id="resume-dialog"):
            yield Label(f"Resume run {plan['run_id']} in a new run", classes="dialog-question")
            yield Label(Text.assemble(("from ", "dim"), shown_path(Path(plan["checkpoint"])), ("  at step ", "dim"),
                                      (f"{plan['step']:,}", "bold"),
                                      ("  of ", "dim"), f"{steps:,}" if steps else f"{plan.get('epochs')} epochs"))
            with Horizontal(classes="field"):
                yield Label("max steps", classes="field-label")
                yield Input(str(steps), id="resume-steps")
            with Horizontal(classes="field"):
                yield Label("learning rate", classes="field-label")
                yield Input(f"{plan.get('learning_rate', '')}", id="resume-rate")
            yield Static(self.note(), id="resume-note")
            yield Label("[b]enter[/b] resume    [b]tab[/b] next field    [b]esc[/b] cancel", classes="dialog-keys")

    def note(self, steps: int | None = None) -> Text:
        """What resuming with ``steps`` max steps (the run's own when None) would do."""
        plan = self.plan
        if steps is None or steps == plan["max_steps"]:
            if plan["max_steps"] and plan["step"] >= plan["max_steps"]:
                return Text(f"This run already made all its {plan['max_steps']:,} steps: raise max steps to train "
                            "on.", style="bold yellow")
            left = f"{plan['max_steps'] - plan['step']:,} steps left" if plan["max_steps"] else "the rest of its epochs"
            return Text(f"Unchanged, it trains {left}; a new learning rate is the schedule's peak from here on.",
                        style="dim")
        if 0 < steps <= plan["step"]:
            return Text(f"max steps {steps:,} is not past the checkpoint's step {plan['step']:,}: raise it to train on",
                        style="bold yellow")
        more = f"{steps - plan['step']:,} more steps (to step {steps:,})" if steps else "the rest of its epochs"
        return Text(f"With that, it trains {more}; a new learning rate is the schedule's peak from here on.",
                    style="dim")

    def on_input_changed(self, event: Input.Changed) -> None:
        """The note follows the max steps typed."""
        if event.input.id == "resume-steps":
            try:
                steps: int | None = int(event.value.replace(",", "").replace("_", "").strip())
            except ValueError:
                steps = None
            self.query_one("#resume-note", Static).update(self.note(steps))

    def on_mount(self) -> None:
        """Start in max steps."""
        self.query_one("#resume-steps", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Answer with the choice, or say why it cannot be taken."""
        event.stop()
        choice = parse(self.plan, self.query_one("#resume-steps", Input).value,
                       self.query_one("#resume-rate", Input).value)
        if isinstance(choice, str):
            self.query_one("#resume-note", Static).update(Text(choice, style="bold red"))
            return
        self.dismiss(choice)

    def action_cancel(self) -> None:
        """Answer None."""
        self.dismiss(None)
