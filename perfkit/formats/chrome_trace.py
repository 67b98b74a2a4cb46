"""Chrome trace events (``.trace.json``): read by Perfetto, chrome://tracing and speedscope.

Writing (the JSON object form, ``{"traceEvents": [...]}``): each thread is a track of
nested ``B``/``E`` slices, one per frame, in time order, named by the function, with
``file:line`` as the slice's category (no ``args``: speedscope's importer would glue
them onto every frame name); ``M`` events name the process (the target) and every
thread.  Times are microseconds (fractions keep nanoseconds).

* With a timeline (``Profile.live_timeline()``) the slices are the real sequence of
  samples: on the ``ticks`` clock consecutive ticks of one stack form one slice (a
  thread's k-th sample at k x period); on the ``wall`` clock every event keeps its own
  start and length.
* Without one (an aggregated profile), each thread's distinct stacks are laid end to
  end, sorted by stack — a flame graph drawn on a time axis, marked
  ``"timeline": false`` in the ``perfkit`` member.

The value drawn is time: a ``*/nanoseconds`` type, or a count times the period.  A
profile with neither (heap bytes) is drawn with one unit as one nanosecond (a flame
graph of bytes on a time axis, ``"how": "value"`` in the ``perfkit`` member), so an
``-o`` list never loses its other files to this one.
A ``perfkit`` member (value types, period, recording) lets perfkit read its own traces
back to the same profile: tick slices are split back into ticks of the period.

Reading (bounded by :mod:`perfkit.formats.limits`): the array or object form, ``B``/``E``
and ``X`` (complete) events, ``M`` thread and process names; py-spy's ``-f chrometrace``
included (its ``args.filename``/``args.line``).  A foreign trace becomes a
``wall/nanoseconds`` profile with a wall-clock timeline: every interval in which a
thread's stack stayed the same is one event.
"""

from __future__ import annotations

import json

from perfkit.errors import InputFormatError
from perfkit.formats import limits
from perfkit.model import Frame, Labels, Profile, ProfileBuilder, Recording, ValueType

NAME = "chrometrace"
MEMBER = "perfkit"
WALL_NS = ValueType("wall", "nanoseconds")
EXPECTED = "a Chrome trace (JSON trace events, e.g. .trace.json or py-spy -f chrometrace)"


# ------------------------------------------------------------------ writing
def _time_of(profile: Profile, vi: int) -> tuple[int, str]:
    """(index of the value drawn as time, how): a nanoseconds type, else a count x period."""
    vt = profile.sample_types[vi]
    if vt.unit == "nanoseconds":
        return vi, "ns"
    for j, t in enumerate(profile.sample_types):
        if t.unit == "nanoseconds":
            return j, "ns"
    if vt.unit == "count" and profile.recording.period_ns:
        return vi, "count"
    return vi, "value"  # no time at all (heap bytes): one unit drawn as one nanosecond


def _us(ns: int) -> float | int:
    return ns // 1000 if ns % 1000 == 0 else ns / 1000


