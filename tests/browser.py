"""Headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``), and
the speedscope app (npm ``speedscope``'s release build) served on loopback.

Used by the interop tests to load a profile into the real speedscope app and read what
it shows: the thread picker, the sandwich table (total / self per function) and the
tooltip of the Time Order view at a given point of the time axis.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import IN_CI, TOOLS

SPEEDSCOPE = TOOLS / "speedscope" / "dist" / "release"
WIDTH, HEIGHT = 1200, 800


def chromium_exe() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = "chromium not installed (Debian chromium); run ./scripts/setup"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


class Chromium:
    """One headless browser; ``page(url)`` opens a tab and returns a :class:`Page`."""

    def __init__(self) -> None:
        exe = chromium_exe()
        self.profile_dir = tempfile.mkdtemp(prefix="perfkit-chromium-")
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()

        def fds() -> None:  # the protocol pipe: the browser reads fd 3 and writes fd 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={self.profile_dir}",
             "--remote-debugging-pipe", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"chromium did not answer {method}")
                ready, _, _ = select.select([self._r], [], [], left)
                if ready:
                    chunk = os.read(self._r, 1 << 20)
                    if not chunk:
                        raise EOFError("chromium closed the protocol pipe")
                    self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def page(self, url: str) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})
        session = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        self.send("Page.enable", session=session)
        self.send("Runtime.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        return Page(self, session)

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        for fd in (self._r, self._w):
            os.close(fd)
        shutil.rmtree(self.profile_dir, ignore_errors=True)


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session

    def eval(self, expression: str):
        res = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                session=self.session)
        return res.get("result", {}).get("value")

    def text(self) -> str:
        return self.eval("document.body ? document.body.innerText : ''") or ""

    def wait_text(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} never appeared; the page shows: {self.text()[:500]!r}")

    def hover(self, x: float, y: float) -> str:
        self.browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=self.session)
        time.sleep(0.15)
        return self.text()

    def click_text(self, label: str) -> None:
        ok = self.eval("(() => { const d = [...document.querySelectorAll('div')].find(e => "
                       f"e.textContent.endsWith({json.dumps(label)}) && e.children.length <= 2); "
                       "if (!d) return false; d.click(); return true; })()")
        assert ok, f"no {label!r} button on the page"


class Speedscope:
    """The speedscope app on a loopback HTTP server, in one headless Chromium."""

    def __init__(self, tmp: Path) -> None:
        if not (SPEEDSCOPE / "index.html").exists():
            msg = "speedscope app not installed (npm speedscope in tools/); run ./scripts/setup"
            if IN_CI:
                pytest.fail(msg)
            pytest.skip(msg)
        self.root = tmp / "www"
        shutil.copytree(SPEEDSCOPE, self.root)

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      functools.partial(Quiet, directory=str(self.root)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.browser = Chromium()

    def open(self, path: Path) -> "Page":
        """Load a profile file into the app; returns the page once the profile is shown."""
        name = f"p{len(list(self.root.glob('p*')))}{''.join(path.suffixes)}"
        shutil.copy(path, self.root / name)
        port = self.server.server_address[1]
        page = self.browser.page(f"http://127.0.0.1:{port}/index.html#profileURL=/{name}")
        page.wait_text("Sandwich")
        page.wait_text("Export")
        return page

    def close(self) -> None:
        self.browser.close()
        self.server.shutdown()


def _parse_sandwich(text: str) -> dict[str, tuple[float, float]]:
    body = text.split("Symbol Name", 1)[1] if "Symbol Name" in text else ""
    rows = re.findall(r"([\d.]+)(ns|µs|us|ms|s|min)? \([^)]*\)\s+([\d.]+)(ns|µs|us|ms|s|min)? \([^)]*\)\s+(.+)", body)
    scale = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "": 1.0}
    out: dict[str, list[float]] = {}
    for total, tu, self_, su, name in rows:
        acc = out.setdefault(name.strip(), [0.0, 0.0])
        acc[0] += float(total) * scale[tu]
        acc[1] += float(self_) * scale[su]
    return {k: (v[0], v[1]) for k, v in out.items()}


def sandwich(page: Page, timeout: float = 20) -> dict[str, tuple[float, float]]:
    """The sandwich table: {symbol: (total seconds, self seconds)} summed over same-named rows
    (read once the table has rendered and two reads agree)."""
    page.click_text("Sandwich")
    page.wait_text("Symbol Name")
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        table = _parse_sandwich(page.text())
        if table and table == last:
            return table
        last = table
        time.sleep(0.3)
    raise AssertionError(f"the sandwich table never settled: {page.text()[:500]!r}")


def time_order_names(page: Page, fractions: list[float], frame_prefix: str) -> list[str]:
    """The frame named in the Time Order view's tooltip at each fraction of the time axis
    (the row holding frames that start with ``frame_prefix``)."""
    page.click_text("Time Order")
    time.sleep(0.3)
    for y in range(130, 400, 6):  # find the row first
        tip = page.hover(WIDTH * fractions[0], y)
        if re.search(rf"\) {re.escape(frame_prefix)}", tip):
            break
    else:
        raise AssertionError(f"no {frame_prefix}* row in the Time Order view")
    names = []
    for fx in fractions:
        tip = page.hover(WIDTH * fx, y)
        m = re.findall(rf"\) ({re.escape(frame_prefix)}\S*)", tip)
        names.append(m[-1] if m else "")
    return names
