"""Terminal views of a heap summary (rich renderables built from Text, never markup).

``HeapView`` prints the whole summary: headline numbers, heap/RSS sparklines, the top
sites by bytes allocated and by bytes still alive, the peak's sites and the RSS-vs-heap
explanation.  With ``leaks=True`` it shows what stayed alive first and drops the
allocation-volume table.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.analysis.heap import HeapSummary, Site
from perfkit.console import plain
from perfkit.paths import short_path as _short_path
from perfkit import units
from perfkit.units import human_bytes



def _hb(v: int | None) -> str:
    return "?" if v is None else human_bytes(v)


def _display_path(path: str) -> str:
    """Paths under the current directory relative to it, library paths trimmed."""
    import os

    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    if cwd and path.startswith(cwd + os.sep):
        return path[len(cwd) + 1:]
    return _short_path(path)


sparkline = units.sparkline


@dataclass
class SitesTable:
    sites: list[Site]
    title: str
    bytes_label: str = "bytes"
    count_label: str = "allocs"

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.title, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("%", justify="right")
        table.add_column(self.bytes_label, justify="right")
        table.add_column(self.count_label, justify="right")
        table.add_column("function", overflow="fold")
        table.add_column("file:line", overflow="fold")
        table.add_column("called from", overflow="fold", style="dim")
        for s in self.sites:
            loc = _display_path(s.file) + (f":{s.line}" if s.file else "")
            caller = ""
            if s.caller:
                fn, _, where = s.caller.rpartition(" ")
                caller = f"{fn} {_display_path(where)}" if fn else _display_path(where)
            table.add_row(f"{s.pct:5.1f}", _hb(s.bytes), f"{s.count:,}", Text(plain(s.function)), Text(plain(loc)),
                          Text(plain(caller)))
        if not self.sites:
            table.add_row("", "", "", Text("(nothing)"), Text(""), Text(""))
        yield table


@dataclass
class HeapView:
    summary: HeapSummary
    leaks: bool = False
    series: dict | None = None

    def __rich_console__(self, console, options):
        from rich.text import Text

        s = self.summary
        yield Text(plain(f"Heap of {s.target} over {s.duration_s:.1f} s (memray)"), style="bold")
        yield Text(plain(f"peak heap {_hb(s.peak_heap)} · peak RSS {_hb(s.peak_rss)} · "
                         f"allocated {_hb(s.alloc_bytes)} in {s.alloc_count:,} allocations · "
                         f"still alive {_hb(s.inuse_bytes)} in {s.inuse_count:,}"))
        if self.series:
            for label, key in (("RSS ", "rss_bytes"), ("heap", "heap_bytes")):
                pts = self.series.get(key) or []
                if pts:
                    vals = [p[1] for p in pts]
                    yield Text(f"  {label} {sparkline(pts)}  {_hb(int(min(vals)))} .. {_hb(int(max(vals)))}, "
                               f"{_hb(int(vals[-1]))} at end")
        yield Text("")
        yield SitesTable(s.top_alive, "Still alive at the end, by line (likely leaks)", "alive", "objects")
        if not self.leaks:
            yield Text("")
            yield SitesTable(s.top_allocated, "Top allocating lines (all bytes allocated while tracking)",
                             "allocated", "allocs")
        if s.peak_sites:
            yield Text("")
            yield SitesTable(s.peak_sites[:5], f"Alive at the peak ({_hb(s.peak_heap)})", "bytes", "objects")
        yield Text("")
        for line in s.rss.lines:
            yield Text(plain(line), style="dim")
        for note in s.notes:
            yield Text(plain(f"note: {note}"), style="yellow")
