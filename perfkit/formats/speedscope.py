"""speedscope JSON (https://www.speedscope.app/file-format-schema.json).

Writing: one ``sampled`` profile per (pid, thread) label so speedscope's thread picker
works, weighted by one value type (the default, or ``value``).  When the profile keeps
its sample times (a timeline) and the value is a count or a time, the profile is
**time-ordered**: one sample per tick, in recording order, so speedscope's Time Order
view shows what ran when; otherwise one sample per distinct stack.  A ``perfkit`` member
(ignored by speedscope: the schema allows extra members) carries the value types, the
period and the recording, so a perfkit → speedscope → perfkit/pprof trip keeps a CPU
profile's ``samples`` and ``cpu`` types and ``-diff_base`` still works against the
original.  Output validates against speedscope's own schema (py-spy's does not: it
writes ``activeProfileIndex: null``).

Reading (any exporter; input bounded by :mod:`perfkit.formats.limits`):

* **py-spy**: one profile per thread (``Thread 123 "MainThread"``, ``Process 7 Thread
  123 "name"`` → labels; ``--subprocesses`` fake ``process N:"cmd"`` root frames → pid
  labels).  Weights are 1/rate seconds, so the profile gets ``samples/count`` and
  ``cpu/nanoseconds`` with that period, and a timeline on the ``ticks`` clock (each
  thread's samples in order; py-spy writes no times).
* **memray** (``memray transform speedscope``): its ``Memory`` (bytes) and
  ``Allocations`` (count) profiles over the same stacks become ``memory/bytes`` and
  ``allocations/count`` of one heap profile (peak or leaked memory, as memray was
  asked: the file does not say which).
* **pyinstrument** (``-r speedscope``) and other ``evented`` profiles: open/close
  events become samples weighted by time, with a wall-clock timeline.
* anything else: one value type per unit (``samples/count``, ``time/nanoseconds``,
  ``space/bytes``).
"""

from __future__ import annotations

import json
import re

from perfkit.errors import InputFormatError
from perfkit.formats import limits
from perfkit.model import CPU_NS, SAMPLES, Frame, Labels, Profile, ProfileBuilder, Recording, ValueType

NAME = "speedscope"
SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
MEMBER = "perfkit"

_UNITS = {"nanoseconds": "nanoseconds", "bytes": "bytes", "count": "none"}
_SCALE = {"seconds": 1e9, "milliseconds": 1e6, "microseconds": 1e3, "nanoseconds": 1}
# py-spy --subprocesses puts the process in a fake root frame: `process 123:"cmd"`.
_PYSPY_PROCESS_FRAME = re.compile(r'^process (\d+):"(.*)"$', re.S)
_NAME_RE = re.compile(r'^(?:Process (?P<pid>\d+) )?Thread (?P<tid>\d+)(?: "(?P<name>.*)")?$', re.S)


def _label_name(labels: Labels, fallback: str) -> str:
    parts = []
    if labels.pid is not None:
        parts.append(f"Process {labels.pid}")
    if labels.tid is not None:
        parts.append(f"Thread {labels.tid}")
        parts.append(json.dumps(labels.thread or "", ensure_ascii=False))
    elif labels.thread:
        parts.append(f"Thread {json.dumps(labels.thread, ensure_ascii=False)}")
    return " ".join(parts) or fallback


def _timed_weights(profile: Profile, vi: int):
    """Per-event weights for a time-ordered profile, or None when the value cannot be timed."""
    timeline = profile.live_timeline()
    if timeline is None or not timeline.covers(profile.samples, vi):
        return None
    vt = profile.sample_types[vi]
    if vt.unit == "count":
        return [1] * len(timeline)
    if vt.unit == "nanoseconds":
        return timeline.durations(profile.recording.period_ns)
    return None


