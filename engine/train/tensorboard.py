"""TensorBoard event files of a run (``logging.tensorboard = true``), written beside its checkpoints.

``TensorBoardLog`` watches the run's events: Step and Eval become scalars, Generation becomes
text. It needs the ``tensorboard`` package; without it the run fails at start with one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.events import Eval, Generation, Step
from engine.metrics import eval_values, step_values


class TensorBoardLog:
    """Writes a run's metrics as TensorBoard scalars into ``folder``."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("logging.tensorboard = true: needs the tensorboard package "
                              "(pip install tensorboard)") from None
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.writer = SummaryWriter(log_dir=str(folder))

    def observe(self, event: Any) -> None:
        """Record an event when it carries metrics."""
        if isinstance(event, Step):
            self._scalars("train", step_values(event), event.step)
        elif isinstance(event, Eval):
            self._scalars("eval", {**eval_values(event), "perplexity": event.perplexity}, event.step)
        elif isinstance(event, Generation):
            self.writer.add_text("samples", f"**{event.prompt}**\n\n{event.text}", event.step)

    def _scalars(self, group: str, values: dict[str, Any], step: int) -> None:
        """One scalar per metric, tagged ``group/name`` (names from ``engine.metrics``)."""
        for name, value in values.items():
            if value is not None:
                self.writer.add_scalar(f"{group}/{name}", value, step)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


def with_tensorboard(emit: Callable[[Any], None], log: TensorBoardLog) -> Callable[[Any], None]:
    """An emit function that also feeds ``log``."""
    def both(event: Any) -> None:
        emit(event)
        log.observe(event)
    return both
