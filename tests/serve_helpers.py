"""Running a real `perfkit serve` in tests and talking to it over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass

from conftest import ROOT, perfkit_cmd


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def ctype(self) -> str:
        return self.headers.get("content-type", "")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(url: str, path: str, *, token: str | None = None, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, timeout: float = 60.0, tls_ca: str | None = None) -> Reply:
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=tls_ca)
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


class Serve:
    """`perfkit serve ... --json` in a subprocess; ``url`` once it listens."""

    def __init__(self, *args: str, env: dict | None = None, ready_timeout: float = 60.0) -> None:
        e = dict(os.environ)
        e["NO_COLOR"] = "1"
        e.update(env or {})
        argv = list(map(str, args))
        cut = argv.index("--") if "--" in argv else len(argv)
        cmd = perfkit_cmd() + ["serve", "--listen", "127.0.0.1:0", "--json", *argv[:cut]] + argv[cut:]
        if any(a.startswith("--listen") for a in argv[:cut]):
            cmd = perfkit_cmd() + ["serve", "--json", *argv[:cut]] + argv[cut:]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=e,
                                     start_new_session=True)
        self.stderr_lines: list[str] = []
        self._err = threading.Thread(target=self._drain, daemon=True)
        self._err.start()
        line = ""
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("{") or not line:
                break
        if not line.startswith("{"):
            self.stop()
            raise RuntimeError(f"perfkit serve did not start (exit {self.proc.poll()}): {self.stderr()}")
        self.info = json.loads(line)
        self.url = self.info["url"]
        self.pid = self.proc.pid

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def stderr(self) -> str:
        self._err.join(0.5)
        return "".join(self.stderr_lines)

    def get(self, path: str, **kw) -> Reply:
        return request(self.url, path, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._err.join(5)
        return self.proc.returncode

    def __enter__(self) -> "Serve":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(fn, timeout: float = 30.0, every: float = 0.2):
    """Poll ``fn()`` until it returns something truthy; that value (or the last falsy one)."""
    end = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < end:
        time.sleep(every)
        value = fn()
    return value


def descendants(pid: int) -> list[int]:
    """Every process whose ancestry includes ``pid`` (from the process table)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    data = f.read()
                parents[int(name)] = int(data[data.rfind(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out = []
    for p in parents:
        q = parents.get(p)
        seen = 0
        while q and seen < 64:
            if q == pid:
                out.append(p)
                break
            q = parents.get(q)
            seen += 1
    return out


def processes_mentioning(needle: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if needle in cmd:
                out.append((int(name), cmd))
    return out


def tracer_pid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1
