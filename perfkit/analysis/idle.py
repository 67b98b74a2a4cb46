"""Idle correction for py-spy CPU profiles: samples of waiting threads are not CPU.

py-spy decides "idle" from the thread's OS state at the moment it samples, and gets it
wrong often enough to matter (py-spy issues #92, #156, #279): a thread sleeping in
``time.sleep``, ``select``/``epoll`` or a lock is now and then counted as running, so a
sleeping main thread collects a few % of the "CPU" samples and every other share is
off by as much.  Two corrections, applied unless the profile was recorded with
``--idle`` (where waiting is what you asked to see) or ``--gil``:

1. **Known blocking calls**: a sample whose leaf frame is a blocking call outside the
   user's code — select, poll, epoll, sleep, wait, accept, recv, lock acquire and their
   native names — is idle; so is a sample whose leaf is a Python line that calls one
   of them (``time.sleep(…)``, ``event.wait(…)``, ``sock.recv(…)``, ``lock.acquire(…)``:
   without ``--native`` the C function is not a frame, the line is the leaf), read from
   the source file when perfkit can read it.
2. **/proc CPU ticks**: each thread's samples are checked against the CPU time the
   kernel charged it over the same window (``Recording.thread_cpu``, from
   ``procs.ticks``).  A thread cannot be on CPU in more samples than
   ``cpu_seconds × rate``; when it has more than that by more than sampling noise
   (3 standard deviations of a Poisson count) plus the ticks' resolution (two 1/100 s
   ticks), the excess is idle and the thread keeps ``cpu_seconds × rate`` samples,
   taken from its stacks in proportion (largest remainders).  Then each checked
   thread's CPU time (the ``cpu`` value) is set to what /proc says it used, spread over
   its stacks in proportion to its samples: py-spy's samples say *where* a thread's
   time went, the kernel says *how much* it had — on a loaded machine a runnable thread
   waiting for a core still looks "active" to a sampler, and the shares of threads and
   processes would follow wall time in that state instead of CPU time.

The rate is the requested rate, or less when py-spy fell behind (samples per CPU
second over all checked threads): py-spy falling behind never makes a busy thread look
idle.  A process whose readings do not cover the window (it exited early) is not
checked.  The result says how many samples each rule reclassified; the profile's
samples, values and recording are updated; nothing else changes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from perfkit import paths
from perfkit.model import Profile, Sample

# Leaf functions that wait: Python-level wrappers (selectors, threading, socket, queue,
# subprocess, time) and the C library / kernel names a --native stack ends in.
BLOCKING = frozenset({
    "select", "poll", "epoll", "epoll_wait", "epoll_pwait", "pselect", "pselect6", "ppoll", "kevent",
    "sleep", "nanosleep", "clock_nanosleep", "usleep",
    "wait", "wait_for", "_wait_for_tstate_lock", "waitpid", "wait4", "_try_wait", "sigwait",
    "sigtimedwait", "sigwaitinfo", "pause",
    "accept", "accept4", "_accept",
    "recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "_recv", "_recv_bytes",
    "acquire", "lock_acquire", "_acquire_restore", "futex", "futex_wait", "pthread_cond_wait",
    "pthread_cond_timedwait", "sem_wait", "sem_timedwait", "sem_clockwait", "pthread_mutex_lock",
    "pthread_join", "take_gil",
})
# (function, file ending) pairs that block only in these modules
BLOCKING_IN = frozenset({("readinto", "socket.py"), ("read", "ssl.py"), ("get", "queue.py"),
                         ("join", "threading.py")})
# names generic enough that a package may use them for real work: blocking only in
# the standard library and native code (a package's own sleep/wait/accept still count)
_STDLIB_ONLY = frozenset({"select", "poll", "recv", "acquire"})
_PREFIX = re.compile(r"^(?:__gi_|__libc_|__|_)+")
# a leaf line that calls a blocking C function (the call itself is no Python frame)
_BLOCKING_LINE = re.compile(
    r"(?:\btime\.sleep|\bsleep|\.wait|\.acquire|\.accept|\.recv(?:_into|from|from_into|msg)?|"
    r"\bselect\.(?:select|poll|epoll)|\.select|\.epoll_wait)\s*\("
    r"|\.poll\s*\(\s*[^)\s]"  # poller.poll(timeout); p.poll() returns at once
    r"|\.join\s*\(\s*(?:timeout\s*=\s*)?[\d.]*\s*\)"  # thread.join(), t.join(5); not sep.join(items)
    r"|\.get\s*\(\s*(?:(?:block|timeout)\s*=[^)]*)?\)")  # queue.get(); not d.get(key)


def _norm(name: str) -> str:
    n = name.split("@", 1)[0].split("(", 1)[0].strip().lower()
    n = n.rsplit(".", 1)[-1].rsplit("::", 1)[-1]
    return _PREFIX.sub("", n) or n


_BLOCKING_NORM = frozenset(_norm(n) for n in BLOCKING)


def is_blocking(function: str, file: str) -> bool:
    """A leaf frame that waits (see :data:`BLOCKING`); never the user's own code."""
    kind = paths.classify(file, function)
    if kind == paths.USER:
        return False
    name = _norm(function)
    if function in BLOCKING or name in _BLOCKING_NORM:
        return kind != paths.SITE or name not in _STDLIB_ONLY
    return any(function == f and file.endswith(suffix) for f, suffix in BLOCKING_IN)


