"""Single keystrokes from the terminal for ``perfkit top`` (cbreak mode, no echo).

The terminal's settings are restored on exit however the view ends (q, Ctrl-C, an
error).  Without a terminal on stdin there are no keys: :meth:`Keys.read` just waits.
"""

from __future__ import annotations

import os
import select
import sys
import time


class Keys:
    def __init__(self, enabled: bool = True) -> None:
        self.fd: int | None = None
        self._saved: list | None = None
        if enabled:
            try:
                fd = sys.stdin.fileno()
                if os.isatty(fd):
                    self.fd = fd
            except (AttributeError, OSError, ValueError):
                self.fd = None

    def __enter__(self) -> "Keys":
        if self.fd is not None:
            import termios
            import tty

            try:
                self._saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd)
            except termios.error:
                self.fd = None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None and self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass

    def read(self, timeout: float) -> str:
        """The keys pressed within ``timeout`` seconds ("" if none)."""
        if self.fd is None:
            time.sleep(max(0.0, timeout))
            return ""
        try:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        except InterruptedError:
            return ""
        if not ready:
            return ""
        try:
            data = os.read(self.fd, 64)
        except OSError:
            return ""
        if not data:  # the terminal went away: no more keys
            self.fd = None
            return ""
        return data.decode("utf-8", "replace")