def write(profile: Profile, value: str | None = None) -> bytes:
    vi = profile.value_index(value)
    vt = profile.sample_types[vi]
    unit = _UNITS.get(vt.unit, "none")
    used: dict[int, int] = {}
    frames_out: list[dict] = []

    def fid(i: int) -> int:
        j = used.get(i)
        if j is None:
            f = profile.frames[i]
            j = used[i] = len(frames_out)
            entry: dict[str, str | int] = {"name": f.function}
            if f.file:
                entry["file"] = f.file
            if f.line:
                entry["line"] = f.line
            frames_out.append(entry)
        return j

    fallback = profile.recording.name or "perfkit profile"
    weights_t = _timed_weights(profile, vi)
    by_label: dict[Labels, tuple[list, list]] = {}
    if weights_t is not None:  # time-ordered: one sample per tick, in recording order
        timeline = profile.live_timeline()
        assert timeline is not None  # _timed_weights found one
        starts: dict[Labels, int] = {}
        for k, si in enumerate(timeline.index):
            s = profile.samples[si]
            stacks, weights = by_label.setdefault(s.labels, ([], []))
            starts.setdefault(s.labels, timeline.start_ns[k])
            stacks.append(s.stack)
            weights.append(weights_t[k])
    else:
        starts = {}
        for s in sorted(profile.samples, key=lambda s: s.stack):
            if s.values[vi]:
                stacks, weights = by_label.setdefault(s.labels, ([], []))
                stacks.append(s.stack)
                weights.append(s.values[vi])
    profiles = []
    ordered = sorted(by_label.items(), key=lambda kv: (-sum(kv[1][1]), kv[0].pid or 0, kv[0].tid or 0,
                                                       kv[0].thread or ""))
    for labels, (stacks, weights) in ordered:
        start = starts.get(labels, 0) if vt.unit == "nanoseconds" else 0
        profiles.append({
            "type": "sampled",
            "name": _label_name(labels, fallback),
            "unit": unit,
            "startValue": start,
            "endValue": start + sum(weights),
            "samples": [[fid(i) for i in stack] for stack in stacks],
            "weights": weights,
        })
    rec = profile.recording
    doc = {
        "$schema": SCHEMA_URL,
        "shared": {"frames": frames_out},
        "profiles": profiles,
        "name": str(rec.name or f"perfkit {vt.type} profile"),
        "activeProfileIndex": 0,
        "exporter": "perfkit",
        MEMBER: {"value_types": [[t.type, t.unit] for t in profile.sample_types], "value": vi,
                 "default_index": profile.default_index, "time_ordered": weights_t is not None,
                 "recording": rec.to_json()},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sniff(data: bytes) -> bool:
    head = data[:8192].lstrip()
    return head[:1] == b"{" and b"speedscope" in data[:65536]


def _labels_from_name(name: str) -> Labels:
    m = _NAME_RE.match(name or "")
    if not m:
        return Labels()
    pid = int(m.group("pid")) if m.group("pid") else None
    name = m.group("name")
    if name is not None and "\\" in name:
        try:  # perfkit writes the name JSON-quoted; py-spy writes it raw
            name = json.loads(f'"{name}"')
        except ValueError:
            pass
    return Labels(pid=pid, tid=int(m.group("tid")), thread=name)


def _load(data: bytes, source: str) -> dict:
    limits.check_size(data, source)
    limits.check_json_depth(data, source)
    expected = "a speedscope JSON file"
    try:
        doc = json.loads(data)
        frames_raw = doc["shared"]["frames"]
        profiles = doc["profiles"]
        if not isinstance(profiles, list) or not isinstance(frames_raw, list):
            raise TypeError("profiles/frames must be lists")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InputFormatError(f"{source} is not a valid speedscope file ({type(exc).__name__})",
                               f"expected {expected}") from None
    return doc


def read(data: bytes, source: str = "<speedscope>") -> Profile:
    doc = _load(data, source)
    try:
        return _read(doc)
    except InputFormatError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise InputFormatError(f"{source} is a damaged speedscope file ({exc})",
                               "expected a speedscope JSON file") from None


class _Types:
    """The value types of a speedscope file and how each profile's weights map onto them."""

    def __init__(self, doc: dict) -> None:
        self.exporter = str(doc.get("exporter") or "")
        self.pyspy = self.exporter.startswith("py-spy")
        self.memray = self.exporter.startswith("memray")
        ours = doc.get(MEMBER) if self.exporter == "perfkit" else None
        self.ours = ours if isinstance(ours, dict) else None
        self.types: list[ValueType] = []
        self.period_ns: int | None = None
        self.default_index = 0
        if self.ours is not None:
            self.types = [ValueType(str(t), str(u)) for t, u in self.ours["value_types"]]
            self.written = int(self.ours["value"])
            if not 0 <= self.written < len(self.types):
                raise ValueError("perfkit member names a missing value type")
            di = self.ours.get("default_index", 0)
            self.default_index = di if isinstance(di, int) and 0 <= di < len(self.types) else 0
        elif self.pyspy:
            self.types = [SAMPLES, CPU_NS]
            self.default_index = 1

    def index_for(self, profile: dict) -> int:
        """The value type a foreign profile's weights go to (created on first use)."""
        unit = str(profile.get("unit", "none"))
        if self.memray:
            vt = ValueType(str(profile.get("name") or "memory").lower(), "bytes" if unit == "bytes" else "count")
        elif unit == "bytes":
            vt = ValueType("space", "bytes")
        elif unit in _SCALE:
            vt = ValueType("time", "nanoseconds")
        else:
            vt = SAMPLES
        if vt not in self.types:
            self.types.append(vt)
        return self.types.index(vt)


def _read(doc: dict) -> Profile:
    frames = [Frame(str(f["name"]), str(f.get("file") or ""), int(f.get("line") or 0)) for f in doc["shared"]["frames"]]
    profiles = doc["profiles"]
    types = _Types(doc)
    if not types.pyspy and types.ours is None:
        for p in profiles:  # fix the foreign types in file order before building
            types.index_for(p)
    rec = Recording.from_json(types.ours.get("recording")) if types.ours and isinstance(
        types.ours.get("recording"), dict) else Recording()
    rec.source_format = NAME
    if types.ours is None:
        rec.name = str(doc["name"]) if doc.get("name") else None
        rec.tool = types.exporter or None
        if types.memray:
            rec.kind = "heap"
        elif types.pyspy:
            rec.kind = "cpu"
    b = ProfileBuilder(types.types or [SAMPLES], rec, types.default_index)
    n = len(frames)
    process_frames = {}
    if types.pyspy:
        for i, f in enumerate(frames):
            m = _PYSPY_PROCESS_FRAME.match(f.function)
            if m and not f.file:
                process_frames[i] = int(m.group(1))
    timed = types.pyspy or bool(types.ours and types.ours.get("time_ordered"))
    if timed:  # a sampled profile's samples lie back to back: each thread's own sampled-time clock
        b.timeline_clock = "ticks"
    periods: list[int] = []
    for p in profiles:
        labels = _labels_from_name(str(p.get("name", "")))
        if p.get("type") == "sampled":
            _read_sampled(b, p, n, labels, types, process_frames, timed, periods)
        elif p.get("type") == "evented":
            unit = str(p.get("unit", "none"))
            vi = types.index_for(p) if types.ours is None else types.written
            _read_evented(b, p, n, _SCALE.get(unit, 1), labels, vi, len(b.sample_types))
        else:
            raise ValueError(f"unknown profile type {p.get('type')!r}")
    if types.pyspy and periods:
        b.recording.period_ns = min(periods)
        b.recording.period_type = "cpu"
    b.recording.extra.setdefault("source_unit", ",".join(sorted({str(p.get("unit", "none")) for p in profiles})))
    if types.ours is not None:
        b.recording.extra.pop("source_unit", None)
    prof = b.build()
    return _with_frames(prof, frames)


def _read_sampled(b: ProfileBuilder, p: dict, n: int, labels: Labels, types: _Types, process_frames: dict,
                  timed: bool, periods: list[int]) -> None:
    samples = p["samples"]
    weights = p.get("weights") or [1] * len(samples)
    if len(weights) != len(samples):
        raise ValueError("samples and weights differ in length")
    unit = str(p.get("unit", "none"))
    scale = _SCALE.get(unit, 1)
    ntypes = len(b.sample_types)
    ours = types.ours
    if ours is not None:
        vi = types.written
        period = int(b.recording.period_ns or 0)
        written_unit = b.sample_types[vi].unit
    else:
        vi = types.index_for(p) if not types.pyspy else None  # type: ignore[assignment]
    t = int(round(float(p.get("startValue", 0)) * scale)) if unit in _SCALE else 0
    timed_unit = unit in _SCALE
    tick = int(b.recording.period_ns or 1)
    add = b.add_ids
    seen_idx: list[int] = []
    seen_start: list[int] = []
    seen_dur: list[int | None] = []
    last_w: object = None
    dur: int | None = None
    values: tuple[int, ...] = ()
    for stack, w in zip(samples, weights):
        ids = tuple(map(int, stack))
        if ids and (min(ids) < 0 or max(ids) >= n):
            raise ValueError("sample refers to a missing frame")
        sample_labels = labels
        if process_frames and ids and ids[0] in process_frames:
            pid = None  # fake root frames (parent, then child process) → a real pid label
            while ids and ids[0] in process_frames:
                pid = process_frames[ids[0]]
                ids = ids[1:]
            sample_labels = Labels(labels.pid if labels.pid is not None else pid, labels.tid, labels.thread)
        if w != last_w:  # weights repeat (py-spy: 1/rate each): convert once per distinct weight
            last_w = w
            wv = float(w)
            dur = int(round(wv * scale)) if timed_unit else None
            if types.pyspy:  # py-spy weights are 1/rate seconds: one sample each
                values = (1, dur or 0)
                if dur:
                    periods.append(dur)
            elif ours is not None:
                values = _our_values(b.sample_types, vi, written_unit, wv, period, ntypes)
            else:
                values = tuple(int(round(wv * scale)) if j == vi else 0 for j in range(ntypes))
        idx = add(ids, values, sample_labels)
        if timed:
            seen_idx.append(idx)
            seen_start.append(t)
            seen_dur.append(dur)
            t += dur if dur is not None else tick
    if seen_idx:
        b.seen_many(seen_idx, seen_start, seen_dur)


def _our_values(types: list[ValueType], vi: int, written_unit: str, w: float, period: int, ntypes: int) -> tuple:
    """perfkit's own file: the written type's weight, and count ↔ time derived through the period."""
    out = []
    for j in range(ntypes):
        if j == vi:
            out.append(int(round(w)))
        elif period and written_unit == "nanoseconds" and types[j].unit == "count":
            out.append(int(round(w / period)))
        elif period and written_unit == "count" and types[j].unit == "nanoseconds":
            out.append(int(round(w * period)))
        else:
            out.append(0)
    return tuple(out)


def _with_frames(prof: Profile, frames: list[Frame]) -> Profile:
    """``add_ids`` used the file's frame indices directly: attach the file's frames."""
    prof.frames = list(frames)
    return prof


def _read_evented(b: ProfileBuilder, p: dict, n: int, scale: float, labels: Labels, vi: int, ntypes: int) -> None:
    stack: list[int] = []
    start = float(p.get("startValue", 0))
    last = start
    b.timeline_clock = "wall"
    for ev in sorted(p["events"], key=lambda e: float(e["at"])):
        at = float(ev["at"])
        if stack and at > last:
            dur = int(round((at - last) * scale))
            values = tuple(dur if j == vi else 0 for j in range(ntypes))
            idx = b.add_ids(tuple(stack), values, labels)
            b.seen(idx, int(round((last - start) * scale)), dur)
        last = at
        frame = int(ev["frame"])
        if not 0 <= frame < n:
            raise ValueError("event refers to a missing frame")
        if ev["type"] == "O":
            stack.append(frame)
        elif ev["type"] == "C":
            if not stack or stack[-1] != frame:
                raise ValueError("close event does not match the open frame")
            stack.pop()
        else:
            raise ValueError(f"unknown event type {ev['type']!r}")
