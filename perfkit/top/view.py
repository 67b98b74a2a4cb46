"""One frame of ``perfkit top``: a rich renderable for the live screen, plain text for
snapshots when stdout is not a terminal, and JSON.

Names from the target (functions, files, threads, the command line) only ever enter
``rich.text.Text`` through :func:`perfkit.console.plain` — never markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit.console import plain
from perfkit.paths import short_path
from perfkit.top.window import Row, ThreadShare, WindowStats
from perfkit.units import human_bytes, sparkline

KEYS_HELP = "q quit · 1/2 sort own/total · l lines · t threads · T next thread · space pause · r reset"
_SPARK = 16


@dataclass
class TopFrame:
    who: str  # "pid 4242 (python app.py)"
    stats: WindowStats
    rows: list[Row]
    threads: list[ThreadShare]
    cpu: float | None  # cores, /proc, over the window
    rss: int | None
    nthreads: int | None
    cpu_trend: list[float] = field(default_factory=list)
    rss_trend: list[float] = field(default_factory=list)
    threads_trend: list[float] = field(default_factory=list)
    sort: str = "own"
    by_line: bool = False
    show_threads: bool = True
    thread: ThreadShare | None = None  # the one thread shown, or None for all
    paused: bool = False
    pyspy_cpu: float | None = None  # py-spy's own cores over the window
    notes: list[str] = field(default_factory=list)
    clock: str = ""

    # ------------------------------------------------------------------ text
    def header(self) -> list[str]:
        s = self.stats
        gil = sum(t.gil for t in self.threads if t.gil is not None) if s.gil_ticks else None
        active = sum(t.active for t in self.threads) if s.ticks else None
        first = f"perfkit top · {self.who}" + (f" · {self.clock}" if self.clock else "")
        parts = []
        parts.append(f"CPU {_cores(self.cpu)} {sparkline(self.cpu_trend, _SPARK)}".rstrip())
        parts.append(f"RSS {human_bytes(self.rss) if self.rss is not None else '?'} "
                     f"{sparkline(self.rss_trend, _SPARK)}".rstrip())
        parts.append(f"threads {self.nthreads if self.nthreads is not None else '?'} "
                     f"{sparkline(self.threads_trend, _SPARK)}".rstrip())
        if gil is not None:
            parts.append(f"GIL {100 * gil:.0f}%")
        if active is not None:
            parts.append(f"active {100 * active:.0f}%")
        second = "  ".join(parts)
        pct = 100.0 * s.achieved_rate / s.rate if s.rate else 0.0
        third = (f"{s.samples:,} samples in {s.span_s:.1f} s · rate {s.achieved_rate:.0f}/{s.rate} Hz ({pct:.0f}%) · "
                 f"{s.errors} errors")
        if self.pyspy_cpu is not None:
            third += f" · py-spy {100 * self.pyspy_cpu:.1f}% CPU"
        if self.paused:
            third += " · PAUSED"
        lines = [first, second, third]
        view = "lines" if self.by_line else "functions"
        which = f"thread {self.thread.tid} {self.thread.name or ''}".rstrip() if self.thread else "all threads"
        lines.append(f"{view} by {'own' if self.sort == 'own' else 'total'} share of CPU (idle-corrected) · {which}")
        if s.lag:
            lines.append(f"py-spy: {s.lag}")
        if s.failure:
            lines.append(f"py-spy: {s.failure}")
        lines.extend(self.notes)
        return lines

    def text(self, max_rows: int = 20) -> str:
        """Plain text (a snapshot when stdout is not a terminal): no colour, no control characters."""
        out = [plain(line) for line in self.header()]
        out.append("")
        out.append(f"{'own %':>6} {'total %':>7} {'own s':>7} {'total s':>7}  function (file:line)")
        for r in self.rows[:max_rows]:
            out.append(f"{100 * r.own:6.1f} {100 * r.total:7.1f} {r.own_s:7.2f} {r.total_s:7.2f}  "
                       f"{plain(r.function)} ({plain(_where(r))})")
        if not self.rows:
            out.append("  (no samples yet: the target is idle, or py-spy is starting)")
        if self.show_threads and self.threads:
            out.append("")
            out.append(f"{'tid':>8} {'CPU':>6} {'active':>7} {'GIL':>6} {'weight':>6}  thread")
            for t in self.threads[:max_rows]:
                out.append(f"{t.tid or '':>8} {_pct(t.cpu):>6} {_pct(t.active):>7} {_pct(t.gil):>6} "
                           f"{t.weight:6.2f}  {plain(t.name or '')}")
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ rich
    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        height = options.max_height or console.height or 40
        head = self.header()
        for i, line in enumerate(head):
            yield Text(plain(line), style="bold cyan" if i == 0 else ("dim" if i == 2 else ""))
        thread_rows = min(len(self.threads), 8) if self.show_threads else 0
        room = max(3, height - len(head) - 4 - (thread_rows + 3 if thread_rows else 0))
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="reverse")
        for name, col in (("own %", "own"), ("total %", "total"), ("own s", None), ("total s", None)):
            style = "bold reverse" if col == self.sort else None
            table.add_column(name, justify="right", header_style=style)
        table.add_column("function", overflow="ellipsis", no_wrap=True)
        table.add_column("file:line", overflow="ellipsis", no_wrap=True)
        for r in self.rows[:room]:
            hot = "yellow" if r.own >= 0.1 else ""  # colour is only a hint: NO_COLOR drops it
            table.add_row(Text(f"{100 * r.own:5.1f}", style=hot), f"{100 * r.total:5.1f}", f"{r.own_s:6.2f}",
                          f"{r.total_s:6.2f}", Text(plain(r.function), style=hot), Text(plain(_where(r))))
        yield Text("")
        yield table
        if not self.rows:
            yield Text("(no samples yet: the target is idle, or py-spy is starting)", style="dim")
        if thread_rows:
            tt = Table(show_edge=False, pad_edge=False, box=None, header_style="reverse")
            for name in ("tid", "CPU", "active", "GIL", "weight"):
                tt.add_column(name, justify="right")
            tt.add_column("thread", overflow="ellipsis", no_wrap=True)
            for t in self.threads[:thread_rows]:
                tt.add_row(str(t.tid or ""), _pct(t.cpu), _pct(t.active), _pct(t.gil), f"{t.weight:.2f}",
                           Text(plain(t.name or "")))
            yield Text("")
            yield tt
        yield Text("")
        yield Text(KEYS_HELP, style="dim")

    def to_json(self) -> dict:
        return {"who": self.who, "stats": self.stats.to_json(), "cpu": self.cpu, "rss": self.rss,
                "threads_count": self.nthreads, "cpu_trend": self.cpu_trend, "rss_trend": self.rss_trend,
                "threads_trend": self.threads_trend,
                "sort": self.sort, "by_line": self.by_line, "thread": self.thread.tid if self.thread else None,
                "rows": [r.to_json() for r in self.rows], "threads": [t.to_json() for t in self.threads],
                "pyspy_cpu": self.pyspy_cpu, "notes": self.notes}


def _where(r: Row) -> str:
    return f"{short_path(r.file)}:{r.line}" if r.file else ""


def _cores(v: float | None) -> str:
    return "?" if v is None else f"{100 * v:.0f}%"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"
