"""Captures on trigger: a bundle (CPU profile, thread dump, the metrics window; heap
only with ``--allow-heap``) written when a condition holds or Alertmanager calls.

Conditions (``--capture-on``, repeatable, any may trigger)::

    rss>2GiB   pss>=1.5G   uss>800MiB   threads>500   fds>1000   sockets>200
    children>16   cpu>90      (percent of one core since the previous reading)
    fds>90%    rss>80%        (share of RLIMIT_NOFILE / of the memory limit)
    leak=threads              (the window's leak verdict for that resource)

Rate limits: at most one capture per target every ``min_interval`` seconds, at most
``max_per_hour`` in all, one at a time (a single worker thread).  Bundles are
directories ``DIR/20260101T120000Z-pid4242-threads`` (0700, files 0600, written under
a temporary name and renamed when complete); only the newest ``keep`` are kept.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass

from perfkit.errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "ki": 1024, "kib": 1024, "mi": 1024 ** 2, "mib": 1024 ** 2, "gi": 1024 ** 3, "gib": 1024 ** 3,
          "ti": 1024 ** 4, "tib": 1024 ** 4}
_MEMORY = {"rss", "pss", "uss"}
_COUNTS = {"threads", "fds", "sockets", "children", "cpu"}
_COND = re.compile(r"^\s*([a-z]+)\s*(>=|<=|>|<|=)\s*([0-9.]+|[a-z]+)\s*([a-z]*|%)\s*$", re.I)
_NAME = re.compile(r"^\d{8}T\d{6}Z-pid\d+-[a-z0-9_.-]+$")
RESOURCES = ("memory", "threads", "fds", "sockets", "children")


@dataclass(frozen=True)
class Condition:
    text: str
    metric: str
    op: str
    value: float | str
    relative: bool = False  # value is a share of the limit

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.metric.lower()).strip("-")

    def holds(self, reading, state) -> bool:
        if self.metric == "leak":
            v = state.verdicts.get(self.value)
            return v is not None and v.verdict == "leak"
        x = _value(self.metric, reading, state)
        if x is None:
            return False
        if self.relative:
            limit = state.fd_limit if self.metric == "fds" else state.memory_limit
            if not limit:
                return False
            x = 100.0 * x / limit
        y = float(self.value)
        return {">": x > y, ">=": x >= y, "<": x < y, "<=": x <= y, "=": x == y}[self.op]


def _value(metric: str, reading, state):
    s = reading.sample
    if metric == "cpu":
        prev = [r for r in list(state.window)[-2:-1]]
        if not prev or prev[0].cpu_s is None or reading.cpu_s is None:
            return None
        dt = s.t - prev[0].sample.t
        return 100.0 * (reading.cpu_s - prev[0].cpu_s) / dt if dt > 0 else None
    return {"rss": s.rss, "pss": s.pss, "uss": s.uss, "threads": s.threads, "fds": s.fds, "sockets": s.sockets,
            "children": s.children}.get(metric)


def parse_condition(text: str) -> Condition:
    m = _COND.match(text)
    hint = "e.g. --capture-on 'rss>2GiB' --capture-on 'threads>500' --capture-on 'fds>90%' --capture-on leak=threads"
    if not m:
        raise UsageError(f"--capture-on {text!r} is not METRIC>VALUE", hint)
    metric, op, raw, unit = m.group(1).lower(), m.group(2), m.group(3), m.group(4).lower()
    if metric == "leak":
        if op != "=" or raw.lower() not in RESOURCES:
            raise UsageError(f"--capture-on {text!r}: use leak=RESOURCE ({', '.join(RESOURCES)})", hint)
        return Condition(text, "leak", "=", raw.lower())
    if metric not in _MEMORY | _COUNTS:
        raise UsageError(f"--capture-on {text!r}: unknown metric {metric!r}",
                         f"one of: {', '.join(sorted(_MEMORY | _COUNTS))}, leak=RESOURCE")
    try:
        number = float(raw)
    except ValueError:
        raise UsageError(f"--capture-on {text!r}: {raw!r} is not a number", hint) from None
    if unit == "%":
        if metric not in ("rss", "pss", "uss", "fds"):
            raise UsageError(f"--capture-on {text!r}: a % applies to memory (of its limit) and fds (of RLIMIT_NOFILE)")
        return Condition(text, metric, op, number, relative=True)
    if unit and (metric not in _MEMORY or unit not in _UNITS):
        raise UsageError(f"--capture-on {text!r}: unknown unit {unit!r}", "memory units: KiB MiB GiB (or K M G)")
    return Condition(text, metric, op, number * _UNITS.get(unit, 1))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")[:40] or "manual"


class Captures:
    def __init__(self, directory: str | None, *, conditions: list[Condition], keep: int = 20,
                 min_interval: float = 300.0, max_per_hour: int = 12, seconds: int = 10, allow_heap: bool = False,
                 collector=None, profiles=None, metrics=None, redact: bool = True) -> None:
        self.dir = directory or ""  # "": captures are off
        self.conditions = conditions
        self.keep, self.min_interval, self.max_per_hour = keep, min_interval, max_per_hour
        self.seconds, self.allow_heap = seconds, allow_heap
        self.collector, self.profiles, self.metrics, self.redact = collector, profiles, metrics, redact
        self.last: dict[int, float] = {}
        self.recent: list[float] = []
        self.pending: set[int] = set()
        self.q: queue.Queue = queue.Queue(maxsize=16)
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self._worker: threading.Thread | None = None
        self.skipped = 0

    @property
    def enabled(self) -> bool:
        return bool(self.dir)

    def start(self) -> None:
        if self.enabled:
            from perfkit.fileio import private_mkdir

            private_mkdir(self.dir)
            self._worker = threading.Thread(target=self._run, name="perfkit-serve-captures", daemon=True)
            self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        if self._worker is not None:
            self.q.put(None)
            self._worker.join(timeout)

    # ------------------------------------------------------------------ triggers
    def on_reading(self, target, reading) -> None:
        if not self.enabled or not self.conditions:
            return
        st = target.state
        for c in self.conditions:
            if c.metric == "leak":
                self.collector.verdicts(target)
            if c.holds(reading, st):
                self.trigger(target, c.slug if c.metric != "leak" else f"leak-{c.value}", c.text)
                return

    def trigger(self, target, trigger: str, why: str) -> str:
        """Queue a capture of ``target``; "queued", or why not (rate limits)."""
        now = time.monotonic()
        with self._lock:
            if not self.enabled:
                return "captures are off (no --capture-dir)"
            if target.pid in self.pending:
                return "a capture of this pid is already queued"
            if now - self.last.get(target.pid, -1e18) < self.min_interval:
                self.skipped += 1
                return f"rate-limited: one capture per pid every {self.min_interval:g} s"
            self.recent = [t for t in self.recent if now - t < 3600]
            if len(self.recent) >= self.max_per_hour:
                self.skipped += 1
                return f"rate-limited: at most {self.max_per_hour} captures per hour"
            try:
                self.q.put_nowait((target, trigger, why))
            except queue.Full:
                return "the capture queue is full"
            self.last[target.pid] = now
            self.recent.append(now)
            self.pending.add(target.pid)
        return "queued"

    def _run(self) -> None:
        while not self.stop_event.is_set():
            item = self.q.get()
            if item is None:
                return
            target, trigger, why = item
            try:
                self.write(target, trigger, why)
                if self.metrics is not None:
                    kind = trigger.split("-")[0] if trigger.startswith("alert") else trigger
                    self.metrics.captures.labels(kind).inc()
            except Exception:
                if self.metrics is not None:
                    self.metrics.capture_errors.inc()
            finally:
                with self._lock:
                    self.pending.discard(target.pid)

    # ------------------------------------------------------------------ the bundle
    def write(self, target, trigger: str, why: str) -> str:
        from perfkit.errors import PerfkitError
        from perfkit.fileio import atomic_write, private_mkdir
        from perfkit.formats import pprof

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{stamp}-pid{target.pid}-{_slug(trigger)}"
        final = os.path.join(self.dir, name)
        tmp = os.path.join(self.dir, f".tmp-{name}")
        private_mkdir(tmp)
        files, errors = [], {}

        def put(fname: str, data) -> None:
            atomic_write(os.path.join(tmp, fname), data)
            files.append(fname)

        try:
            try:
                stacks = self.profiles.dump(target.pid)
                from perfkit.serve.profiles import goroutine_text

                put("threads.txt", goroutine_text(stacks, 2, pid=target.pid))
                put("threads.json", json.dumps([s.to_json() for s in stacks], indent=1, default=str))
            except PerfkitError as exc:
                errors["threads"] = exc.message
            if self.stop_event.is_set():
                errors["cpu"] = "perfkit serve was stopping"
            elif target.cpu_lock.acquire(blocking=False):
                try:
                    target.cpu_busy_until = time.monotonic() + self.seconds
                    prof = self.profiles.cpu(target.pid, self.seconds, should_stop=self.stop_event.is_set,
                                             redact=self.redact)
                    put("cpu.pb.gz", pprof.write(prof))
                except PerfkitError as exc:
                    errors["cpu"] = exc.message
                finally:
                    target.cpu_busy_until = 0.0
                    target.cpu_lock.release()
            else:
                errors["cpu"] = "a CPU profile of this pid was already running"
            if self.allow_heap and not self.stop_event.is_set():
                if target.heap_lock.acquire(blocking=False):
                    try:
                        prof = self.profiles.heap(target.pid, self.seconds, kind="heap", redact=self.redact)
                        put("heap.pb.gz", pprof.write(prof))
                    except PerfkitError as exc:
                        errors["heap"] = exc.message
                    finally:
                        target.heap_lock.release()
                else:
                    errors["heap"] = "a heap capture of this pid was already running"
            if self.collector is not None:
                verdicts = {k: v.to_json() for k, v in self.collector.verdicts(target).items()}
                put("metrics.json", json.dumps({"interval_s": self.collector.interval,
                                                "window_s": self.collector.window,
                                                "samples": self.collector.series(target), "verdicts": verdicts},
                                               default=str))
            manifest = {"name": name, "trigger": trigger, "why": why, "time": time.time(), "target": target.to_json(),
                        "files": sorted(files + ["manifest.json"]), "errors": errors,
                        "heap": "captured" if "heap.pb.gz" in files else
                                ("off (--allow-heap not given)" if not self.allow_heap else "failed")}
            put("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
            os.replace(tmp, final)
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        self._retain()
        return name

    def _retain(self) -> None:
        names = sorted(n for n in os.listdir(self.dir) if _NAME.match(n))
        for old in names[:-self.keep] if self.keep > 0 else names:
            shutil.rmtree(os.path.join(self.dir, old), ignore_errors=True)

    # ------------------------------------------------------------------ listing
    def listing(self) -> list[dict]:
        if not self.enabled or not os.path.isdir(self.dir):
            return []
        out = []
        for n in sorted((n for n in os.listdir(self.dir) if _NAME.match(n)), reverse=True):
            try:
                with open(os.path.join(self.dir, n, "manifest.json")) as f:
                    m = json.load(f)
            except (OSError, ValueError):
                continue
            out.append({"name": n, "trigger": m.get("trigger"), "why": m.get("why"), "time": m.get("time"),
                        "pid": (m.get("target") or {}).get("pid"), "files": m.get("files"),
                        "errors": m.get("errors"), "href": f"/debug/perfkit/captures/{n}/"})
        return out

    def file(self, name: str, fname: str) -> bytes | None:
        """A file of a bundle (names checked: no path can leave the capture directory)."""
        if not self.enabled or not _NAME.match(name) or not re.match(r"^[a-z0-9_.-]+$", fname) or fname.startswith("."):
            return None
        path = os.path.join(self.dir, name, fname)
        try:
            if os.path.islink(path) or not os.path.isfile(path):
                return None
            with open(path, "rb") as f:
                return f.read(64 << 20)
        except OSError:
            return None

    # ------------------------------------------------------------------ Alertmanager
    def alert(self, doc, targets) -> dict:
        """An Alertmanager webhook payload: capture every firing alert's pid that is served."""
        accepted: list[dict] = []
        ignored: list[dict] = []
        alerts = doc.get("alerts") if isinstance(doc, dict) else None
        if not isinstance(alerts, list):
            raise ValueError("not an Alertmanager webhook payload (no alerts list)")
        for a in alerts[:100]:
            if not isinstance(a, dict):
                continue
            raw = a.get("labels")
            labels: dict = raw if isinstance(raw, dict) else {}
            name = str(labels.get("alertname") or "alert")
            pid_text = str(labels.get("pid") or "")
            if a.get("status", "firing") != "firing":
                ignored.append({"alertname": name, "pid": pid_text, "why": "resolved"})
                continue
            t = targets.get(int(pid_text)) if pid_text.isdigit() else None
            if t is None:
                ignored.append({"alertname": name, "pid": pid_text, "why": "no served target with that pid"})
                continue
            result = self.trigger(t, f"alert-{_slug(name)}", f"Alertmanager: {name}")
            (accepted if result == "queued" else ignored).append({"alertname": name, "pid": t.pid, "why": result})
        return {"accepted": accepted, "ignored": ignored}
