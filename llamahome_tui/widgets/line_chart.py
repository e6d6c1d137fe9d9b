"""``LineChart``: a dense braille line chart of one or more series (btop-style), with y labels.

Each terminal cell holds 2×4 braille dots, so a 60×6 chart draws 120×24 points. Series share the x
axis (their steps: a shorter run ends earlier, eval points sit at their steps); the y range spans
every series so that two runs compare at a glance.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
"""Braille dot bits by (row within cell, column within cell)."""
LABEL_WIDTH = 7


@dataclass(frozen=True)
class Series:
    """One line: its label, colour, values and their x positions (steps; default 1, 2, 3...)."""

    label: str
    values: Sequence[float]
    color: str = "cyan"
    xs: Sequence[float] | None = None

    def points(self) -> list[tuple[float, float]]:
        """``(x, value)`` pairs in order."""
        xs = self.xs if self.xs is not None else range(1, len(self.values) + 1)
        return list(zip(xs, self.values, strict=False))


def value_at(points: Sequence[tuple[float, float]], x: float) -> float | None:
    """The series' value at ``x`` by linear interpolation; None outside its x range."""
    if not points or x < points[0][0] or x > points[-1][0]:
        return None
    index = bisect.bisect_left(points, (x, float("-inf")))
    if index == 0 or points[min(index, len(points) - 1)][0] == x:
        return points[min(index, len(points) - 1)][1]
    (x0, y0), (x1, y1) = points[index - 1], points[index]
    return y0 + (y1 - y0) * (x - x0) / ((x1 - x0) or 1)


def _plot(cells: list[list[int]], owner: list[list[str]], line: Series, low: float, span: float,
          x_range: tuple[float, float]) -> None:
    """Set the braille dots of one series, joining neighbouring dots with vertical strokes."""
    dots_h, dots_w = len(cells) * 4, len(cells[0]) * 2
    points = line.points()
    first, last = x_range
    previous: int | None = None
    for x in range(dots_w):
        value = value_at(points, first + (last - first) * x / max(dots_w - 1, 1))
        if value is None:
            previous = None
            continue
        y = int(round((1 - (value - low) / span) * (dots_h - 1)))
        top, bottom = (y, y) if previous is None else (min(y, previous), max(y, previous))
        for dot_y in range(top, bottom + 1):
            row, col = dot_y // 4, x // 2
            cells[row][col] |= _DOTS[dot_y % 4][x % 2]
            owner[row][col] = line.color
        previous = y


def render_chart(series: Sequence[Series], width: int, height: int) -> Text:
    """The chart as rich Text: ``height`` rows of y labels and braille cells."""
    plot_w = max(width - LABEL_WIDTH, 1)
    values = [v for s in series for v in s.values]
    if not values or height < 1:
        return Text("no data yet".center(width), style="dim")
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    cells = [[0] * plot_w for _ in range(height)]
    owner: list[list[str]] = [[""] * plot_w for _ in range(height)]
    xs = [x for line in series for x, _ in line.points()]
    x_range = (min(xs), max(xs)) if len(set(xs)) > 1 else (xs[0] - 1, xs[0])
    for line in series:
        if line.values:
            _plot(cells, owner, line, low, span, x_range)
    text = Text()
    for row in range(height):
        label = f"{high:.3g}" if row == 0 else f"{low:.3g}" if row == height - 1 else ""
        text.append(f"{label:>{LABEL_WIDTH - 1}} ", style="dim")
        for col in range(plot_w):
            bits = cells[row][col]
            text.append(chr(0x2800 + bits) if bits else " ", style=owner[row][col] or None)
        if row < height - 1:
            text.append("\n")
    return text


class LineChart(Widget):
    """A braille line chart; set ``series`` to redraw."""

    DEFAULT_CSS = """
    LineChart { height: 6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: list[Series] = []

    def plot(self, series: Sequence[Series]) -> None:
        """Replace the series and redraw."""
        self.series = list(series)
        self.refresh()

    def render(self) -> RenderableType:
        """Draw at the widget's current size."""
        return render_chart(self.series, self.size.width, self.size.height)
