"""Keeping the user's place across restarts: the chosen data and the run in view, in a small file.

``PlaceFile`` is ``console.json`` in the workspace (private like everything there), written
atomically (a temporary file renamed over it) whenever what it holds changes, so a console closed
any way (quit, a closed terminal, a killed process) starts again where it was. A missing, damaged
or foreign file is ignored: the console starts fresh. What it names is checked on the way back:
a data file that is gone, or a run deleted since, is left out.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llamahome_tui.screens.base import ConsoleState

PLACE_FILE = "console.json"
VERSION = 1


@dataclass(frozen=True)
class Place:
    """What is remembered: the training data, the evaluation data and the run in view."""

    dataset: str | None = None
    eval_data: str | None = None
    run_id: str | None = None

    @classmethod
    def of(cls, state: ConsoleState) -> Place:
        """The place a console state is at."""
        return cls(str(state.dataset) if state.dataset else None,
                   str(state.eval_data) if state.eval_data else None, state.run_id)


class PlaceFile:
    """``console.json`` in a workspace: read once at start, written when the place changes."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / PLACE_FILE
        self.saved: Place | None = None

    def load(self) -> Place:
        """The remembered place (an empty one when there is no readable file)."""
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Place()
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return Place()
        fields = {k: data.get(k) if isinstance(data.get(k), str) else None for k in ("dataset", "eval_data", "run_id")}
        self.saved = Place(**fields)
        return self.saved

    def save(self, place: Place) -> bool:
        """Write ``place`` if it differs from what was last written; True when written.

        Atomic: a crash mid-write leaves the old file. A workspace that cannot be written (full
        disk, read-only) is not an error here: the place is simply not remembered.
        """
        if place == self.saved:
            return False
        data = {"version": VERSION, "dataset": place.dataset, "eval_data": place.eval_data, "run_id": place.run_id}
        try:
            handle, tmp = tempfile.mkstemp(prefix=".console-", suffix=".json", dir=self.path.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
                    json.dump(data, out)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return False
        self.saved = place
        return True


def restore(state: ConsoleState, place: Place, run_exists: Any) -> None:
    """Put a remembered place back into ``state`` where the command line left it open.

    ``run_exists(run_id)`` tells whether the run is still in the history.
    """
    if state.dataset is None and place.dataset and Path(place.dataset).is_file():
        state.dataset = Path(place.dataset)
    if state.eval_data is None and place.eval_data and Path(place.eval_data).is_file():
        state.eval_data = Path(place.eval_data)
    if state.run_id is None and place.run_id and run_exists(place.run_id):
        state.run_id = place.run_id
