"""austin's text output (``austin -o FILE``, https://github.com/P403n1x87/austin).

Each line is one sample of one thread, root first::

    # austin: 3.7.0
    # interval: 10000
    # mode: wall
    P4317;T0:4319;/app/main.py:<module>:12;/app/work.py:spin:4 10086

``P<pid>`` and ``T<interpreter>:<thread id>`` become labels (never frames); every other
field is a frame ``file:function:line`` (split from the right, so a Windows drive's
``:`` stays in the file).  The metric after the last space depends on ``# mode:``:

* ``wall`` / ``cpu``: microseconds of that sample → ``samples/count`` and
  ``wall|cpu/nanoseconds``;
* ``memory``: bytes allocated (negative deltas, frees, are not counted) →
  ``samples/count`` and ``memory/bytes``;
* ``full`` (``-f``): ``time,idle,memory`` → ``wall``, ``cpu`` (time of non-idle
  samples) and ``memory``.

Each thread's samples keep their order on a ``ticks`` timeline (back to back, each as
long as its metric).  austin's binary MOJO format (``-b``) is not read: run austin
without ``-b``, or convert with austin-python's ``mojo2austin``.
"""

from __future__ import annotations

import re

from perfkit.errors import InputFormatError
from perfkit.formats import limits
from perfkit.model import SAMPLES, Frame, Labels, Profile, ProfileBuilder, Recording, ValueType

NAME = "austin"
EXPECTED = "austin output: lines of 'P<pid>;T<iid>:<tid>;file:function:line;... METRIC'"
_LINE = re.compile(r"^P(\d+);T(\w+):(\w+)((?:;[^\n]*)?) (-?\d+(?:,-?\d+)*)$")
_META = re.compile(r"^# (\w[\w ]*): (.*)$")


def sniff(data: bytes) -> bool:
    head = data[:4096].decode("utf-8", "replace")
    if head.startswith("# austin:"):
        return True
    first = next((ln for ln in head.splitlines() if ln.strip() and not ln.startswith("#")), "")
    return bool(re.match(r"^P\d+;T\w+:\w+[; ]", first))


def _types(mode: str) -> list[ValueType]:
    if mode == "memory":
        return [SAMPLES, ValueType("memory", "bytes")]
    if mode == "full":
        return [SAMPLES, ValueType("wall", "nanoseconds"), ValueType("cpu", "nanoseconds"),
                ValueType("memory", "bytes")]
    return [SAMPLES, ValueType("cpu" if mode == "cpu" else "wall", "nanoseconds")]


def _frame(text: str) -> Frame:
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[2].lstrip("-").isdigit():
        return Frame(parts[1], parts[0], max(0, int(parts[2])))
    return Frame(text)  # e.g. a native frame or austin's own markers


def read(data: bytes, source: str = "<austin>") -> Profile:
    lim = limits.current()
    limits.check_size(data, source, lim)
    limits.longest_line_ok(data, source, lim)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputFormatError(f"{source} is not UTF-8 text", f"expected {EXPECTED}") from None
    meta: dict[str, str] = {}
    lines = text.split("\n")
    for line in lines:
        m = _META.match(line.rstrip())
        if m:
            meta[m.group(1).strip()] = m.group(2).strip()
    mode = meta.get("mode", "wall")
    types = _types(mode)
    rec = Recording(kind="cpu" if mode in ("wall", "cpu", "full") else "heap", tool="austin",
                    tool_version=meta.get("austin"), source_format=NAME, python=meta.get("python"))
    try:
        interval_us = int(meta.get("interval", "0"))
    except ValueError:
        interval_us = 0
    if interval_us > 0:
        rec.period_ns = interval_us * 1000
        rec.period_type = "cpu" if mode == "cpu" else "wall"
    try:
        rec.duration_s = int(meta["duration"]) / 1e6 if "duration" in meta else None
    except ValueError:
        pass
    b = ProfileBuilder(types, rec, default_index=1)
    b.timeline_clock = "ticks"
    frame_cache: dict[str, int] = {}
    clock: dict[Labels, int] = {}
    pids = set()
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise InputFormatError(f"{source}:{lineno}: not an austin sample line", f"expected {EXPECTED}")
        pid = int(m.group(1))
        tid_text = m.group(3)
        tid = int(tid_text, 16) if not tid_text.isdigit() else int(tid_text)
        labels = Labels(pid, tid, None)
        pids.add(pid)
        stack = []
        for part in m.group(4)[1:].split(";") if m.group(4) else []:
            fid = frame_cache.get(part)
            if fid is None:
                fid = frame_cache[part] = b.frame_id(_frame(part))
            stack.append(fid)
        metrics = [int(x) for x in m.group(5).split(",")]
        if mode == "full":
            if len(metrics) != 3:
                raise InputFormatError(f"{source}:{lineno}: full mode needs time,idle,memory", f"expected {EXPECTED}")
            t_us, idle, mem = metrics
            values: tuple[int, ...] = (1, t_us * 1000, 0 if idle else t_us * 1000, max(0, mem))
            dur = t_us * 1000
        elif mode == "memory":
            values = (1, max(0, metrics[0]))
            dur = rec.period_ns or 1
        else:
            values = (1, metrics[0] * 1000)
            dur = metrics[0] * 1000
        idx = b.add_ids(tuple(stack), values, labels)
        t = clock.get(labels, 0)
        b.seen(idx, t, max(0, dur))
        clock[labels] = t + max(0, dur)
    prof = b.build()
    if not prof.samples:
        raise InputFormatError(f"{source} holds no samples", f"expected {EXPECTED}")
    prof.recording.processes = len(pids)
    prof.recording.threads = len(clock)
    prof.recording.samples = prof.total(0)
    return prof
