"""The samples history (``S``): every sample answer of a run by step and prompt, base and fine-tuned side by side.

A run answers ``eval.sample_prompts`` every ``eval.sample_steps`` steps, and a fresh run answers
them once with the base model before its first step. The table lists every answer, newest step
first (``/`` filters it); below it, the highlighted answer beside the base model's answer to the
same prompt. Answers of the runs a resumed run continues are included. A live run's new answers
come in every two seconds. Esc clears a filter first, then goes back.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from engine.api import LIVE_STATUSES, UserError
from engine.events import Generation
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.widgets.filter_table import FilterTable

REFRESH_S = 2.0
NO_SAMPLES = ("No sample answers in this run. Set eval.sample_prompts (the prompts) and eval.sample_steps "
              "(how often) on the Config screen; a new run answers them with the base model first, then "
              "as it trains.")


def one_line(text: str, width: int = 60) -> str:
    """A text on one line, cut to ``width`` characters."""
    flat = " ⏎ ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def answer_panel(title: str, answer: Generation | None, missing: str) -> Text:
    """A titled answer (or a dim note when there is none)."""
    text = Text(title + "\n", style="bold")
    if answer is None:
        return text.append(missing, style="dim")
    return text.append(answer.text.strip() or "(empty answer)")


class SamplesScreen(ConsoleScreen):
    """A run's sample answers by step and prompt; the highlighted one beside the base model's."""

    HELP = ("Every sample answer of the run, newest step first; below, the highlighted answer beside the base "
            "model's answer to the same prompt. / filters.")
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self, run_id: str, mode: str) -> None:
        super().__init__()
        self.MODE = mode
        self.run_id = run_id
        self.answers: dict[str, Generation] = {}
        self.base: dict[str, Generation] = {}

    def compose_body(self) -> ComposeResult:
        """Head, the answers, the prompt and the two answers side by side."""
        yield Static(id="samples-head")
        yield FilterTable("step", "prompt", "answer", id="samples-table")
        yield Static(id="samples-prompt")
        with Horizontal(id="samples-compare"):
            yield Static(id="samples-base")
            yield Static(id="samples-tuned")

    def on_mount(self) -> None:
        """Read the answers; keep reading while the run is live."""
        self.query_one(FilterTable).focus()
        if self.refresh_answers():
            self.set_interval(REFRESH_S, self.refresh_answers)

    def refresh_answers(self) -> bool:
        """Read the run's answers again (a live run's grow); returns whether the run is live."""
        try:
            run = self.engine.get_run(self.run_id)
            answers = self.engine.samples(self.run_id)
        except UserError as exc:
            self.query_one("#samples-head", Static).update(Text(str(exc), style="red"))
            return False
        self.base = {a.prompt: a for a in answers if a.base}
        tuned = [a for a in answers if not a.base]
        self.answers = {f"{a.step}:{i}": a for i, a in enumerate(tuned)}
        rows = [(key, (f"{a.step:,}", one_line(a.prompt, 30), one_line(a.text)))
                for key, a in reversed(self.answers.items())]
        self.query_one(FilterTable).set_rows(rows)
        live = run.status in LIVE_STATUSES
        head = Text.assemble(("Samples of run ", "dim"), (run.id, "bold"), "  ",
                             (run.status, "bold green" if live else "dim"),
                             f"  {len(tuned)} answer{'s' if len(tuned) != 1 else ''}")
        if self.base:
            head.append(f"  base answers: {len(self.base)}", style="dim")
        self.query_one("#samples-head", Static).update(head)
        self.draw_detail()
        return live

    def on_data_table_row_highlighted(self) -> None:
        """Show the highlighted answer beside the base one."""
        self.draw_detail()

    def draw_detail(self) -> None:
        """The prompt, then base and fine-tuned answers side by side."""
        key = self.query_one(FilterTable).selected_key
        answer = self.answers.get(key) if key else None
        prompt, tuned, base = self.query_one("#samples-prompt", Static), self.query_one("#samples-tuned", Static), \
            self.query_one("#samples-base", Static)
        if answer is None:
            prompt.update(Text(NO_SAMPLES if not self.answers else "", style="dim"))
            tuned.update("")
            base.update("")
            return
        prompt.update(Text.assemble(("> ", "bold green"), answer.prompt.strip()))
        base.update(answer_panel("Base model", self.base.get(answer.prompt),
                                 "no base answer recorded (a resumed run, or one from before base answers)"))
        tuned.update(answer_panel(f"Step {answer.step:,}", answer, ""))

    def action_back(self) -> None:
        """Esc: clear the filter first; go back when there is none."""
        if self.clear_filter():
            self.query_one(FilterTable).focus()
            return
        self.app.pop_screen()
