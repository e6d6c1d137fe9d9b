"""The training screen: start a run from the chosen dataset and config, and watch it live.

One async worker follows the run with ``Engine.attach`` (history, then live events) and folds
each event into a ``RunFeed``. It posts a ``FeedChanged`` only when none is waiting, and the
screen draws at most ``MAX_DRAWS_PER_S`` times a second (the parts that changed), so a fast run
cannot flood the UI however its events interleave. Keys: n start, p pause / resume, s stop
(confirmed; the run writes a checkpoint first), c checkpoint now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import ProgressBar, RichLog, Static

from engine.api import UserError, resolve_config
from engine.events import Event
from llamahome_tui.messages import FeedChanged, RunEnded, TaskDone
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.screens.dialogs import ConfirmScreen, StartScreen
from llamahome_tui.screens.log_view import RunLogScreen
from llamahome_tui.screens.samples import SamplesScreen
from llamahome_tui.widgets.line_chart import LineChart, Series
from llamahome_tui.widgets.run_feed import NEWS, PROGRESS, RESOURCES, STAGE, RunFeed, StepClock
from llamahome_tui.widgets.run_panels import Gauges, numbers_text, progress_text, samples_text
from llamahome_tui.widgets.stage_line import stage_text

YIELD_EVERY = 100
"""Replaying history, give the event loop a turn every this many events."""
MAX_DRAWS_PER_S = 10
"""Redraws of a live feed per second at most; changes in between are drawn together."""


class TrainingScreen(ConsoleScreen):
    """Start a run and watch it: progress, loss chart, resources, log tail and samples."""

    MODE = "training"
    HELP = ("Starts a run on the dataset chosen on the Datasets screen with the config of the Config "
            "screen, and follows the run in view (runs screen: enter attaches another).")
    BINDINGS = [
        Binding("n", "start", "New run"),
        Binding("p", "pause", "Pause/resume"),
        Binding("s", "stop", "Stop"),
        Binding("c", "checkpoint", "Checkpoint"),
        Binding("l", "log", "Log"),
        Binding("S", "samples", "Samples history", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.feed: RunFeed | None = None
        self.log_shown = 0
        self.last_draw = 0.0
        self.draw_timer: Timer | None = None
        self.notices = 0
        """Change notices handled (each may stand for many events)."""
        self.redraws = 0
        """Redraws of changed parts."""
        self.step_clock = StepClock()

    def compose_body(self) -> ComposeResult:
        """Head line, progress, stage, numbers, chart and gauges, log tail and samples."""
        yield Static(id="run-head")
        with Horizontal(id="run-progress"):
            yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="progress-bar")
            yield Static(id="progress-text")
        yield Static(id="run-stage")
        yield Static(id="run-numbers")
        with Horizontal(id="charts"):
            yield LineChart(id="loss-chart")
            yield Gauges(id="gauges")
        with Horizontal(id="run-bottom"):
            yield RichLog(id="run-log", max_lines=500, wrap=True, min_width=20)
            yield Static(id="samples")

    def on_mount(self) -> None:
        """Follow the run in view, if any; the elapsed time moves every second while it is live."""
        self.on_screen_resume()
        self.set_interval(1.0, self.draw_elapsed)

    def draw_elapsed(self) -> None:
        """The progress line again (its elapsed time), while a live run is in view."""
        if self.feed is not None and not self.feed.ended and self.feed.last_step is not None:
            self.query_one("#progress-text", Static).update(self.progress_line(self.feed))

    def progress_line(self, feed: RunFeed) -> Text:
        """The step, epoch, elapsed time (going on between steps) and ETA."""
        return progress_text(feed, self.step_clock.since_step(feed, self.state.clock()))

    def on_screen_resume(self) -> None:
        """Follow the state's run when it changed while we were away."""
        run_id = self.state.run_id
        if run_id and (self.feed is None or self.feed.run_id != run_id):
            self.follow(run_id)
        self.draw()

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Start a training run", "on the chosen dataset and config", self.action_start)
        yield SystemCommand("Stop the run", "checkpoint, then stop", self.action_stop)
        yield SystemCommand("Pause or resume the run", "checkpoint and free memory / continue", self.action_pause)
        yield SystemCommand("Checkpoint now", "write a checkpoint of the run", self.action_checkpoint)
        yield SystemCommand("Show the run's samples", "every sample answer, base and fine-tuned side by side",
                            self.action_samples)
        yield SystemCommand("Show the run's log", "its lines and warnings, live, filterable", self.action_log)

    # following a run

    @work(exclusive=True, group="attach")
    async def follow(self, run_id: str) -> None:
        """Follow ``run_id`` (after the base-model build it waits for, if any) until it ends."""
        waits = self.engine.waits_for(run_id)
        if waits:
            await self.follow_one(waits)
        await self.follow_one(run_id)

    async def follow_one(self, run_id: str) -> None:
        """Fold one run's events into a new feed, posting a message for each."""
        feed = RunFeed(run_id)
        self.feed, self.log_shown, self.step_clock = feed, 0, StepClock()
        self.query_one(RichLog).clear()
        self.draw()
        count = 0
        async for stored in self.engine.attach(run_id):
            self.ingest(feed, stored.event, stored.time)
            count += 1
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        try:
            run = self.engine.get_run(run_id)
            feed.end(run.status, run.error)
        except UserError:
            feed.end("deleted")
        self.post_message(RunEnded(feed))

    def ingest(self, feed: RunFeed, event: Event, at: float | None = None) -> None:
        """Fold an event into the feed; post a change notice unless one is already waiting."""
        feed.apply(event, at)
        if feed.announce():
            self.post_message(FeedChanged(feed))

    def on_feed_changed(self, message: FeedChanged) -> None:
        """Draw what changed, or leave it to a timer when the last draw was too recent."""
        if message.feed is not self.feed:
            return
        self.notices += 1
        wait = self.last_draw + 1 / MAX_DRAWS_PER_S - time.monotonic()
        if wait <= 0:
            self.draw_changes()
        elif self.draw_timer is None:
            self.draw_timer = self.set_timer(wait, self.draw_changes)

    def draw_changes(self) -> None:
        """Redraw the parts of the feed that changed since the last draw."""
        self.draw_timer = None
        if self.feed is None:
            return
        changes = self.feed.take_changes()
        self.last_draw, self.redraws = time.monotonic(), self.redraws + 1
        if NEWS in changes:
            self.query_one("#run-head", Static).update(self.head_text())
            self.draw_log()
            self.query_one("#samples", Static).update(samples_text(self.feed))
        if PROGRESS in changes or NEWS in changes:
            self.draw_progress()
        if STAGE in changes or NEWS in changes:  # news may end a queue's wait (the head read the status)
            self.query_one("#run-stage", Static).update(stage_text(self.feed))
        if RESOURCES in changes:
            self.query_one(Gauges).show(self.feed)

    def on_run_ended(self, message: RunEnded) -> None:
        """The run is over: final redraw with its status."""
        if message.feed is self.feed:
            self.draw()

    # drawing

    def draw(self) -> None:
        """Redraw every panel from the feed."""
        if self.draw_timer is not None:
            self.draw_timer.stop()
            self.draw_timer = None
        if self.feed is not None:
            self.feed.take_changes()
        self.query_one("#run-head", Static).update(self.head_text())
        self.draw_progress()
        self.query_one("#run-stage", Static).update(stage_text(self.feed))
        self.draw_log()
        self.query_one(Gauges).show(self.feed)
        self.query_one("#samples", Static).update(samples_text(self.feed))

    def head_text(self) -> Text:
        """Which run (and its status), or what a new run would use."""
        feed = self.feed
        data = self.state.dataset.name if self.state.dataset else "none (1: Datasets)"
        if feed is None:
            return Text.assemble(("No run in view. ", "bold"), f"data: {data}  config: ",
                                 (self.state.config_file.name, ""), "  n: start")
        try:
            run = self.engine.get_run(feed.run_id)
            status, dataset = run.status, Path(run.dataset_path).name or "-"
        except UserError:
            status, dataset, run = "deleted", "-", None
        # the stage line says what a queued run waits for (the status is read here, with each news)
        feed.queued_behind = tuple(run.config.get("job", {}).get("queue_after", [])) \
            if run is not None and status == "queued" else ()
        return Text.assemble(("run ", "dim"), (feed.run_id, "bold"), f"  {feed.kind or '…'}  ",
                             (status, "bold green" if status == "running" else "bold"), f"  data: {dataset}")

    def draw_progress(self) -> None:
        """Progress bar, step/epoch/ETA, metric numbers and the loss chart."""
        feed = self.feed
        bar = self.query_one(ProgressBar)
        if feed is None or feed.last_step is None:
            bar.update(total=1, progress=0)  # an empty bar: the indeterminate one animates
        else:
            bar.update(total=feed.total_steps or None, progress=max(feed.last_step.step, feed.reached))
        self.query_one("#progress-text", Static).update(self.progress_line(feed) if feed else "")
        self.query_one("#run-numbers", Static).update(numbers_text(feed) if feed else "")
        series = [] if feed is None else [Series("train", feed.losses, "cyan", feed.steps),
                                          Series("eval", feed.eval_losses, "magenta", feed.eval_steps, markers=True)]
        self.query_one(LineChart).plot([s for s in series if s.values])

    def draw_log(self) -> None:
        """The log tail: the lines the widget has not shown yet."""
        feed = self.feed
        if feed is None or feed.log_count == self.log_shown:
            return
        new = min(feed.log_count - self.log_shown, len(feed.log))
        log = self.query_one(RichLog)
        for line in list(feed.log)[-new:]:
            log.write(Text(line))
        self.log_shown = feed.log_count

    # actions

    def action_start(self) -> None:
        """Start a run on the chosen dataset with the current config."""
        if self.state.dataset is None:
            self.notify("choose a dataset first (1: Datasets, enter on a file)", severity="warning")
            return
        data, eval_data = self.state.dataset, self.state.eval_data
        live = [run.id for run in self.engine.live_runs()]
        if not live:
            self.start_now(data, eval_data)
            return

        def answer(choice: str | None) -> None:
            if choice in ("beside", "queue"):
                self.start_now(data, eval_data, live if choice == "queue" else [])

        self.app.push_screen(StartScreen(live, data.name), answer)

    def start_now(self, data: Path, eval_data: Path | None, queue_after: list[str] | None = None) -> None:
        """Start the run (queued after ``queue_after`` when given), saying so."""
        self.notify(f"{'queueing' if queue_after else 'starting'} a run on {data.name}…")
        if self.state.config_edits:
            self.notify(f"{len(self.state.config_edits)} unsaved config edit(s) are not used: the run reads "
                        "the saved file (2: Config, ctrl+s saves)", severity="warning", timeout=8)
        self.start_run(data, eval_data, queue_after or [])

    @work(thread=True, exclusive=True, group="start")
    def start_run(self, data: Path, eval_data: Path | None, queue_after: list[str] | None = None) -> None:
        """Check the config and data and start the worker (off the UI thread)."""
        try:
            config_file = self.state.config_file if self.state.config_file.is_file() else None
            config = resolve_config(str(config_file) if config_file else None, list(self.state.overrides))
            run_id = self.engine.start_training(data, config, eval_data=eval_data, queue_after=queue_after or ())
        except UserError as exc:
            self.post_message(TaskDone("start", error=str(exc)))
            return
        self.post_message(TaskDone("start", result=run_id))

    def on_task_done(self, message: TaskDone) -> None:
        """A run started (follow it) or could not start (say why)."""
        if message.error:
            self.notify(message.error, title="cannot start", severity="error", timeout=10)
            return
        if message.task == "start":
            self.state.run_id = str(message.result)
            self.state.watched.add(self.state.run_id)
            self.follow(self.state.run_id)

    def live_run(self) -> str | None:
        """The run in view when it is still going, else None (with a note)."""
        if self.feed is None or self.feed.ended:
            self.notify("no live run in view", severity="warning")
            return None
        return self.feed.run_id

    def action_pause(self) -> None:
        """Pause the run (checkpoint, free memory) or resume it."""
        run_id = self.live_run()
        if run_id is None:
            return
        try:
            paused = self.engine.get_run(run_id).status == "paused"
            (self.engine.resume if paused else self.engine.pause)(run_id)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"run {run_id}: {'resuming' if paused else 'pausing (checkpoint first)'}")
        self.asked("resume" if paused else "pause")

    def action_stop(self) -> None:
        """Stop the run after a confirmation; it writes a checkpoint first."""
        run_id = self.live_run()
        if run_id is None:
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.engine.stop(run_id)
                self.notify(f"stopping run {run_id}: at the end of its step, with a checkpoint")
                self.asked("stop")

        self.app.push_screen(ConfirmScreen(f"Stop run {run_id}? It writes a checkpoint first."), answer)

    def asked(self, what: str) -> None:
        """The stage line says ``what`` was asked until the run does it."""
        if self.feed is not None:
            self.feed.ask(what)
            self.draw_changes()

    def action_checkpoint(self) -> None:
        """Ask the run to write a checkpoint now."""
        run_id = self.live_run()
        if run_id is None:
            return
        try:
            self.engine.checkpoint_now(run_id)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"run {run_id}: checkpoint requested")

    def action_log(self) -> None:
        """Open the log view of the run in view."""
        run_id = self.feed.run_id if self.feed else self.state.run_id
        if run_id is None:
            self.notify("no run in view", severity="warning")
            return
        self.app.push_screen(RunLogScreen(run_id, self.MODE))

    def action_samples(self) -> None:
        """Open the samples history of the run in view."""
        run_id = self.feed.run_id if self.feed else self.state.run_id
        if run_id is None:
            self.notify("no run in view", severity="warning")
            return
        self.app.push_screen(SamplesScreen(run_id, self.MODE))