def blocking_line(file: str, line: int) -> bool:
    """The source line calls a blocking function (``time.sleep(1)``, ``q.get()``, ``t.join()``).

    Not: ``", ".join(x)`` (a string join), ``d.get(key)`` (a dict), ``p.poll()`` (returns at once).
    """
    if not file or not line or not file.endswith(".py"):
        return False
    import linecache

    text = linecache.getline(file, line).split("#", 1)[0]
    return bool(text and _BLOCKING_LINE.search(text))


@dataclass
class Correction:
    blocking: int = 0  # samples whose leaf is a known blocking call
    ticks: int = 0  # samples beyond what the thread's /proc CPU time allows
    calibrated: int = 0  # threads whose CPU time was set from /proc
    threads: list[dict] = field(default_factory=list)  # per checked thread: samples, cpu_s, expected, removed
    rate: float | None = None
    skipped: str | None = None  # why the /proc cross-check did not run

    @property
    def total(self) -> int:
        return self.blocking + self.ticks

    def to_json(self) -> dict:
        return {"reclassified": self.total, "blocking_calls": self.blocking, "by_cpu_ticks": self.ticks,
                "threads_cpu_from_proc": self.calibrated,
                "rate": None if self.rate is None else round(self.rate, 2), "skipped": self.skipped,
                "threads": self.threads}

    def note(self) -> str | None:
        out = []
        if self.total:
            parts = []
            if self.blocking:
                parts.append(f"{self.blocking:,} in blocking calls")
            if self.ticks:
                parts.append(f"{self.ticks:,} beyond their thread's /proc CPU time")
            out.append(f"{self.total:,} samples reclassified as idle ({', '.join(parts)}; --idle keeps them)")
        if self.calibrated:
            out.append(f"CPU time of {self.calibrated} thread{'s' if self.calibrated != 1 else ''} from /proc")
        return " · ".join(out) or None


def _samples_index(profile: Profile) -> int:
    for i, vt in enumerate(profile.sample_types):
        if vt.type == "samples":
            return i
    return profile.default_index


def _scaled(sample: Sample, keep: int, si: int) -> Sample:
    n = sample.values[si]
    values = tuple(v if n == 0 else (keep if i == si else int(round(v * keep / n))) for i, v in
                   enumerate(sample.values))
    return Sample(sample.stack, values, sample.labels)


def correct(profile: Profile) -> tuple[Profile, Correction]:
    """The profile with idle samples removed, and what was removed (see the module docstring)."""
    from dataclasses import replace

    rec = profile.recording
    corr = Correction()
    opts = rec.options or {}
    if opts.get("idle") or opts.get("gil"):
        corr.skipped = "recorded with --idle/--gil"
        return profile, corr
    si = _samples_index(profile)
    ti = next((i for i, vt in enumerate(profile.sample_types) if vt.type == "cpu"), None)
    frames = profile.frames
    blocking_leaf = [is_blocking(f.function, f.file) or blocking_line(f.file, f.line) for f in frames]
    kept: list[Sample] = []
    origin: list[int] = []  # kept position -> index in profile.samples
    for i, s in enumerate(profile.samples):
        if s.stack and blocking_leaf[s.stack[-1]]:
            corr.blocking += s.values[si]
        else:
            kept.append(s)
            origin.append(i)
    kept, positions = _tick_check(kept, rec, si, ti, corr)
    if not corr.total and not corr.calibrated:
        return profile, corr
    new_rec = rec.copy()
    new_rec.idle_correction = corr.to_json()
    if new_rec.samples is not None:
        new_rec.samples = max(0, new_rec.samples - corr.total)
    out = replace(profile, samples=kept, recording=new_rec, timeline=None)
    timeline = profile.live_timeline()
    if timeline is not None:
        out.with_timeline(_timeline_for(timeline, [origin[p] for p in positions], kept, si,
                                        len(profile.samples)))
    return out, corr


