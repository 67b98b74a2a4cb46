"""perfkit's own lossless profile file: gzipped JSON (``.perfkit``).

Record once, render many: every field of the model survives a round trip (frames,
value types, samples with labels, the recording facts, series, and the timeline of
sample times).  Version 2 stores the typed ``Recording``; version 1 files (free-form
``metadata``) still read.

The optional ``timeline`` member is compact and exact: ``{"clock": "ticks"|"wall",
"t": [start deltas in ns], "i": [sample indices], "d": [durations in ns] | null}``
(start times are delta-encoded, so ticks of a steady rate compress to almost nothing).
"""

from __future__ import annotations

import gzip
import json
import zlib

from perfkit.errors import InputFormatError
from perfkit.formats import limits
from perfkit.model import Labels, Profile, Recording, Sample, Timeline, ValueType

NAME = "perfkit"
MAGIC_KEY = "perfkit_profile"
VERSION = 2
READABLE_VERSIONS = (1, 2)


def sniff(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b":
        head = limits.gzip_head(data, 256)
        return head is not None and MAGIC_KEY.encode() in head
    return data.lstrip()[:64].find(MAGIC_KEY.encode()) >= 0


def write(profile: Profile) -> bytes:
    label_table: dict[Labels, int] = {}
    samples = []
    for s in profile.samples:
        li = label_table.setdefault(s.labels, len(label_table))
        samples.append([list(s.stack), list(s.values), li])
    doc = {
        MAGIC_KEY: VERSION,
        "sample_types": [[vt.type, vt.unit] for vt in profile.sample_types],
        "default_index": profile.default_index,
        "frames": [[f.function, f.file, f.line] for f in profile.frames],
        "labels": [[l.pid, l.tid, l.thread] for l in label_table],
        "samples": samples,
        "recording": profile.recording.to_json(),
        "series": profile.series,
    }
    timeline = profile.live_timeline()
    if timeline is not None:
        doc["timeline"] = _timeline_doc(timeline)
    # The magic key comes first (insertion order) so sniffing reads only the head.
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _timeline_doc(t: Timeline) -> dict:
    starts = list(t.start_ns)
    deltas = [b - a for a, b in zip([0] + starts, starts)]
    return {"clock": t.clock, "t": deltas, "i": list(t.index), "d": list(t.dur_ns) if t.dur_ns is not None else None}


def _timeline_from(doc) -> Timeline | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ValueError("timeline must be an object")
    starts, acc = [], 0
    for d in doc["t"]:
        acc += int(d)
        starts.append(acc)
    dur = doc.get("d")
    return Timeline(starts, [int(i) for i in doc["i"]], [int(x) for x in dur] if dur is not None else None,
                    str(doc.get("clock", "wall")))


def read(data: bytes, source: str = "<profile>") -> Profile:
    expected = "a perfkit profile (.perfkit, gzipped JSON)"
    try:
        raw = limits.gunzip(data, source) if data[:2] == b"\x1f\x8b" else data
        limits.check_size(raw, source)
        limits.check_json_depth(raw, source)
        doc = json.loads(raw)
    except InputFormatError:
        raise
    except (OSError, EOFError, zlib.error, ValueError, RecursionError) as exc:
        raise InputFormatError(f"{source} is corrupt or truncated ({type(exc).__name__})", f"expected "
                                                                                           f"{expected}") from None
    if not isinstance(doc, dict) or doc.get(MAGIC_KEY) not in READABLE_VERSIONS:
        raise InputFormatError(f"{source} is not {expected}")
    try:
        frames_raw = doc["frames"]
        from perfkit.model import Frame

        frames = [Frame(str(fn), str(file), int(line)) for fn, file, line in frames_raw]
        types = [ValueType(str(t), str(u)) for t, u in doc["sample_types"]]
        labels = [Labels(pid, tid, thread) for pid, tid, thread in doc["labels"]]
        n = len(frames)
        samples = []
        for stack, values, li in doc["samples"]:
            stack_t = tuple(int(i) for i in stack)
            if any(i < 0 or i >= n for i in stack_t) or len(values) != len(types):
                raise ValueError("sample refers to a missing frame or has the wrong number of values")
            samples.append(Sample(stack_t, tuple(int(v) for v in values), labels[li]))
        default_index = int(doc.get("default_index", 0))
        if types and not 0 <= default_index < len(types):
            raise ValueError("bad default_index")
        rec = Recording.from_json(doc.get("recording") if "recording" in doc else doc.get("metadata"))
        prof = Profile(frames=frames, sample_types=types, samples=samples, recording=rec,
                       series=dict(doc.get("series") or {}), default_index=default_index)
        return prof.with_timeline(_timeline_from(doc.get("timeline")))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputFormatError(f"{source} is a damaged perfkit profile ({exc})", f"expected {expected}") from None
