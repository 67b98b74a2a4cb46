"""Terminal views of analysis results (rich renderables built from Text, never markup).

Every result object here prints itself (``__rich_console__``) and serialises itself
(``to_json``), so commands only choose where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit.analysis.top import ThreadRow, TopRow
from perfkit.console import plain
from perfkit.paths import short_path
from perfkit.units import fmt_value


_fmt_value = fmt_value




@dataclass
class TopTable:
    rows: list[TopRow]
    unit: str = "count"
    title: str = "Top functions by self time"
    value_label: str = "samples"

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.title, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("self %", justify="right")
        table.add_column("total %", justify="right")
        table.add_column(self.value_label, justify="right")
        table.add_column("function", overflow="fold")
        table.add_column("file:line", overflow="fold")
        for r in self.rows:
            table.add_row(f"{r.self_pct:5.1f}", f"{r.total_pct:5.1f}", _fmt_value(r.self_value, self.unit),
                          Text(plain(r.function)), Text(plain(short_path(r.file) + (f":{r.line}" if r.file else ""))))
        yield table

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.rows]


@dataclass
class ThreadTable:
    rows: list[ThreadRow]
    unit: str = "count"

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        table = Table(title="By thread", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("%", justify="right")
        table.add_column("value", justify="right")
        table.add_column("pid", justify="right")
        table.add_column("tid", justify="right")
        table.add_column("thread", overflow="fold")
        for r in self.rows:
            table.add_row(f"{r.pct:5.1f}", _fmt_value(r.value, self.unit), str(r.pid or ""), str(r.tid or ""),
                          Text(plain(r.thread or "")))
        yield table

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
