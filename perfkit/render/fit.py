"""Tables that fit the terminal: every cell on one line, never a token split in two.

``FitTable`` lays its columns out for the width it is given (80 columns, 200, a pipe's
default): number columns keep their width, text columns share what is left (water-
filling: a column that needs less than its share gives the rest to the others), and a
cell that is still too wide is ellipsized in the middle — ``encode <stdlib>/js…der.py:203``
keeps the function's start and the file's end with its line number.  Nothing wraps,
so ``file:line`` and headers are never split across lines.

Cells are plain strings (or ``(text, style)`` pairs); they are shown as ``rich.text.Text``
after :func:`perfkit.console.plain`, so untrusted names are never markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

from perfkit.console import plain

GAP = 2


@dataclass(frozen=True)
class FrameCell:
    """``function where`` (where = ``path:line``), shortened the readable way: leading
    directories of the path go first (``…/encoder.py:258``), then the middle of the
    function name; the file's base name and line number stay whole while they fit."""

    function: str
    where: str = ""
    style: str = ""

    def __str__(self) -> str:
        return f"{self.function} {self.where}" if self.where else self.function

    def fit(self, width: int) -> str:
        full = str(self)
        if cells(full) <= width or not self.where:
            return ellipsize(full, width)
        parts = self.where.split("/")
        keep = 2 if len(parts) > 1 and parts[-1].startswith(("__init__.py", "__main__.py")) else 1
        base = "/".join(parts[-keep:])
        shorter = ["…/" + "/".join(parts[k:]) for k in range(1, len(parts) - keep + 1)] + [base]
        for where in shorter:
            if cells(self.function) + 1 + cells(where) <= width:
                return f"{self.function} {where}"
        where = base
        room = width - 1 - cells(where)
        if room >= 5:
            return f"{ellipsize(self.function, room)} {where}"
        return ellipsize(full, width)


Cell = Union[str, tuple, FrameCell]  # "text", ("text", "style") or a frame


@dataclass(frozen=True)
class Col:
    header: str
    justify: str = "left"  # "left" | "right"
    flex: bool = False  # text that may be shortened; fixed columns keep their natural width
    min_width: int = 10
    style: str = ""
    weight: int = 1  # share of the room left for flexible columns
    below: str | None = None  # when the row is too wide: shown on its own line under it, after this prefix
    below_skip: str | None = None  # a value not worth its own line (e.g. "(same line)")


def cells(text: str) -> int:
    if text.isascii() and text.isprintable():  # one cell a character: no table lookups
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


