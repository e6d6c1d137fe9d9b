"""``LineChart``: a dense braille line chart of one or more series (btop-style), with axes and a legend.

Each terminal cell holds 2×4 braille dots, so a 60×6 plot draws 120×24 points. Series share the x
axis (their steps: a shorter run ends earlier); the y range spans every series so that two runs
compare at a glance. A series drawn as markers (evaluations) puts a ``•`` at each of its points
instead of a line. Around the plot: a legend on top (each series' name, colour and last value),
y labels on the left (top, middle, bottom) and step labels under it. The chart fills its
widget, so it grows with the terminal.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
"""Braille dot bits by (row within cell, column within cell)."""
LABEL_WIDTH = 7
MARKER = "•"
TICK_SPACING = 14
"""Columns between two step labels, at least."""


@dataclass(frozen=True)
class Series:
    """One line: its label, colour, values and their x positions (steps; default 1, 2, 3...)."""

    label: str
    values: Sequence[float]
    color: str = "cyan"
    xs: Sequence[float] | None = None
    markers: bool = False
    """Draw a marker at each point (evaluations) instead of a line."""

    def ends(self) -> tuple[float, float]:
        """The first and last x (steps ascend), without building the points."""
        xs = self.xs if self.xs is not None else range(1, len(self.values) + 1)
        count = min(len(xs), len(self.values))
        return xs[0], xs[count - 1]

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


@dataclass(frozen=True)
class Frame:
    """Where values land: the plot's size in cells and the value and x ranges it spans."""

    rows: int
    cols: int
    low: float
    span: float
    first: float
    last: float

    def dot_y(self, value: float) -> int:
        """The dot row of a value (0 at the top)."""
        return int(round((1 - (value - self.low) / self.span) * (self.rows * 4 - 1)))

    def dot_x(self, x: float) -> int:
        """The dot column of an x position."""
        return int(round((x - self.first) / ((self.last - self.first) or 1) * (self.cols * 2 - 1)))

    def x_of(self, dot_x: int) -> float:
        """The x position of a dot column."""
        return self.first + (self.last - self.first) * dot_x / max(self.cols * 2 - 1, 1)


def _plot(cells: list[list[int]], owner: list[list[str]], line: Series, frame: Frame) -> None:
    """Set the braille dots of one series, joining neighbouring dots with vertical strokes."""
    points = line.points()
    previous: int | None = None
    for x in range(frame.cols * 2):
        value = value_at(points, frame.x_of(x))
        if value is None:
            previous = None
            continue
        y = frame.dot_y(value)
        top, bottom = (y, y) if previous is None else (min(y, previous), max(y, previous))
        for dot_y in range(top, bottom + 1):
            row, col = dot_y // 4, x // 2
            cells[row][col] |= _DOTS[dot_y % 4][x % 2]
            owner[row][col] = line.color
        previous = y