def _timeline_for(timeline, sources: list[int], kept: list[Sample], si: int, n_old: int):
    """The recording's timeline for the corrected samples: events of removed samples go,
    and a sample whose count was lowered keeps its earliest events, one per sample left."""
    from perfkit.model import Timeline

    new_index: list[int | None] = [None] * n_old
    for new, old in enumerate(sources):
        new_index[old] = new
    left = [s.values[si] for s in kept]
    start, index, dur = [], [], []
    for k, old in enumerate(timeline.index):
        new = new_index[old]
        if new is None or left[new] <= 0:
            continue
        left[new] -= 1
        start.append(timeline.start_ns[k])
        index.append(new)
        if timeline.dur_ns is not None:
            dur.append(timeline.dur_ns[k])
    if not index:
        return None
    return Timeline(start, index, dur if timeline.dur_ns is not None else None, timeline.clock)


def _tick_check(samples: list[Sample], rec, si: int, ti: int | None, corr: Correction
                ) -> tuple[list[Sample], list[int]]:
    """(the samples left, their positions in ``samples``) after the /proc cross-check."""
    info = rec.thread_cpu or {}
    threads = info.get("threads") or []
    window = float(info.get("window_s") or 0.0)
    requested = float(rec.requested_rate or 0.0)
    if not threads or window <= 0 or requested <= 0:
        corr.skipped = "no /proc CPU readings for the sampling window"
        return samples, list(range(len(samples)))
    hz = float(info.get("hz") or 100)
    cpu = {}
    for t in threads:
        if t.get("cpu_start_s") is None or float(t.get("covered_s") or 0.0) < 0.95 * window:
            continue  # its process exited before the window closed: the readings stop early
        cpu[(t["pid"], t["tid"])] = max(0.0, float(t["cpu_end_s"]) - float(t["cpu_start_s"]))
    if not cpu:
        corr.skipped = "the /proc readings do not cover the window (the target exited early)"
        return samples, list(range(len(samples)))
    by_thread: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        key = (s.labels.pid, s.labels.tid)
        if key in cpu:
            by_thread.setdefault(key, []).append(i)
    counts = {k: sum(samples[i].values[si] for i in idx) for k, idx in by_thread.items()}
    total_cpu = sum(cpu[k] for k in counts)
    total_n = sum(counts.values())
    rate = requested if total_cpu <= 0 else min(requested, total_n / total_cpu)
    corr.rate = rate
    out = list(samples)
    drop: set[int] = set()
    for key in sorted(counts):
        n = counts[key]
        expected = cpu[key] * rate
        margin = 3.0 * math.sqrt(expected + 1.0) + rate * 2.0 / hz
        entry = {"pid": key[0], "tid": key[1], "samples": n, "cpu_s": round(cpu[key], 3),
                 "expected": round(expected, 1), "removed": 0}
        if n > expected + margin:
            keep_total = int(round(expected))
            removed = n - keep_total
            _shrink(out, by_thread[key], si, keep_total, drop)
            corr.ticks += removed
            entry["removed"] = removed
        if ti is not None:
            entry["cpu_ns_before"] = sum(out[i].values[ti] for i in by_thread[key] if i not in drop)
            if _calibrate(out, [i for i in by_thread[key] if i not in drop], ti, int(round(cpu[key] * 1e9))):
                corr.calibrated += 1
        corr.threads.append(entry)
    keep = [i for i in range(len(out)) if i not in drop]
    return [out[i] for i in keep], keep


def _calibrate(samples: list[Sample], idx: list[int], ti: int, target_ns: int) -> bool:
    """Spread ``target_ns`` of CPU over one thread's samples in proportion to their values."""
    have = sum(samples[i].values[ti] for i in idx)
    if have <= 0 or not idx:
        return False
    acc = 0
    for k, i in enumerate(idx):
        s = samples[i]
        if k == len(idx) - 1:
            v = target_ns - acc  # the rounding remainder goes to the last stack: the total is exact
        else:
            v = int(round(s.values[ti] * target_ns / have))
        acc += v
        samples[i] = Sample(s.stack, tuple(max(0, v) if j == ti else x for j, x in enumerate(s.values)), s.labels)
    return True


def _shrink(samples: list[Sample], idx: list[int], si: int, keep_total: int, drop: set[int]) -> None:
    """Scale one thread's samples to ``keep_total`` in all (largest remainders)."""
    n = sum(samples[i].values[si] for i in idx)
    if n <= 0:
        return
    shares = [(samples[i].values[si] * keep_total / n, i) for i in idx]
    base = {i: int(math.floor(x)) for x, i in shares}
    left = keep_total - sum(base.values())
    for _x, i in sorted(shares, key=lambda xi: (-(xi[0] - math.floor(xi[0])), xi[1]))[:max(0, left)]:
        base[i] += 1
    for i in idx:
        if base[i] <= 0:
            drop.add(i)
        else:
            samples[i] = _scaled(samples[i], base[i], si)
