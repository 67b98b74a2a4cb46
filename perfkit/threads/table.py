"""Terminal view of a thread snapshot: stack groups, then one row per thread.

Built from rich ``Text`` objects only; every name and path from the target goes
through :func:`perfkit.console.plain` (no markup is ever interpreted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit import units
from perfkit.threads.view import StackGroup, ThreadInfo, frame_label, is_library
from perfkit.console import plain



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
    max_rows: int | None = None

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        n = len(self.threads)
        running = sum(1 for t in self.threads if t.active)
        gil = [t for t in self.threads if t.owns_gil]
        pids = sorted({t.pid for t in self.threads})
        head = Text(f"pid {self.pid}: {n} thread{'s' if n != 1 else ''}", style="bold")
        if len(pids) > 1:
            head.append(f" in {len(pids)} processes")
        head.append(f" · {running} running · {n - running} idle")
        head.append(" · GIL held by " + (", ".join(plain(t.name) for t in gil) if gil else "nobody"))
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
                fl = Text("    ")
                fl.append(plain(f.get("name") or "?"), style="green")
                fl.append(f"  {plain(f.get('filename') or '')}:{f.get('line') or '?'}", style="dim")
                yield fl
                if self.show_locals and g.count == 1 and f.get("locals"):
                    for var in f["locals"]:
                        yield Text(f"        {plain(var.get('name'))} = {plain(var.get('repr'))[:200]}")
            if len(g.frames) > self.depth:
                yield Text(f"    … {len(g.frames) - self.depth} outer frames", style="dim")
        table = Table(title="Threads", title_justify="left", show_edge=False, pad_edge=False)
        for col, just in (("pid", "right"), ("tid", "right"), ("name", "left"), ("state", "left"),
                          ("GIL", "left"), ("CPU %", "right"), ("where", "left")):
            table.add_column(col, justify=just, no_wrap=col != "where")
        rows = sorted(self.threads, key=lambda t: (-(t.cpu_pct or 0.0), t.pid, t.tid or 0))
        if self.max_rows:
            rows = rows[:self.max_rows]
        for t in rows:
            where = frame_label(t.frames[0]) if t.frames else "(no Python frames)"
            app = next((f for f in t.frames if not is_library(f.get("filename") or "")), None)
            if app is not None and app is not t.frames[0]:
                where += f" ← {frame_label(app)}"
            table.add_row(Text(str(t.pid)), Text(str(t.tid or "?")), Text(plain(t.name)),
                          Text(t.state, style="green" if t.active else "dim"), Text("yes" if t.owns_gil else ""),
                          Text("-" if t.cpu_pct is None else f"{t.cpu_pct:.1f}"), Text(plain(where)))
        yield Text("")
        yield table
        if self.max_rows and len(self.threads) > self.max_rows:
            yield Text(f"… {len(self.threads) - self.max_rows} more threads", style="dim")
        for e in self.errors:
            yield Text("note: " + plain(e), style="yellow")
