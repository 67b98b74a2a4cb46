"""The terminal view of a differential profile (``analysis.diff.DiffResult``)."""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.analysis.diff import DiffResult


@dataclass
class DiffView:
    result: DiffResult

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        from perfkit.console import plain
        from perfkit.paths import short_path as _short_path

        table = Table(title=f"Share of {self.result.value_type} that changed most (normalised to totals)",
                      title_justify="left", show_edge=False, pad_edge=False)
        for col in ("Δ pp", "base %", "new %", "total Δ pp"):
            table.add_column(col, justify="right")
        table.add_column("function", overflow="fold")
        table.add_column("file:line", overflow="fold")
        shown = [r for r in self.result.rows if abs(r.delta_pp) >= 0.005 or abs(r.total_delta_pp) >= 0.005][: self.result.limit]
        for r in shown:
            style = "red" if r.delta_pp > 0 else "blue" if r.delta_pp < 0 else ""
            where = _short_path(r.file) + (f":{r.line}" if r.file and r.line else "")
            table.add_row(Text(f"{r.delta_pp:+6.2f}", style=style), f"{r.base_pct:5.1f}", f"{r.new_pct:5.1f}",
                          f"{r.total_delta_pp:+6.2f}", Text(plain(r.function)), Text(plain(where)))
        yield table
        if not shown:
            yield Text("no function's share changed", style="dim")
        for note in self.result.notes:
            yield Text(plain(note), style="dim")
