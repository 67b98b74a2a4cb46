"""Per-thread CPU time of a process (tree) over a window, from /proc ticks.

``TickWatch(pid, children=...)``: ``start()`` when the window opens, ``refresh()`` now
and then while it is open (so a process that exits mid-window still has its last
reading), ``stop()`` when it closes; ``to_json()`` is what a recording keeps: per
thread the CPU seconds at the start and at the last reading, the window and how much
of it the readings cover.  Reads only /proc (``proc.thread_cpu_times``): cheap, never
stops or slows the target.
"""

from __future__ import annotations

import threading
import time

from perfkit.procs import proc

HZ = 100  # USER_HZ: /proc reports CPU time in 1/100 s ticks


class TickWatch:
    def __init__(self, pid: int, *, children: bool = False, min_refresh_s: float = 0.2) -> None:
        self.pid = pid
        self.children = children
        self.min_refresh_s = min_refresh_s
        self.started: float | None = None
        self.stopped: float | None = None
        self.first: dict[tuple[int, int], float] = {}  # (pid, tid) -> CPU seconds at the start
        self.pids_at_start: set[int] = set()
        self.last: dict[tuple[int, int], float] = {}  # (pid, tid) -> CPU seconds at the last reading
        self.last_seen: dict[int, float] = {}  # pid -> monotonic time of its last reading
        self.names: dict[tuple[int, int], str] = {}
        self._last_refresh = 0.0
        self._lock = threading.Lock()  # start() may come from py-spy's output relay thread

    def _pids(self) -> list[int]:
        return [self.pid] + (proc.child_pids(self.pid) if self.children else [])

    def _read(self) -> dict[int, dict[int, tuple[float, str]]]:
        out = {}
        for p in self._pids():
            try:
                out[p] = proc.thread_cpu_times(p)
            except (proc.Gone, OSError):
                continue
        return out

    def start(self) -> None:
        with self._lock:
            if self.started is not None:
                return
            now = time.monotonic()
            snap = self._read()
            self.pids_at_start = set(snap)
            for p, threads in snap.items():
                for tid, (cpu, _name) in threads.items():
                    self.first[(p, tid)] = cpu
            self._take(snap, now)
            self.started = now

    def _take(self, snap, now: float) -> None:
        for p, threads in snap.items():
            self.last_seen[p] = now
            for tid, (cpu, name) in threads.items():
                self.last[(p, tid)] = cpu
                self.names[(p, tid)] = name
        self._last_refresh = now

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            if self.started is None or self.stopped is not None:
                return
            now = time.monotonic()
            if force or now - self._last_refresh >= self.min_refresh_s:
                self._take(self._read(), now)

    def stop(self) -> None:
        self.refresh(force=True)
        with self._lock:
            if self.started is not None and self.stopped is None:
                self.stopped = time.monotonic()

    def to_json(self) -> dict | None:
        if self.started is None:
            return None
        end = self.stopped if self.stopped is not None else time.monotonic()
        window = max(0.0, end - self.started)
        threads = []
        for key in sorted(self.last):
            p, tid = key
            new = key not in self.first
            cpu0 = 0.0 if new else self.first[key]  # a thread (or process) born during the window started at 0
            seen = self.last_seen.get(p, self.started)
            threads.append({"pid": p, "tid": tid, "name": self.names.get(key, ""), "new": new,
                            "cpu_start_s": cpu0, "cpu_end_s": self.last[key],
                            "covered_s": round(max(0.0, seen - self.started), 3)})
        return {"source": "/proc/PID/task/TID/stat utime+stime", "hz": HZ, "window_s": round(window, 3),
                "threads": threads,
                "process_names": {str(p): self.names.get((p, p), "") for p in sorted({k[0] for k in self.last})}}
