"""How collectors stop politely on Ctrl-C / SIGTERM / SIGHUP (one place for the signal handling).

``StopRequest``: record the signal and let the caller's poll loop ask the tool
(py-spy, memray) to stop and write what it has.
``sigterm_as_interrupt``: SIGTERM and SIGHUP (a dropped SSH session) behave like Ctrl-C
(KeyboardInterrupt), for loops that already keep partial results on KeyboardInterrupt.
Both do nothing off the main thread (Python only delivers signals there).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class StopRequest:
    """Turns SIGINT/SIGTERM/SIGHUP during a recording into a flag: ``.signal`` is set."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if _on_main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, _frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C does."""
    if not _on_main_thread():
        yield
        return
    old = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
