"""The routes of `perfkit serve`: net/http/pprof's paths, parameters, content types and
status codes (Go 1.19+), plus /metrics and /debug/perfkit/*.

=============================  =====================================================
``/debug/pprof``               301 to ``/debug/pprof/`` (as Go's ServeMux)
``/debug/pprof/``              index (text/html)
``/debug/pprof/profile``       CPU, ``seconds`` (default 30; not a positive integer →
                               30, as Go; above ``--max-seconds`` → 400)
``/debug/pprof/goroutine``     threads: ``debug=0`` pprof, ``1`` grouped text, ``2``
                               every stack; ``seconds=N`` a delta profile
``/debug/pprof/heap|allocs``   memray, only with ``--allow-heap`` (else 403)
``/debug/pprof/cmdline``       the target's command line, NUL-separated, redacted
``/debug/pprof/symbol``        ``num_symbols: 0`` (profiles carry their names)
``/debug/pprof/<other>``       404 ``Unknown profile`` (block, mutex, threadcreate,
                               trace have no Python equivalent here)
``/metrics``                   Prometheus exposition
``/debug/perfkit/targets``     the served targets (JSON)
``/debug/perfkit/captures``    capture bundles (JSON; ``…/NAME/FILE`` downloads)
``/debug/perfkit/alertmanager``  POST: Alertmanager webhook (``--alert-webhook``)
=============================  =====================================================

``?pid=N`` picks the target (default: the first).  One CPU profile (and one heap
capture) per target at a time: a second gets 429 with Retry-After.
"""

from __future__ import annotations

import html
import json
import math
import threading
import time
from dataclasses import dataclass, field

from perfkit.errors import NoSuchProcess, PerfkitError, TargetExited

TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
BINARY = "application/octet-stream"
JSON = "application/json"
NOT_FOUND = "404 page not found\n"

DESCRIPTIONS = {
    "allocs": "A sampling of all past memory allocations",
    "cmdline": "The command line invocation of the current program",
    "goroutine": "Stack traces of all current goroutines",
    "heap": "A sampling of memory allocations of live objects. You can specify the gc GET parameter to run GC "
            "before taking the heap sample.",
    "profile": "CPU profile. You can specify the duration in the seconds GET parameter. After you get the profile "
               "file, use the go tool pprof command to investigate the profile.",
}
PERFKIT_NOTES = {
    "allocs": "Python: a memray attach capture of ?seconds (default %ds); alloc_space by default.",
    "heap": "Python: a memray attach capture of ?seconds (default %ds); inuse_space by default. gc is ignored.",
    "goroutine": "Python: one entry per thread (py-spy dump, non-blocking); debug=1 groups identical stacks.",
    "profile": "Python: py-spy record at %d Hz; at most --max-seconds %d; one at a time per target.",
}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = TEXT
    headers: dict[str, str] = field(default_factory=dict)


def text(status: int, message: str, **headers: str) -> Response:
    return Response(status, (message.rstrip("\n") + "\n").encode(), TEXT, dict(headers))


def pprof_error(status: int, message: str, **headers: str) -> Response:
    """Go's serveError: text/plain, X-Go-Pprof: 1, the message and a newline."""
    return Response(status, (message + "\n").encode(), TEXT, {"X-Go-Pprof": "1", **headers})


def attachment(body: bytes, name: str) -> Response:
    return Response(200, body, BINARY, {"Content-Disposition": f'attachment; filename="{name}"'})