def _take(text: str, width: int, from_end: bool = False) -> str:
    if text.isascii() and text.isprintable():
        return (text[-width:] if width > 0 else "") if from_end else text[:width]
    from rich.cells import get_character_cell_size

    out, used = [], 0
    seq = reversed(text) if from_end else iter(text)
    for ch in seq:
        w = get_character_cell_size(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(reversed(out)) if from_end else "".join(out)


def ellipsize(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, shortened in the middle with ``…``."""
    if width <= 0:
        return ""
    if cells(text) <= width:
        return text
    if width == 1:
        return "…"
    keep = width - 1
    tail = (keep + 1) // 2
    return _take(text, keep - tail) + "…" + _take(text, tail, from_end=True)


def widths(columns: Sequence[Col], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """Each column's width for a table ``width`` cells wide (see the module docstring)."""
    nat = [max([cells(c.header)] + [cells(r[i]) for r in rows]) for i, c in enumerate(columns)]
    out = list(nat)
    flex = [i for i, c in enumerate(columns) if c.flex]
    avail = width - GAP * (len(columns) - 1) - sum(nat[i] for i, c in enumerate(columns) if not c.flex)
    if sum(nat[i] for i in flex) <= avail:
        return out
    mins = {i: min(nat[i], max(columns[i].min_width, cells(columns[i].header))) for i in flex}
    left = avail
    todo = sorted(flex, key=lambda i: nat[i] / columns[i].weight)
    for k, i in enumerate(todo):
        weights = sum(columns[j].weight for j in todo[k:])
        share = left * columns[i].weight // weights if left > 0 else 0
        out[i] = min(nat[i], max(mins[i], share))
        left -= out[i]
    return out


def _cell(value: Cell):
    if hasattr(value, "plain") and hasattr(value, "style"):  # a rich Text
        return plain(value.plain), str(value.style or "")
    if isinstance(value, FrameCell):
        return FrameCell(plain(value.function), plain(value.where), value.style), value.style
    if isinstance(value, tuple):
        return plain(value[0]), value[1]
    return plain(value), ""


@dataclass
class FitTable:
    columns: list[Col]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str | None = None
    empty: str | None = None  # shown in place of rows when there are none

    def add_row(self, *values: Cell) -> None:
        self.rows.append(list(values))

    def lines(self, width: int) -> list:
        texts = [[_cell(v) for v in row] for row in self.rows]
        nat = sum(max([cells(c.header)] + [cells(str(r[i][0])) for r in texts]) for i, c in enumerate(self.columns))
        nat += GAP * (len(self.columns) - 1)
        below = [i for i, c in enumerate(self.columns) if c.below is not None]
        if below and nat > width:
            return self._lines_below(texts, width, below)
        return self._lines(texts, self.columns, width)

    def _lines_below(self, texts, width: int, below: list[int]) -> list:
        """Too wide: the ``below`` columns move to a line of their own under each row."""
        from rich.text import Text

        keep = [i for i in range(len(self.columns)) if i not in below]
        cols = [self.columns[i] for i in keep]
        ws = widths(cols, [[str(row[i][0]) for i in keep] for row in texts], width)
        under = max((k for k, c in enumerate(cols) if c.flex), default=0)  # the last text column it belongs to
        indent = sum(ws[:under]) + GAP * under
        out = self._lines([[row[i] for i in keep] for row in texts], cols, width, ws=ws, head_only=True)
        for row in texts:
            out.extend(self._lines([[row[i] for i in keep]], cols, width, ws=ws, rows_only=True))
            for i in below:
                text, style = row[i]
                if not str(text) or str(text) == self.columns[i].below_skip:
                    continue
                prefix = " " * indent + (self.columns[i].below or "")
                room = max(8, width - cells(prefix))
                shown = text.fit(room) if isinstance(text, FrameCell) else ellipsize(str(text), room)
                line = Text(prefix, no_wrap=True, overflow="crop", style="dim")
                line.append(shown, style=style or self.columns[i].style)
                out.append(line)
        if not self.rows and self.empty:
            out.append(Text(plain(self.empty), style="dim"))
        return out

    def _lines(self, texts, columns, width: int, *, ws: list[int] | None = None, head_only: bool = False,
               rows_only: bool = False) -> list:
        from rich.text import Text

        if ws is None:
            ws = widths(columns, [[str(t) for t, _ in row] for row in texts], width)
        out = []
        if self.title and not rows_only:
            out.append(Text(plain(self.title), style="bold"))

        def line(values: list[tuple[str, str]], header: bool = False):
            t = Text(no_wrap=True, overflow="crop")
            last = len(values) - 1
            for i, ((text, style), col, w) in enumerate(zip(values, columns, ws, strict=False)):
                shown = text.fit(w) if isinstance(text, FrameCell) else ellipsize(text, w)
                pad = " " * (w - cells(shown))
                if col.justify == "right":
                    t.append(pad)
                t.append(shown, style="bold" if header else (style or col.style))
                if col.justify != "right" and i != last:
                    t.append(pad)
                if i != last:
                    t.append(" " * GAP)
            t.rstrip()
            return t

        if not rows_only:
            out.append(line([(c.header, "") for c in columns], header=True))
            out.append(Text("─" * min(width, sum(ws) + GAP * (len(ws) - 1)), style="dim"))
        if head_only:
            return out
        for row in texts:
            out.append(line(row))
        if not self.rows and self.empty and not rows_only:
            out.append(Text(plain(self.empty), style="dim"))
        return out

    def __rich_console__(self, console, options):
        yield from self.lines(options.max_width)

    def text(self, width: int = 80) -> str:
        return "\n".join(t.plain for t in self.lines(width))