def write(profile: Profile, value: str | None = None) -> bytes:
    vi, how = _time_of(profile, profile.value_index(value))
    period = int(profile.recording.period_ns or 0)
    rec = profile.recording
    default_pid = rec.pid or 1
    tracks: dict[Labels, list[tuple[int, int, tuple[int, ...]]]] = {}  # labels -> [(start, dur, stack)]
    timeline = profile.live_timeline()
    if timeline is not None and not timeline.covers(profile.samples, vi):
        timeline = None  # some samples were never placed in time: draw the aggregate
    if timeline is not None:
        durs = timeline.durations(period)
        for k, si in enumerate(timeline.index):
            s = profile.samples[si]
            tracks.setdefault(s.labels, []).append((timeline.start_ns[k], durs[k], s.stack))
        merge = timeline.clock == "ticks"
    else:
        cursor: dict[Labels, int] = {}
        for s in sorted(profile.samples, key=lambda s: s.stack):
            v = s.values[vi] * period if how == "count" else s.values[vi]
            if v <= 0 or not s.stack:
                continue
            t = cursor.get(s.labels, 0)
            tracks.setdefault(s.labels, []).append((t, v, s.stack))
            cursor[s.labels] = t + v
        merge = False
    events: list[dict] = []
    tids: dict[Labels, tuple[int, int]] = {}
    for n, labels in enumerate(sorted(tracks, key=lambda lb: (lb.pid or 0, lb.tid or 0, lb.thread or ""))):
        tids[labels] = (labels.pid if labels.pid is not None else default_pid,
                        labels.tid if labels.tid is not None else n + 1)
    for pid in sorted({p for p, _ in tids.values()}):
        name = rec.target if pid == default_pid and rec.target else f"pid {pid}"
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "ts": 0, "args": {"name": name}})
    for labels, (pid, tid) in tids.items():
        tname = labels.thread or (f"Thread {labels.tid}" if labels.tid is not None else "samples")
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "ts": 0, "args": {"name": tname}})
    frames = profile.frames

    cats = [f.location or "python" for f in frames]

    def ev(ph: str, fi: int, ts: int | None, pid: int, tid: int) -> dict:
        e = {"ph": ph, "name": frames[fi].function, "cat": cats[fi], "pid": pid, "tid": tid, "ts": _us(ts or 0)}
        if ph == "B":
            e["frame"] = fi  # perfkit's reader: the exact frame (viewers ignore the member)
        return e

    for labels, items in tracks.items():
        pid, tid = tids[labels]
        open_stack: tuple[int, ...] = ()
        end = None
        for start, dur, stack in items:
            if open_stack and (end != start or not merge or stack != open_stack):
                keep = _common(open_stack, stack) if end == start else 0
                if stack == open_stack and not merge:
                    keep = len(stack) - 1  # same stack, new event: reopen the leaf only
                for fi in reversed(open_stack[keep:]):
                    events.append(ev("E", fi, end, pid, tid))
                open_stack = open_stack[:keep]
            for fi in stack[len(open_stack):]:
                events.append(ev("B", fi, start, pid, tid))
            open_stack = stack
            end = start + dur
        for fi in reversed(open_stack):
            events.append(ev("E", fi, end, pid, tid))
    doc = {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"exporter": "perfkit", "target": rec.target or ""},
        MEMBER: {"value_types": [[t.type, t.unit] for t in profile.sample_types], "value": vi, "how": how,
                 "default_index": profile.default_index, "timeline": timeline is not None,
                 "clock": timeline.clock if timeline is not None else None, "recording": rec.to_json(),
                 "frames": [[f.function, f.file, f.line] for f in frames]},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _common(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ------------------------------------------------------------------ reading
def sniff(data: bytes) -> bool:
    head = data[:4096].lstrip()
    if head[:1] == b"[":
        return b'"ph"' in head and (b'"ts"' in head or b'"name"' in head)
    return head[:1] == b"{" and b'"traceEvents"' in data[:65536] and b"speedscope" not in data[:4096]


def read(data: bytes, source: str = "<trace>") -> Profile:
    limits.check_size(data, source)
    limits.check_json_depth(data, source)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputFormatError(f"{source} is not valid JSON ({type(exc).__name__})", f"expected {EXPECTED}") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise InputFormatError(f"{source} holds no trace events", f"expected {EXPECTED}")
    try:
        return _read(doc, events)
    except InputFormatError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise InputFormatError(f"{source} is a damaged Chrome trace ({exc})", f"expected {EXPECTED}") from None


def _read(doc, events: list) -> Profile:
    ours = doc.get(MEMBER) if isinstance(doc, dict) and isinstance(doc.get(MEMBER), dict) else None
    exporter = None
    if isinstance(doc, dict) and isinstance(doc.get("otherData"), dict):
        exporter = doc["otherData"].get("exporter")
    if ours is not None:
        types = [ValueType(str(t), str(u)) for t, u in ours["value_types"]]
        vi = int(ours["value"])
        if not 0 <= vi < len(types):
            raise ValueError("perfkit member names a missing value type")
        rec = Recording.from_json(ours.get("recording") if isinstance(ours.get("recording"), dict) else None)
        default_index = ours.get("default_index", 0)
        default_index = default_index if isinstance(default_index, int) and 0 <= default_index < len(types) else 0
    else:
        pyspy = any(isinstance(e, dict) and e.get("cat") == "py-spy" for e in events[:50])
        types, vi, default_index = [WALL_NS], 0, 0
        rec = Recording(tool="py-spy" if pyspy else (str(exporter) if exporter else None),
                        kind="cpu" if pyspy else None)
    rec.source_format = NAME
    period = int(rec.period_ns or 0)
    split_ticks = ours is not None and ours.get("clock") == "ticks" and period > 0
    keep_timeline = ours is None or bool(ours.get("timeline"))
    b = ProfileBuilder(types, rec, default_index)
    b.timeline_clock = "ticks" if split_ticks else "wall"
    own_frames = None
    if ours is not None and isinstance(ours.get("frames"), list):
        own_frames = [b.frame_id(Frame(str(fn), str(fl), int(ln))) for fn, fl, ln in ours["frames"]]
    thread_names: dict[tuple, str] = {}
    per_thread: dict[tuple, list] = {}
    seq = 0
    for e in events:
        if not isinstance(e, dict):
            continue
        ph = e.get("ph")
        key = (e.get("pid"), e.get("tid"))
        if ph == "M":
            if e.get("name") == "thread_name" and isinstance(e.get("args"), dict):
                thread_names[key] = str(e["args"].get("name", ""))
            continue
        if ph not in ("B", "E", "X"):
            continue
        ts = int(round(float(e["ts"]) * 1000))
        lst = per_thread.setdefault(key, [])
        if ph == "X":
            dur = int(round(float(e.get("dur", 0)) * 1000))
            lst.append((ts, 1, -dur, seq, "B", e))
            lst.append((ts + dur, 0, 0, -seq, "E", e))
        else:
            lst.append((ts, 0 if ph == "E" else 1, 0, seq, ph, e))
        seq += 1
    if not per_thread:
        raise InputFormatError("the trace holds no B/E/X slices", f"expected {EXPECTED}")
    t0 = 0 if ours is not None else min(item[0] for lst in per_thread.values() for item in lst)
    count_types = [j for j, t in enumerate(types) if t.unit == "count"]
    ns_types = [j for j, t in enumerate(types) if t.unit == "nanoseconds"]
    how = ours.get("how") if ours is not None else "ns"
    for key, lst in per_thread.items():
        pid, tid = key
        labels = Labels(int(pid) if isinstance(pid, (int, float)) else None,
                        int(tid) if isinstance(tid, (int, float)) else None, thread_names.get(key))
        lst.sort(key=lambda it: (it[0], it[1], it[2], it[3]))
        stack: list[int] = []
        last = None
        for ts, _, _, _, ph, e in lst:
            if stack and last is not None and ts > last:
                _add(b, tuple(stack), last - t0, ts - last, labels, types, vi, how, period, split_ticks,
                     count_types, ns_types, keep_timeline)
            last = ts
            if ph == "B" and own_frames is not None and isinstance(e.get("frame"), int):
                stack.append(own_frames[e["frame"]])
            elif ph == "B":
                args = e.get("args") if isinstance(e.get("args"), dict) else {}
                file = args.get("file", args.get("filename", "")) or ""
                line = args.get("line") or 0
                stack.append(b.frame_id(Frame(str(e.get("name", "")), str(file), int(line))))
            elif stack:
                stack.pop()
    return b.build()


def _add(b: ProfileBuilder, stack: tuple[int, ...], start: int, dur: int, labels: Labels, types: list, vi: int,
         how: str, period: int, split_ticks: bool, count_types: list, ns_types: list, keep_timeline: bool) -> None:
    n = max(1, int(round(dur / period))) if split_ticks else 1
    step = dur // n if n else dur
    for k in range(n):
        d = step if k < n - 1 else dur - step * (n - 1)
        values = [0] * len(types)
        for j in ns_types:
            values[j] = d
        for j in count_types:
            values[j] = int(round(d / period)) if period and (how == "ns" or j == vi) else (1 if split_ticks else 0)
        if how == "value":  # no time type: the drawn value itself (one unit per nanosecond)
            values[vi] = d
        idx = b.add_ids(stack, values, labels)
        if keep_timeline:
            b.seen(idx, start + k * step, None if split_ticks else d)
