"""Terminal view of a thread snapshot: stack groups, then one row per thread.

Built from rich ``Text`` objects only; every name and path from the target goes
through :func:`perfkit.console.plain` (no markup is ever interpreted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit import paths, units
from perfkit.console import plain
from perfkit.render.fit import Col, FitTable, FrameCell
from perfkit.threads.view import StackGroup, ThreadInfo, is_library

sparkline = units.sparkline


@dataclass
class ThreadsView:
    pid: int
    threads: list[ThreadInfo]
    groups: list[StackGroup]
    depth: int = 8
    errors: list[str] = field(default_factory=list)
    trend: list[int] = field(default_factory=list)  # thread counts over time (--watch)
    show_locals: bool = False
    max_rows: int | None = None  # table rows; idle threads beyond it are folded into one line

    def rows(self) -> tuple[list[ThreadInfo], list[ThreadInfo]]:
        """The table's rows (most CPU first) and the idle threads folded beyond ``max_rows``.

        A running thread or the GIL holder is never folded; every folded thread is in a
        stack group, which lists them all.
        """
        rows = sorted(self.threads, key=lambda t: (-(t.cpu_pct or 0.0), t.pid, t.tid or 0))
        if not self.max_rows or len(rows) <= self.max_rows:
            return rows, []
        shown = rows[:self.max_rows]
        folded: list[ThreadInfo] = []
        for t in rows[self.max_rows:]:
            (shown if t.active or t.owns_gil else folded).append(t)
        return shown, folded

    def __rich_console__(self, console, options):
        from rich.text import Text

        n = len(self.threads)
        running = sum(1 for t in self.threads if t.active)
        gil = [t for t in self.threads if t.owns_gil]
        pids = sorted({t.pid for t in self.threads})
        head = Text(f"pid {self.pid}: {n} thread{'s' if n != 1 else ''}", style="bold")
        if len(pids) > 1:
            head.append(f" in {len(pids)} processes")
        head.append(f" · {running} running · {n - running} idle")
        several = len(pids) > 1
        head.append(" · GIL held by " + (", ".join(plain(t.name) + (f" (pid {t.pid})" if several else "")
                                                   for t in gil) if gil else "nobody"))
        if self.trend:
            head.append(f" · count {sparkline(self.trend)} {self.trend[0]}→{self.trend[-1]}")
        yield head
        for g in self.groups:
            line = Text("\n")
            line.append(plain(g.summary()), style="bold cyan")
            extras = []
            if g.running:
                extras.append(f"{g.running} running")
            if g.cpu_pct:
                extras.append(f"CPU {g.cpu_pct:.1f}%")
            names = ", ".join(plain(t.name) for t in g.threads[:6]) + (", …" if g.count > 6 else "")
            extras.append(names)
            line.append("  (" + " · ".join(extras) + ")", style="dim")
            yield line
            shown = g.frames[:self.depth]
            for f in shown:
                cell = FrameCell(plain(f.get("name") or "?"),
                                 plain(paths.location(f.get("filename") or "", f.get("line") or 0)))
                text = cell.fit(max(20, options.max_width - 6))
                name, _, where = text.partition(" ")
                fl = Text("    ", no_wrap=True, overflow="ellipsis")
                fl.append(name, style="green")
                fl.append(f"  {where}", style="dim")
                yield fl
                if self.show_locals and g.count == 1 and f.get("locals"):
                    for var in f["locals"]:
                        yield Text(f"        {plain(var.get('name'))} = {plain(var.get('repr'))[:200]}")
            if len(g.frames) > self.depth:
                yield Text(f"    … {len(g.frames) - self.depth} outer frames", style="dim")
        table = FitTable([Col("pid", "right"), Col("tid", "right"), Col("name", flex=True, min_width=10, weight=1),
                          Col("state"), Col("GIL"), Col("CPU %", "right"),
                          Col("where", flex=True, min_width=16, weight=3),
                          Col("your code", flex=True, min_width=16, weight=2, style="dim", below="↳ your code ")],
                         title="Threads")
        rows, folded = self.rows()

        def cell(f: dict) -> FrameCell:
            return FrameCell(f.get("name") or "?", paths.location(f.get("filename") or "", f.get("line") or 0))

        for t in rows:
            where = cell(t.frames[0]) if t.frames else "(no Python frames)"
            app = next((f for f in t.frames if not is_library(f.get("filename") or "")), None)
            yours = cell(app) if app is not None and app is not t.frames[0] else ""
            table.add_row(str(t.pid), str(t.tid or "?"), t.name, (t.state, "green" if t.active else "dim"),
                          "yes" if t.owns_gil else "", "-" if t.cpu_pct is None else f"{t.cpu_pct:.1f}", where,
                          yours)
        yield Text("")
        yield from table.lines(options.max_width)
        if folded:
            top = max((t.cpu_pct or 0.0) for t in folded)
            cpu = f"at most {top:.1f} % CPU each" if top else "using no CPU"
            yield Text(f"… {len(folded)} more idle thread{'s' if len(folded) != 1 else ''}, {cpu}: their stacks are "
                       "in the groups above (--rows 0 lists every thread)", style="dim")
        for e in self.errors:
            yield Text("note: " + plain(e), style="yellow")
