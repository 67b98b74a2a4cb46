"""Terminal views of a heap summary (rich renderables built from Text, never markup).

``HeapView`` prints the whole summary: headline numbers, heap/RSS sparklines, the top
sites by bytes allocated and by bytes still alive, the peak's sites and the RSS-vs-heap
explanation.  With ``leaks=True`` it shows what stayed alive first and drops the
allocation-volume table.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit import paths, units
from perfkit.analysis.heap import HeapSummary, Site
from perfkit.console import plain
from perfkit.render.fit import Col, FitTable, FrameCell
from perfkit.units import human_bytes


def _hb(v: int | None) -> str:
    return "?" if v is None else human_bytes(v)


sparkline = units.sparkline
NO_USER = "— (library only)"
SAME = "(same line)"



def site_cells(s: Site) -> tuple:
    """(your code, allocated in) for one site, in the one path style."""
    yours = FrameCell(s.user_function, paths.location(s.user_file, s.user_line)) if s.user_function else NO_USER
    where = SAME if s.in_user_code else FrameCell(s.function, paths.location(s.file, s.line))
    return yours, where



@dataclass
class SitesTable:
    sites: list[Site]
    title: str
    bytes_label: str = "bytes"
    count_label: str = "allocs"

    def table(self) -> FitTable:
        t = FitTable([Col("%", "right"), Col(self.bytes_label, "right"), Col(self.count_label, "right"),
                      Col("your code", flex=True, min_width=16, weight=3),
                      Col("allocated in", flex=True, min_width=16, style="dim", weight=2, below="↳ allocated in ",
                          below_skip=SAME)],
                     title=self.title, empty="(nothing)")
        for s in self.sites:
            yours, where = site_cells(s)
            t.add_row(f"{s.pct:5.1f}", _hb(s.bytes), f"{s.count:,}", yours, where)
        return t

    def __rich_console__(self, console, options):
        yield from self.table().lines(options.max_width)


def _your_line(r: dict) -> str:
    via = f" through {r['sites']} lines" if r["sites"] > 1 else ""
    return f"{paths.frame_text(r['function'], r['file'], r['line'])} {_hb(r['bytes'])} ({r['pct']:.0f}%){via}"


def hidden_line(summary: HeapSummary, leaks: bool = False) -> str | None:
    """The footer saying how much import-time memory the tables leave out."""
    h = summary.hidden_alive
    a = summary.hidden_allocated
    if h is None or (not h.value and not (a and a.value)):
        return None
    parts = [f"{_hb(h.value)} still alive ({h.pct:.0f}% of all alive, {h.count:,} objects)"]
    if a is not None and not leaks:
        parts.append(f"{_hb(a.value)} allocated ({a.pct:.0f}% of all allocated)")
    return ("hidden: import-time allocations (module code run by imports): " + ", ".join(parts) +
            " — --show-imports lists them")


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
            spark = max(8, min(60, options.max_width - 48))
            for label, key in (("RSS ", "rss_bytes"), ("heap", "heap_bytes")):
                pts = self.series.get(key) or []
                if pts:
                    vals = [p[1] for p in pts]
                    yield Text(f"  {label} {sparkline(pts, width=spark)}  {_hb(int(min(vals)))} .. "
                               f"{_hb(int(max(vals)))}, {_hb(int(vals[-1]))} at end")
        yield Text("")
        if s.your_code_alive:
            t = Text("Your code holding the most still alive: ", style="bold")
            t.append(plain("; ".join(_your_line(r) for r in s.your_code_alive[:2])))
            yield t
        yield SitesTable(s.top_alive, "Still alive at the end, by line (likely leaks)", "alive", "objects")
        if not self.leaks:
            yield Text("")
            yield SitesTable(s.top_allocated, "Top allocating lines (all bytes allocated while tracking)",
                             "allocated", "allocs")
        if s.peak_sites:
            yield Text("")
            yield SitesTable(s.peak_sites[:5], f"Alive at the peak ({_hb(s.peak_heap)})", "bytes", "objects")
        hidden = hidden_line(s, self.leaks)
        if hidden:
            yield Text("")
            yield Text(hidden, style="dim")
        yield Text("")
        for line in s.rss.lines:
            yield Text(plain(line), style="dim")
        for note in s.notes:
            yield Text(plain(f"note: {note}"), style="yellow")
