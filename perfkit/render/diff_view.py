"""The terminal view of a differential profile (``analysis.diff.DiffResult``).

One row per function, largest change first: the change of its self and total shares
(pp), its total value per second of each recording (when durations are known) and a
status — ``grew``/``shrank``, ``same`` (the change is within sampling noise, marked
``~``), ``appeared``/``vanished``.  Functions that appeared or vanished are always
listed, below the table when they did not make it into the top rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.analysis.diff import DiffResult, DiffRow

_STYLE = {"grew": "red", "shrank": "blue", "appeared": "red", "vanished": "blue", "same": "dim"}
_SHOWN_FLOOR_PP = 0.005


def _pp(x: float, noise: bool | None) -> str:
    return f"{x:+.2f}" + ("~" if noise else "")


@dataclass
class DiffView:
    result: DiffResult

    def _table(self, rows: list[DiffRow], title: str):
        from perfkit import paths, units
        from perfkit.render.fit import Col, FitTable, FrameCell

        res = self.result
        cols = [Col("Δ self", "right"), Col("Δ total", "right")]
        if res.absolute:
            cols += [Col("base/s", "right"), Col("new/s", "right")]
        else:
            cols += [Col("base %", "right"), Col("new %", "right")]
        cols += [Col("status"), Col("function", flex=True, min_width=16)]
        t = FitTable(cols, title=title)
        for r in rows:
            style = _STYLE.get(r.status, "")
            if res.absolute:
                vals = (units.fmt_rate(r.base_total_per_s, res.unit), units.fmt_rate(r.new_total_per_s, res.unit))
            else:
                vals = (f"{r.base_total_pct:5.1f}", f"{r.new_total_pct:5.1f}")
            t.add_row((_pp(r.delta_pp, r.noise and not r.by_total), style if not r.by_total else ""),
                      (_pp(r.total_delta_pp, r.noise and r.by_total), style if r.by_total else ""),
                      *vals, (r.status, style), FrameCell(r.function, paths.location(r.file, r.line)))
        return t

    def __rich_console__(self, console, options):
        from rich.text import Text

        from perfkit.console import plain

        res = self.result
        width = options.max_width
        moved = [r for r in res.rows if abs(r.delta_pp) >= _SHOWN_FLOOR_PP or abs(r.total_delta_pp) >= _SHOWN_FLOOR_PP
                 or r.status in ("appeared", "vanished")]
        shown = moved[: res.limit]
        what = "total value per second" if res.absolute else "share of the total"
        title = f"What changed in {res.value_type}, largest change first ({what}; Δ in pp of each total)"
        yield from self._table(shown, title).lines(width)
        if not shown:
            yield Text("no function's share changed", style="dim")
        rest = [r for r in moved[res.limit:] if r.status in ("appeared", "vanished") and not r.noise]
        if rest:
            yield Text("")
            yield from self._table(rest[:20], "Also appeared or vanished").lines(width)
            if len(rest) > 20:
                yield Text(f"… and {len(rest) - 20} more (--json lists every one)", style="dim")
        quiet = sum(1 for r in moved[res.limit:] if r.status in ("appeared", "vanished") and r.noise)
        if quiet:
            yield Text(f"{quiet} more functions appeared or vanished within sampling noise (--json lists them)",
                       style="dim")
        if res.sampled:
            yield Text(f"~ / same: within sampling noise ({res.confidence:.0%} interval on the sample counts); "
                       "the larger of Δ self and Δ total ranks a row and is what its status is about", style="dim")
        for note in res.notes:
            yield Text(plain(note), style="dim")