def as_json(doc, status: int = 200) -> Response:
    return Response(status, (json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n").encode(), JSON)


def _first(query: dict, name: str) -> str:
    v = query.get(name)
    return v[0] if v else ""


def _parse_int(s: str) -> int | None:
    """Go's strconv.ParseInt(s, 10, 64): an optional sign and ASCII digits, else None."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    v = int(s)
    return v if -(1 << 63) <= v < (1 << 63) else None


def _atoi(s: str) -> int:
    """Go's strconv.Atoi with the error ignored: 0 unless a whole decimal integer."""
    v = _parse_int(s)
    return v if v is not None else 0


class Endpoints:
    def __init__(self, cfg, targets, collector, metrics, captures, profiles, shutdown: threading.Event) -> None:
        self.cfg, self.targets, self.collector = cfg, targets, collector
        self.metrics, self.captures, self.profiles = metrics, captures, profiles
        self.shutdown = shutdown

    # ------------------------------------------------------------------ routing
    def route(self, method: str, path: str, query: dict, headers, body: bytes | None) -> tuple[str, Response]:
        """(endpoint name for metrics/logs, response)."""
        if method == "POST":
            if path == "/debug/perfkit/alertmanager" and self.cfg.alert_webhook:
                return "alertmanager", self.alertmanager(body or b"")
            return "method", text(405, "only GET is served here", Allow="GET")
        if path == "/metrics":
            return "metrics", self.prometheus(headers.get("Accept"))
        if path == "/debug/pprof":
            return "redirect", Response(301, b'<a href="/debug/pprof/">Moved Permanently</a>.\n\n', HTML,
                                        {"Location": "/debug/pprof/"})
        if path == "/debug/pprof/":
            return "index", self.index(query)
        if path.startswith("/debug/pprof/"):
            name = path[len("/debug/pprof/"):]
            fn = {"profile": self.cpu, "goroutine": self.goroutine, "heap": self.heap, "allocs": self.heap,
                  "cmdline": self.cmdline, "symbol": self.symbol}.get(name)
            if fn is None:
                return "unknown-profile", pprof_error(404, "Unknown profile", **{"X-Content-Type-Options": "nosniff"})
            return name, fn(query, name)
        if path == "/debug/perfkit/targets":
            return "targets", as_json({"targets": [t.to_json() for t in self.targets.served()],
                                       "skipped": {str(k): v for k, v in self.targets.skipped.items()}})
        if path == "/debug/perfkit/captures" or path.startswith("/debug/perfkit/captures/"):
            return "captures", self.capture_files(path)
        return "not-found", text(404, NOT_FOUND)

    def _target(self, query: dict):
        raw = _first(query, "pid")
        pid = None
        if raw:
            if not (raw.isascii() and raw.isdigit()):
                return None, pprof_error(400, 'invalid value for "pid" - must be a process id')
            pid = int(raw)
        t = self.targets.get(pid)
        if t is None:
            why = f"no served target with pid {pid}" if pid is not None else "no target is served right now"
            return None, pprof_error(404, why + " (see /debug/perfkit/targets)")
        return t, None

    # ------------------------------------------------------------------ pprof
    def index(self, query: dict) -> Response:
        names = ["allocs", "goroutine", "heap"] if self.cfg.allow_heap else ["goroutine"]
        names = sorted(names + ["cmdline", "profile"])
        t = self.targets.get(None)
        rows, items = [], []
        counts = {"goroutine": (t.state.last.sample.threads if t and t.state and t.state.last else 0)}
        for n in names:
            rows.append(f"<tr><td>{counts.get(n, 0)}</td><td><a href='{n}?debug=1'>{html.escape(n)}</a></td></tr>")
            note = PERFKIT_NOTES.get(n, "")
            if "%d" in note:
                note = note % ((self.cfg.rate, self.cfg.max_seconds) if n == "profile" else (self.cfg.heap_seconds,))
            items.append(f"<li><div class=profile-name>{html.escape(n)}: </div> {html.escape(DESCRIPTIONS[n])} "
                         f"<i>{html.escape(note)}</i></li>")
        targets = "".join(f"<li>pid {x.pid} <a href='goroutine?debug=1&amp;pid={x.pid}'>{html.escape(x.cmd)}</a> "
                          f"({html.escape(x.origin)})</li>" for x in self.targets.served())
        doc = ("<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{\n\tdisplay:inline-block;\n"
               "\twidth:6rem;\n}\n</style>\n</head>\n<body>\n/debug/pprof/<br>\n<br>\nTypes of profiles available:\n"
               "<table>\n<thead><td>Count</td><td>Profile</td></thead>\n" + "\n".join(rows) + "\n</table>\n"
               "<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n"
               + "\n".join(items) + "\n</ul>\n</p>\n<p>\nServed Python processes (add ?pid=N to any profile):\n<ul>\n"
               + targets + "\n</ul>\n</p>\n</body>\n</html>")
        return Response(200, doc.encode("utf-8", "backslashreplace"), HTML, {"X-Content-Type-Options": "nosniff"})

    def cmdline(self, query: dict, _name: str) -> Response:
        t, err = self._target(query)
        if err:
            return err
        return Response(200, "\x00".join(t.argv).encode("utf-8", "backslashreplace"), TEXT,
                        {"X-Content-Type-Options": "nosniff"})

    def symbol(self, query: dict, _name: str) -> Response:
        return Response(200, b"num_symbols: 0\n", TEXT, {"X-Content-Type-Options": "nosniff"})

    def _seconds_cap(self, sec: int) -> Response | None:
        if sec > self.cfg.max_seconds:
            return pprof_error(400, f"profile duration exceeds server's maximum ({sec} s > --max-seconds "
                                    f"{self.cfg.max_seconds})")
        return None

    def _busy(self, t, until: float, what: str) -> Response:
        left = max(1, math.ceil(until - time.monotonic()))
        return pprof_error(429, f"a {what} of pid {t.pid} is already running; retry in {left} s",
                           **{"Retry-After": str(left)})

    def _failed(self, t, what: str, exc: PerfkitError) -> Response:
        if isinstance(exc, (NoSuchProcess, TargetExited)):
            return pprof_error(404, f"pid {t.pid}: {exc.message}")
        return pprof_error(500, f"Could not {what}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))

    def cpu(self, query: dict, _name: str) -> Response:
        from perfkit.formats import pprof

        sec = _parse_int(_first(query, "seconds")) or 0
        if sec <= 0:
            sec = 30
        bad = self._seconds_cap(sec)
        if bad:
            return bad
        t, err = self._target(query)
        if err:
            return err
        if not t.cpu_lock.acquire(blocking=False):
            return self._busy(t, t.cpu_busy_until, "CPU profile")
        try:
            t.cpu_busy_until = time.monotonic() + sec + 2
            prof = self.profiles.cpu(t.pid, sec, rate=self.cfg.rate, should_stop=self.shutdown.is_set,
                                     redact=self.cfg.redact)
            return attachment(pprof.write(prof, extra_labels=self.cfg.labels), "profile")
        except PerfkitError as exc:
            return self._failed(t, "enable CPU profiling", exc)
        finally:
            t.cpu_busy_until = 0.0
            t.cpu_lock.release()

    def _delta_and_target(self, query: dict):
        """(?seconds= of a delta profile, the ?pid= target, the 400/404 response if either is bad)."""
        sec, err = self._delta_seconds(query)
        if err:
            return None, None, err
        t, err = self._target(query)
        return sec, t, err

    def _delta_seconds(self, query: dict) -> tuple[int | None, Response | None]:
        raw = _first(query, "seconds")
        if raw == "":
            return None, None
        sec = _parse_int(raw) or 0
        if sec <= 0:
            return None, pprof_error(400, 'invalid value for "seconds" - must be a positive integer')
        bad = self._seconds_cap(sec)
        if bad:
            return None, bad
        if _atoi(_first(query, "debug")) != 0:
            return None, pprof_error(400, "seconds and debug params are incompatible")
        return sec, None

    def goroutine(self, query: dict, _name: str) -> Response:
        from perfkit.formats import pprof

        sec, t, err = self._delta_and_target(query)
        if err:
            return err
        debug = _atoi(_first(query, "debug"))
        try:
            started = time.time()
            first = self.profiles.dump(t.pid)
            if sec is not None:
                self.shutdown.wait(sec)
                second = self.profiles.dump(t.pid)
                prof = self.profiles.goroutine_profile(second, before=first, seconds=time.time() - started,
                                                       started=started)
                return attachment(pprof.write(prof, extra_labels=self.cfg.labels), "goroutine-delta")
        except PerfkitError as exc:
            return self._failed(t, "dump the threads", exc)
        if debug != 0:
            body = self.profiles.goroutine_text(first, debug, pid=t.pid)
            return Response(200, body.encode("utf-8", "backslashreplace"), TEXT, {"X-Content-Type-Options": "nosniff"})
        prof = self.profiles.goroutine_profile(first, started=started)
        return attachment(pprof.write(prof, extra_labels=self.cfg.labels), "goroutine")

    def heap(self, query: dict, name: str) -> Response:
        from perfkit.formats import pprof

        if not self.cfg.allow_heap:
            return pprof_error(403, f"{name} profiles are off: start perfkit serve with --allow-heap "
                                    "(memray attach runs code inside the target)")
        sec, t, err = self._delta_and_target(query)
        if err:
            return err
        sec = sec or self.cfg.heap_seconds
        if not t.heap_lock.acquire(blocking=False):
            return self._busy(t, t.heap_busy_until, "heap capture")
        try:
            t.heap_busy_until = time.monotonic() + sec + 10
            prof = self.profiles.heap(t.pid, sec, kind=name, redact=self.cfg.redact)
        except PerfkitError as exc:
            return self._failed(t, "capture the heap", exc)
        finally:
            t.heap_busy_until = 0.0
            t.heap_lock.release()
        if _atoi(_first(query, "debug")) != 0:
            return Response(200, self.profiles.heap_text(prof, kind=name).encode("utf-8", "backslashreplace"), TEXT,
                            {"X-Content-Type-Options": "nosniff"})
        return attachment(pprof.write(prof, extra_labels=self.cfg.labels), name if not _first(query, "seconds")
                          else f"{name}-delta")

    # ------------------------------------------------------------------ perfkit's own
    def prometheus(self, accept: str | None) -> Response:
        body, ctype = self.metrics.render(accept)
        return Response(200, body, ctype)

    def capture_files(self, path: str) -> Response:
        rest = path[len("/debug/perfkit/captures"):].strip("/")
        if not rest:
            return as_json({"enabled": self.captures.enabled, "captures": self.captures.listing()})
        name, _, fname = rest.partition("/")
        if not fname:
            item = next((c for c in self.captures.listing() if c["name"] == name), None)
            return as_json(item) if item else text(404, NOT_FOUND)
        data = self.captures.file(name, fname)
        if data is None:
            return text(404, NOT_FOUND)
        ctype = JSON if fname.endswith(".json") else TEXT if fname.endswith(".txt") else BINARY
        return Response(200, data, ctype, {"Content-Disposition": f'attachment; filename="{fname}"'}
                        if ctype == BINARY else {})

    def alertmanager(self, body: bytes) -> Response:
        try:
            doc = json.loads(body.decode("utf-8"))
            return as_json(self.captures.alert(doc, self.targets))
        except (ValueError, UnicodeDecodeError) as exc:
            return text(400, f"not an Alertmanager webhook payload: {exc}")
