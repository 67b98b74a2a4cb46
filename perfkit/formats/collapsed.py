"""Collapsed / folded stacks (Brendan Gregg's format): ``root;caller;leaf weight``.

The format flamegraph.pl, inferno and speedscope read.  One line per distinct stack,
root first, frames written as ``function (file:line)`` like py-spy does.  The format
has no escaping, so perfkit escapes the characters that would break a line (``;``,
newlines, backslash) as ``\\x3b``, ``\\n``, ``\\\\``; the reader reverses that.
Labels (thread, pid) are not part of the format: stacks are merged across them.
"""

from __future__ import annotations

import re

from perfkit.errors import InputFormatError
from perfkit.model import SAMPLES, Frame, Labels, Profile, ProfileBuilder, ValueType

NAME = "collapsed"

_LINE = re.compile(r"^(.*\S)\s+(\d+)\s*$")
_FRAME = re.compile(r"^(.*) \(([^()]*?):(\d+)\)$")
_ESC = {"\\": "\\\\", ";": "\\x3b", "\n": "\\n", "\r": "\\r"}
_UNESC = re.compile(r"\\(\\|x3b|n|r)")
_UNESC_MAP = {"\\": "\\", "x3b": ";", "n": "\n", "r": "\r"}


def _esc(text: str) -> str:
    if not any(c in text for c in _ESC):
        return text
    return "".join(_ESC.get(c, c) for c in text)


def _unesc(text: str) -> str:
    if "\\" not in text:
        return text
    return _UNESC.sub(lambda m: _UNESC_MAP[m.group(1)], text)


def frame_text(frame: Frame) -> str:
    if frame.file:
        return _esc(f"{frame.function} ({frame.file}:{frame.line})")
    return _esc(frame.function)


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text)
    if m:
        return Frame(_unesc(m.group(1)), _unesc(m.group(2)), int(m.group(3)))
    return Frame(_unesc(text))


def write(profile: Profile, value: str | None = None, **_options) -> bytes:
    """Folded text weighted by one value type.

    Default: sample counts when the profile has them (what flamegraph.pl users
    expect from a CPU profile), else the profile's default value type.
    """
    if value is None and any(vt.type == "samples" for vt in profile.sample_types):
        value = "samples"
    vi = profile.value_index(value)
    texts = [frame_text(f) for f in profile.frames]
    merged: dict[tuple[int, ...], int] = {}
    for s in profile.samples:
        v = s.values[vi]
        if v:
            merged[s.stack] = merged.get(s.stack, 0) + v
    lines = [";".join(texts[i] for i in stack) + f" {w}" for stack, w in merged.items() if stack]
    lines.sort()
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def sniff(data: bytes) -> bool:
    head = data[:4096].decode("utf-8", errors="replace")
    first = next((ln for ln in head.splitlines() if ln.strip()), "")
    return bool(_LINE.match(first)) and not first.lstrip().startswith(("{", "[", "<?xml", "<svg", "<!", "<html"))


def read(data: bytes, source: str = "<collapsed>", value_type: ValueType = SAMPLES) -> Profile:
    expected = "collapsed stacks: lines of 'frame;frame;frame COUNT'"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputFormatError(f"{source} is not UTF-8 text", f"expected {expected}") from None
    b = ProfileBuilder([value_type], {"source_format": NAME})
    cache: dict[str, int] = {}
    n = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise InputFormatError(f"{source}:{lineno}: not a collapsed-stack line", f"expected {expected}")
        stack = []
        for part in m.group(1).split(";"):
            fid = cache.get(part)
            if fid is None:
                fid = cache[part] = b.frame_id(parse_frame(part))
            stack.append(fid)
        b.add_ids(tuple(stack), (int(m.group(2)),), Labels())
        n += 1
    if n == 0:
        raise InputFormatError(f"{source} holds no stacks", f"expected {expected}")
    return b.build()