def _mark(marks: dict[tuple[int, int], str], line: Series, frame: Frame) -> None:
    """A marker in the cell of each point of a series."""
    for x, value in line.points():
        marks[(frame.dot_y(value) // 4, min(frame.dot_x(x) // 2, frame.cols - 1))] = line.color


def _number(value: float) -> str:
    """A step label: ``950``, ``12k``, ``1.2M``."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:.3g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 or abs(value) >= 100 else f"{value:.3g}"


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2 or 5 × 10^k) giving about ``count`` intervals over ``span``; at least 1."""
    raw = max(span / max(count, 1), 1.0)
    scale = 10 ** math.floor(math.log10(raw))
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= raw)


def x_axis(frame: Frame) -> Text:
    """``   step 0     20     40    57``: round step labels under the plot, the last step at the right end."""
    line = [" "] * frame.cols
    last_col = frame.cols - 1

    def put(label: str, col: int) -> None:
        start = min(max(col - len(label) // 2, 0), max(frame.cols - len(label), 0))
        if all(c == " " for c in line[max(start - 1, 0):start + len(label) + 1]):
            line[start:start + len(label)] = label

    put(_number(frame.last), last_col + 1)  # the newest step first: it always shows
    step = nice_step(frame.last - frame.first, max(frame.cols // TICK_SPACING, 1))
    tick = math.ceil(frame.first / step) * step
    while tick <= frame.last:
        put(_number(tick), min(frame.dot_x(tick) // 2, last_col))
        tick += step
    return Text(f"{'step':>{LABEL_WIDTH - 1}} " + "".join(line), style="dim")


def legend(series: Sequence[Series]) -> Text:
    """``━ train 1.234  • eval 1.301``: each series' mark, name and last value, in its colour."""
    text = Text(" " * LABEL_WIDTH)
    for line in series:
        last = f" {line.values[-1]:.4g}" if line.values else ""
        text.append(f"{MARKER if line.markers else '━'} ", style=f"bold {line.color}")
        text.append(f"{line.label}{last}  ", style=line.color)
    return text


def render_chart(series: Sequence[Series], width: int, height: int, *, with_legend: bool = True) -> Text:
    """The chart as rich Text: legend, ``height`` - 2 rows of y labels and braille cells, step labels."""
    values = [v for s in series for v in s.values]
    if not values or height < 1:
        return Text("no data yet".center(width), style="dim")
    top = [legend(series)] if with_legend and height >= 4 else []
    bottom = height >= 3
    ends = [x for line in series if line.values for x in line.ends()]
    first, last = min(ends), max(ends)  # each series' steps ascend: its ends bound them
    low, high = min(values), max(values)
    frame = Frame(rows=max(height - len(top) - bottom, 1), cols=max(width - LABEL_WIDTH, 1), low=low,
                  span=(high - low) or 1.0, first=first if last > first else first - 1, last=last)
    cells = [[0] * frame.cols for _ in range(frame.rows)]
    owner: list[list[str]] = [[""] * frame.cols for _ in range(frame.rows)]
    marks: dict[tuple[int, int], str] = {}
    for line in series:
        if line.values and line.markers:
            _mark(marks, line, frame)
        elif line.values:
            _plot(cells, owner, line, frame)
    rows = [*top, *(_plot_row(cells, owner, marks, frame, row) for row in range(frame.rows))]
    if bottom:
        rows.append(x_axis(frame))
    return Text("\n").join(rows)


def _plot_row(cells: list[list[int]], owner: list[list[str]], marks: dict[tuple[int, int], str], frame: Frame,
              row: int) -> Text:
    """One row of the plot with its y label (top, middle and bottom rows are labelled)."""
    high = frame.low + frame.span
    label = (f"{high:.3g}" if row == 0 else f"{frame.low:.3g}" if row == frame.rows - 1
             else f"{frame.low + frame.span / 2:.3g}" if frame.rows >= 5 and row == frame.rows // 2 else "")
    text = Text(f"{label:>{LABEL_WIDTH - 1}} ", style="dim")
    for col in range(frame.cols):
        if (row, col) in marks:
            text.append(MARKER, style=f"bold {marks[(row, col)]}")
            continue
        bits = cells[row][col]
        text.append(chr(0x2800 + bits) if bits else " ", style=owner[row][col] or None)
    return text


class LineChart(Widget):
    """A braille line chart filling the widget; ``plot`` new series to redraw."""

    DEFAULT_CSS = """
    LineChart { height: 6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None, with_legend: bool = True) -> None:
        super().__init__(id=id, classes=classes)
        self.series: list[Series] = []
        self.with_legend = with_legend

    def plot(self, series: Sequence[Series]) -> None:
        """Replace the series and redraw."""
        self.series = list(series)
        self.refresh()

    def render(self) -> RenderableType:
        """Draw at the widget's current size."""
        return render_chart(self.series, self.size.width, self.size.height, with_legend=self.with_legend)
