"""Terminal views of analysis results (rich renderables built from Text, never markup).

Every result object here prints itself (``__rich_console__``) and serialises itself
(``to_json``), so commands only choose where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit import paths
from perfkit.analysis.top import ThreadRow, TopRow
from perfkit.console import plain
from perfkit.names import thread_label
from perfkit.render.fit import Cell, Col, FitTable, FrameCell
from perfkit.units import fmt_value

_fmt_value = fmt_value
SAME = "(same)"


def frame_cell(function: str, file: str, line: int = 0, style: str = "") -> FrameCell:
    return FrameCell(function, paths.location(file, line), style)


@dataclass
class TopTable:
    """Top functions (or lines) by self value, with the user's own code that leads to each.

    ``yours`` maps a row's (function, file[, line]) to the innermost frame of the user's
    code that most of its self value comes through (``analysis.yourcode``)."""

    rows: list[TopRow]
    unit: str = "count"
    title: str = "Top functions by self time"
    value_label: str = "samples"
    yours: dict | None = None
    by_line: bool = False

    def key(self, r: TopRow) -> tuple:
        return (r.function, r.file, r.line) if self.by_line else (r.function, r.file)

    def table(self) -> FitTable:
        cols = [Col("self %", "right"), Col("total %", "right"), Col(self.value_label, "right"),
                Col("function" if not self.by_line else "line", flex=True, min_width=16, weight=3)]
        if self.yours is not None:
            cols.append(Col("your code", flex=True, min_width=16, weight=2, style="dim", below="↳ your code ",
                            below_skip=SAME))
        t = FitTable(cols, title=self.title, empty="(no samples)")
        for r in self.rows:
            cells: list[Cell] = [f"{r.self_pct:5.1f}", f"{r.total_pct:5.1f}", _fmt_value(r.self_value, self.unit),
                                 frame_cell(r.function, r.file, r.line)]
            if self.yours is not None:
                cells.append(your_cell(self.yours.get(self.key(r)), r.function, r.file, r.line, self.by_line))
            t.add_row(*cells)
        return t

    def __rich_console__(self, console, options):
        yield from self.table().lines(options.max_width)

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.rows]


def your_cell(found, function: str, file: str, line: int, exact_line: bool = True):
    """The "your code" cell: the user frame, ``(same)`` when the row is the user's own code."""
    if paths.is_user(file, function):
        return SAME
    if not found or found[0] is None:
        return "— (library only)"
    f, share = found
    cell = frame_cell(f.function, f.file, f.line)
    if share < 0.995:
        cell = FrameCell(cell.function, f"{cell.where} ({share * 100:.0f}%)")
    return cell


@dataclass
class ThreadTable:
    rows: list[ThreadRow]
    unit: str = "count"
    os_names: dict | None = None  # (pid, tid) -> OS thread name; pid -> process name under (pid, None)

    def table(self) -> FitTable:
        several = len({r.pid for r in self.rows}) > 1
        t = FitTable([Col("%", "right"), Col("value", "right"), Col("pid", "right"), Col("tid", "right"),
                      Col("thread", flex=True, min_width=12)], title="By thread")
        names = self.os_names or {}
        for r in self.rows:
            label = thread_label(r.thread, names.get((r.pid, r.tid)), tid=r.tid,
                                 process_name=names.get((r.pid, None)))
            t.add_row(f"{r.pct:5.1f}", _fmt_value(r.value, self.unit), str(r.pid or ""), str(r.tid or ""), label)
        if several:
            t.title = f"By thread ({len({r.pid for r in self.rows})} processes)"
        return t

    def __rich_console__(self, console, options):
        yield from self.table().lines(options.max_width)

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.rows]


@dataclass
class QualityLine:
    """One-line summary of how good a CPU recording is."""

    samples: int
    duration_s: float
    requested_rate: int
    achieved_rate: float
    errors: int | None
    threads: int
    processes: int
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        pct = 100.0 * self.achieved_rate / self.requested_rate if self.requested_rate else 0.0
        err = "?" if self.errors is None else str(self.errors)
        line = (f"{self.samples:,} samples in {self.duration_s:.1f} s · rate {self.achieved_rate:.0f}/s of "
                f"{self.requested_rate}/s requested ({pct:.0f}%) · {err} sampling errors · "
                f"{self.threads} thread{'s' if self.threads != 1 else ''} in {self.processes} "
                f"process{'es' if self.processes != 1 else ''}")
        if self.notes:
            line += " · " + " · ".join(self.notes)
        return line

    def __rich_console__(self, console, options):
        from rich.text import Text

        yield Text(plain(self.text()), style="dim")

    def to_json(self) -> dict:
        return {"samples": self.samples, "duration_s": self.duration_s, "requested_rate": self.requested_rate,
                "achieved_rate": self.achieved_rate, "sampling_errors": self.errors, "threads": self.threads,
                "processes": self.processes, "notes": self.notes}
