"""speedscope JSON (https://www.speedscope.app/file-format-schema.json).

Writes one ``sampled`` profile per (pid, thread) label so speedscope's thread picker
works, with the profile's default value type as weights.  Output validates against
speedscope's own schema (py-spy's does not: it writes ``activeProfileIndex: null``).

Reads sampled and evented profiles from any exporter; py-spy's profile names
(``Thread 123 "MainThread"``, ``Process 7 Thread 123 "name"``) become labels.
"""

from __future__ import annotations

import json
import re

from perfkit.errors import InputFormatError
from perfkit.model import SAMPLES, Frame, Labels, Profile, ProfileBuilder, Recording, ValueType

NAME = "speedscope"
SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"

_UNITS = {"nanoseconds": "nanoseconds", "bytes": "bytes", "count": "none"}
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


def write(profile: Profile, value: str | None = None, **_options) -> bytes:
    vi = profile.value_index(value)
    vt = profile.sample_types[vi]
    unit = _UNITS.get(vt.unit, "none")
    by_label: dict[Labels, list] = {}
    for s in profile.samples:
        if s.values[vi]:
            by_label.setdefault(s.labels, []).append(s)
    used: dict[int, int] = {}
    frames_out = []

    def fid(i: int) -> int:
        j = used.get(i)
        if j is None:
            f = profile.frames[i]
            j = used[i] = len(frames_out)
            entry = {"name": f.function}
            if f.file:
                entry["file"] = f.file
            if f.line:
                entry["line"] = f.line
            frames_out.append(entry)
        return j

    profiles = []
    ordered = sorted(by_label.items(), key=lambda kv: (-sum(s.values[vi] for s in kv[1]),
                                                       kv[0].pid or 0, kv[0].tid or 0))
    for labels, samples in ordered:
        samples = sorted(samples, key=lambda s: s.stack)
        stacks = [[fid(i) for i in s.stack] for s in samples]
        weights = [s.values[vi] for s in samples]
        total = sum(weights)
        profiles.append({
            "type": "sampled",
            "name": _label_name(labels, profile.recording.name or "perfkit profile"),
            "unit": unit,
            "startValue": 0,
            "endValue": total,
            "samples": stacks,
            "weights": weights,
        })
    doc = {
        "$schema": SCHEMA_URL,
        "shared": {"frames": frames_out},
        "profiles": profiles,
        "name": str(profile.recording.name or f"perfkit {vt.type} profile"),
        "activeProfileIndex": 0,
        "exporter": "perfkit",
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


def read(data: bytes, source: str = "<speedscope>") -> Profile:
    expected = "a speedscope JSON file"
    try:
        doc = json.loads(data)
        frames_raw = doc["shared"]["frames"]
        profiles = doc["profiles"]
        if not isinstance(profiles, list) or not isinstance(frames_raw, list):
            raise TypeError("profiles/frames must be lists")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InputFormatError(f"{source} is not a valid speedscope file ({type(exc).__name__})", f"expected {expected}") from None
    try:
        frames = [Frame(str(f["name"]), str(f.get("file") or ""), int(f.get("line") or 0)) for f in frames_raw]
        units = {p.get("unit", "none") for p in profiles}
        unit = units.pop() if len(units) == 1 else "none"
        seconds = unit in ("seconds", "milliseconds", "microseconds", "nanoseconds")
        scale = {"seconds": 1e9, "milliseconds": 1e6, "microseconds": 1e3, "nanoseconds": 1}.get(unit, 1)
        exporter = str(doc.get("exporter", ""))
        is_pyspy = exporter.startswith("py-spy")
        if is_pyspy or unit == "none":
            types = [SAMPLES]
        elif unit == "bytes":
            types = [ValueType("space", "bytes")]
        else:
            types = [ValueType("time", "nanoseconds")]
        b = ProfileBuilder(types, Recording(source_format=NAME, name=str(doc["name"]) if doc.get("name") else None,
                                            tool=exporter or None))
        n = len(frames)
        process_frames = {}
        if is_pyspy:
            for i, f in enumerate(frames):
                m = _PYSPY_PROCESS_FRAME.match(f.function)
                if m and not f.file:
                    process_frames[i] = int(m.group(1))
        for p in profiles:
            labels = _labels_from_name(str(p.get("name", "")))
            if p.get("type") == "sampled":
                samples = p["samples"]
                weights = p.get("weights") or [1] * len(samples)
                if len(weights) != len(samples):
                    raise ValueError("samples and weights differ in length")
                for stack, w in zip(samples, weights):
                    ids = tuple(int(i) for i in stack)
                    if any(i < 0 or i >= n for i in ids):
                        raise ValueError("sample refers to a missing frame")
                    sample_labels = labels
                    if is_pyspy and ids and ids[0] in process_frames:
                        # fake root frames (parent, then child process) → a real pid label
                        pid = None
                        while ids and ids[0] in process_frames:
                            pid = process_frames[ids[0]]
                            ids = ids[1:]
                        sample_labels = Labels(labels.pid if labels.pid is not None else pid, labels.tid, labels.thread)
                    if is_pyspy:
                        val = 1  # py-spy weights are 1/rate seconds: one sample each
                    elif seconds:
                        val = int(round(float(w) * scale))
                    else:
                        val = int(round(float(w)))
                    b.add_ids(ids, (val,), sample_labels)
            elif p.get("type") == "evented":
                _read_evented(b, p, n, scale if seconds else 1, labels)
            else:
                raise ValueError(f"unknown profile type {p.get('type')!r}")
        b.recording.extra["source_unit"] = unit
        return _with_frames(b.build(), frames)
    except InputFormatError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise InputFormatError(f"{source} is a damaged speedscope file ({exc})", f"expected {expected}") from None


def _with_frames(prof: Profile, frames: list[Frame]) -> Profile:
    """``add_ids`` used the file's frame indices directly: attach the file's frames."""
    prof.frames = list(frames)
    return prof


def _read_evented(b: ProfileBuilder, p: dict, n: int, scale: float, labels: Labels) -> None:
    stack: list[int] = []
    last = float(p.get("startValue", 0))
    for ev in sorted(p["events"], key=lambda e: float(e["at"])):
        at = float(ev["at"])
        if stack and at > last:
            b.add_ids(tuple(stack), (int(round((at - last) * scale)),), labels)
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
