"""Terminal output helpers.  rich is imported on first use, never at CLI start-up.

Conventions: data goes to stdout, messages and progress to stderr; ``--json`` prints
exactly one JSON document on stdout; NO_COLOR is respected (rich does this); text that
comes from the target (function names, file names, thread names) is never interpreted
as markup: pass it through :func:`plain` or build ``rich.text.Text`` objects.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

_err = None
_out = None


def err_console():
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False)
    return _err


def out_console():
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False)
    return _out


_CONTROL = {i: f"\\x{i:02x}" for i in range(32)}
_CONTROL.update({9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f"})
# Bidi embeddings/overrides/isolates reorder what follows them on screen (U+202E shows
# "exe.txt" for "txt.exe"), zero-width characters hide text: shown escaped like ANSI escapes.
INVISIBLE = (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2060, 0xFEFF, 0x061C,
             0x2028, 0x2029)
_CONTROL.update({c: f"\\u{c:04x}" for c in INVISIBLE})
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})  # C1 controls (CSI = 0x9b)


def plain(text: object) -> str:
    """Untrusted text made safe for one terminal cell: control, C1, bidi and zero-width chars shown escaped.

    Use the result inside ``rich.text.Text`` (never inside markup strings).
    """
    return str(text).translate(_CONTROL)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, default=str, ensure_ascii=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


def message(text: str) -> None:
    """A plain message line on stderr (no markup interpretation)."""
    from rich.text import Text

    err_console().print(Text(text))


def warn(text: str) -> None:
    from rich.text import Text

    err_console().print(Text("warning: ", style="yellow") + Text(text))


@contextmanager
def live_status(render_line) -> Iterator[None]:
    """Show ``render_line()`` (a str) as a live line on stderr while the block runs.

    Only on a TTY; when stderr is piped nothing is drawn (the final summary says it all).
    """
    con = err_console()
    if not con.is_terminal:
        yield
        return
    from rich.live import Live
    from rich.text import Text

    with Live(Text(render_line()), console=con, refresh_per_second=4, transient=True,
              get_renderable=lambda: Text(render_line())):
        yield


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start
