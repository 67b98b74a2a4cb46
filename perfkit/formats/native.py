"""perfkit's own lossless profile file: gzipped JSON (``.perfkit``).

Record once, render many: every field of the model survives a round trip (frames,
value types, samples with labels, the recording facts, series).  Version 2 stores
the typed ``Recording``; version 1 files (free-form ``metadata``) still read.
"""

from __future__ import annotations

import gzip
import json
import zlib

from perfkit.errors import InputFormatError
from perfkit.model import Labels, Profile, Recording, Sample, ValueType

NAME = "perfkit"
MAGIC_KEY = "perfkit_profile"
VERSION = 2
READABLE_VERSIONS = (1, 2)


def sniff(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:4096], 256)
        except zlib.error:
            return False
        return MAGIC_KEY.encode() in head
    return data.lstrip()[:64].find(MAGIC_KEY.encode()) >= 0


def write(profile: Profile, **_options) -> bytes:
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
    # The magic key comes first (insertion order) so sniffing reads only the head.
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0)


def read(data: bytes, source: str = "<profile>") -> Profile:
    expected = "a perfkit profile (.perfkit, gzipped JSON)"
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        doc = json.loads(raw)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise InputFormatError(f"{source} is corrupt or truncated ({type(exc).__name__})", f"expected {expected}") from None
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
        return Profile(frames=frames, sample_types=types, samples=samples, recording=rec,
                       series=dict(doc.get("series") or {}), default_index=default_index)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputFormatError(f"{source} is a damaged perfkit profile ({exc})", f"expected {expected}") from None
