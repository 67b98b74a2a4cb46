r"""Collapsed / folded stacks (Brendan Gregg's format): ``root;caller;leaf weight``.

The format flamegraph.pl, inferno and speedscope read.  One line per distinct stack,
root first, frames written as ``function (file:line)`` like py-spy does.  The format has
no escaping, so names are written as they are — parentheses, brackets, quotes, spaces,
``<module>``, Go's ``runtime.(*scavengerState).init``, C++ ``ns::f(int)``, py-spy's
``thread (123)`` — except what a line truly cannot hold:

* ``;`` inside a name (it separates frames) becomes ``\x3b``, a line feed ``\n``,
  a carriage return ``\r``; a backslash is doubled only where it would otherwise
  start one of these escapes (before ``\``, ``x``, ``u``, ``n``, ``r``, or before a
  ``;`` or line break that becomes one), so Windows paths stay readable;
* whitespace at the edge of a frame and a ``#`` opening a line (a comment to
  perfkit's reader) become ``\x20`` / ``\x23``-style escapes;
* parentheses become ``\x28`` / ``\x29`` only where the frame would read back another
  way: a file such as ``0 (`` (``f (0 (:3)`` reads as function ``f (0`` in no file), or a
  file-less name shaped like a frame (``f (a.py:3)``).

perfkit's reader reverses exactly that (a round trip keeps every name); other readers
show the escapes literally in the rare names that need them.

Labels (thread, pid) are not part of the format: by default stacks are merged across
them.  ``write(..., labels=True)`` keeps them as a leading pseudo-frame
``[pid=7 tid=8 thread="MainThread"]`` (``-`` / ``null`` when unknown; the thread name
JSON-quoted) which flamegraph.pl shows as a root box and the reader turns back into
labels.  py-spy's ``raw`` output with ``--threads`` / ``--subprocesses`` is read the
same way: its ``process 12:"cmd"`` and ``thread (34): name`` root pseudo-frames become
pid / thread labels (a thread name or command line holding ``;`` is rejoined up to the
first real frame, one that ends in ``)``).
"""

from __future__ import annotations

import json
import re

from perfkit.errors import InputFormatError
from perfkit.formats import limits
from perfkit.model import NO_LABELS, SAMPLES, Frame, Labels, Profile, Recording, Sample, ValueType

NAME = "collapsed"

_LINE = re.compile(r"^(.*\S)\s+(\d+)\s*$")
_FRAME = re.compile(r"^(.*) \(([^()]*):(\d+)\)$")
_FRAME_PAREN_FILE = re.compile(r"^(.*?) \((.*):(\d+)\)$")  # a file name with parentheses
# What a line cannot hold: ';' (frame separator) and line breaks.
_ESC_TABLE = str.maketrans({";": "\\x3b", "\n": "\\n", "\r": "\\r"})
_BACKSLASH = re.compile(r"\\(?=[\\xunr;\n\r])")  # also before what becomes an escape
_UNESC = re.compile(r"\\(\\|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|n|r)")
_PYSPY_THREAD = re.compile(r"^thread \((0x[0-9a-fA-F]+|\d+)\)(?:: (.*))?$", re.S)
_PYSPY_PROCESS = re.compile(r'^process (\d+):"(.*)"$', re.S)
_UNESC_MAP = {"\\": "\\", "n": "\n", "r": "\r"}
_LABELS = re.compile(r'^\[pid=(-|\d+) tid=(-|\d+) thread=(null|".*")\]$', re.S)


def _edge(c: str) -> str:
    return f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"


def _esc(text: str) -> str:
    out = text
    if "\\" in out:
        out = _BACKSLASH.sub(r"\\\\", out)
    out = out.translate(_ESC_TABLE)
    if out:
        # leading/trailing whitespace and a leading '#' (a comment line) would be lost
        if out[0].isspace() or out[0] == "#":
            out = _edge(out[0]) + out[1:]
        if out[-1].isspace():
            # a backslash before it (left single: it preceded a space) now precedes an escape
            out = out[:-1] + ("\\" if text[-2:-1] == "\\" else "") + _edge(out[-1])
    return out


def _unesc_one(m: re.Match) -> str:
    g = m.group(1)
    if g[0] in "xu":
        return chr(int(g[1:], 16))
    return _UNESC_MAP[g]


def _unesc(text: str) -> str:
    if "\\" not in text:
        return text
    return _UNESC.sub(_unesc_one, text)


_PAREN = re.compile(r"(\\?)([()])")


def _esc_parens(text: str) -> str:
    """``(`` / ``)`` as ``\x28`` / ``\x29`` in already escaped text (a backslash before one doubled)."""
    return _PAREN.sub(lambda m: ("\\\\" if m.group(1) else "") + f"\\x{ord(m.group(2)):02x}", text)


def frame_text(frame: Frame) -> str:
    """``function (file:line)``; parentheses escaped only where the text would read back otherwise."""
    if frame.file:
        text = f"{_esc(frame.function)} ({_esc(frame.file)}:{frame.line})"
        if ("(" in frame.file or ")" in frame.file) and parse_frame(text) != frame:
            # the file's parentheses make the text read back another way ("f" in "0 (" reads
            # as "f (0" in ""): with none left in the file, the last " (" is the one written
            text = f"{_esc(frame.function)} ({_esc_parens(_esc(frame.file))}:{frame.line})"
        return text
    text = _esc(frame.function)
    if text.endswith(")") and " (" in text and parse_frame(text) != frame:
        text = _esc_parens(text)  # a name like "f (a.py:3)" is not a frame with a file
    return text


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text) or _FRAME_PAREN_FILE.match(text)
    if m:
        return Frame(_unesc(m.group(1)), _unesc(m.group(2)), int(m.group(3)))
    return Frame(_unesc(text))


def labels_text(labels: Labels) -> str:
    pid = "-" if labels.pid is None else str(labels.pid)
    tid = "-" if labels.tid is None else str(labels.tid)
    return _esc(f"[pid={pid} tid={tid} thread={json.dumps(labels.thread, ensure_ascii=False)}]")


def parse_labels(text: str) -> Labels | None:
    """The labels of a leading ``[pid=… tid=… thread=…]`` pseudo-frame, else None."""
    if not text.startswith("[pid="):
        return None
    m = _LABELS.match(_unesc(text))
    if not m:
        return None
    try:
        thread = json.loads(m.group(3))
    except ValueError:
        return None
    if thread is not None and not isinstance(thread, str):
        return None
    return Labels(None if m.group(1) == "-" else int(m.group(1)), None if m.group(2) == "-" else int(m.group(2)),
                  thread)


def _pyspy_labels(parts: list[str]) -> tuple[Labels | None, list[str]]:
    """py-spy raw's root pseudo-frames (``process N:"cmd"``…, ``thread (T): name``) → labels."""
    pid = tid = thread = None
    i = 0
    while i < len(parts) and parts[i].startswith("process "):
        text, j = parts[i], i
        while not text.endswith('"') and j + 1 < len(parts):  # a command line holding ';'
            j += 1
            text += ";" + parts[j]
        m = _PYSPY_PROCESS.match(text)
        if not m:
            break
        pid, i = int(m.group(1)), j + 1  # the innermost process is the sampled one
    if i < len(parts) and parts[i].startswith("thread ("):
        text, j = parts[i], i
        while j + 1 < len(parts) and not parts[j + 1].endswith(")") and ": " in parts[i]:
            j += 1  # a thread name holding ';': rejoin up to the first real frame
            text += ";" + parts[j]
        m = _PYSPY_THREAD.match(text)
        if m:
            raw = m.group(1)
            tid = int(raw, 16) if raw.startswith("0x") else int(raw)
            thread = m.group(2)
            i = j + 1
    if i == 0:
        return None, parts
    return Labels(pid, tid, thread), parts[i:]


def write(profile: Profile, value: str | None = None, labels: bool = False) -> bytes:
    """Folded text weighted by one value type.

    Default: sample counts when the profile has them (what flamegraph.pl users
    expect from a CPU profile), else the profile's default value type.
    """
    if value is None and any(vt.type == "samples" for vt in profile.sample_types):
        value = "samples"
    vi = profile.value_index(value)
    texts = [frame_text(f) for f in profile.frames]
    merged: dict[tuple, int] = {}
    for s in profile.samples:
        v = s.values[vi]
        if v:
            key = (s.stack, s.labels) if labels else s.stack
            merged[key] = merged.get(key, 0) + v
    if labels:
        lines = [";".join([labels_text(lb)] + [texts[i] for i in stack]) + f" {w}"
                 for (stack, lb), w in merged.items() if stack or lb != Labels()]
    else:
        lines = [";".join(texts[i] for i in stack) + f" {w}" for stack, w in merged.items() if stack]
    lines.sort()
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def sniff(data: bytes) -> bool:
    head = data[:4096].decode("utf-8", errors="replace")
    first = next((ln for ln in head.splitlines() if ln.strip()), "")
    low = first.lstrip()
    if low.startswith(("{", "<?xml", "<svg", "<!", "<html")) or (low.startswith("[") and not low.startswith("[pid=")):
        return False  # JSON / markup, not stacks ("[pid=" opens perfkit's labels frame)
    return bool(_LINE.match(first))


def _split_line(line: str) -> tuple[str, str] | None:
    """(stack text, count) of one line; a fast path for the usual single space."""
    head, sep, num = line.rpartition(" ")
    if sep and num.isdecimal():
        head = head.rstrip()
        if head and not head[-1].isspace():
            return head, num
    m = _LINE.match(line)
    return (m.group(1), m.group(2)) if m else None


_CHUNK = 8 << 20  # decoded and split a block at a time: memory stays near the input's own size
_EXPECTED = "collapsed stacks: lines of 'frame;frame;frame COUNT'"
_BARE = None  # the key of lines holding a bare count (py-spy writes " 2" for samples with no Python frame)


def _blocks(data: bytes, source: str, lim: limits.Limits):
    """(first line number, text) of newline-aligned blocks of ``data``, each checked
    against the line limit and decoded on its own (a block never splits a character)."""
    start, lineno, n = 0, 1, len(data)
    while start < n:
        end = data.rfind(b"\n", start, start + _CHUNK) + 1 if start + _CHUNK < n else n
        if end <= start:  # one line longer than a block
            end = data.find(b"\n", start + _CHUNK)
            end = n if end < 0 else end + 1
        block = data[start:end]
        if len(block) > lim.max_line:
            for length in map(len, block.split(b"\n")):
                limits.check_line(length, lineno, source, lim)
                lineno += 1
            lineno -= block.count(b"\n") + 1
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            raise InputFormatError(f"{source} is not UTF-8 text", f"expected {_EXPECTED}") from None
        del block
        yield lineno, text
        lineno += text.count("\n")
        start = end


def _count_lines(text: str, lineno: int, source: str, counts: dict) -> None:
    """Sum each distinct stack text's counts into ``counts`` (in order of first appearance)."""
    get = counts.get
    for line in text.split("\n"):
        head, sep, num = line.rpartition(" ")
        if sep and num.isdecimal() and head and head[0] != "#" and not head[-1].isspace():
            counts[head] = get(head, 0) + int(num)  # the usual line: 'a;b;c 12'
            continue
        line = line.rstrip()
        if not line or line[0] == "#":
            continue
        split = _split_line(line)
        if split is None:
            if line.strip().isdecimal():
                counts[_BARE] = get(_BARE, 0) + int(line)
                continue
            at = lineno + next(i for i, ln in enumerate(text.split("\n")) if ln.rstrip() == line)
            raise InputFormatError(f"{source}:{at}: not a collapsed-stack line", f"expected {_EXPECTED}")
        counts[split[0]] = get(split[0], 0) + int(split[1])


class _Frames:
    """Frame texts → frame ids: each distinct text parsed once, equal frames one id."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.ids: dict[Frame, int] = {}
        self.cache: dict[str, int] = {}

    def stack(self, parts: list[str]) -> tuple[int, ...]:
        get = self.cache.get
        stack = tuple(map(get, parts))
        if None not in stack:
            return stack  # type: ignore[return-value]  # no None in it
        out = list(stack)
        for i, part in enumerate(parts):
            if out[i] is None:
                fid = get(part)
                if fid is None:
                    frame = parse_frame(part)
                    fid = self.ids.get(frame)
                    if fid is None:
                        fid = self.ids[frame] = len(self.frames)
                        self.frames.append(frame)
                    self.cache[part] = fid
                out[i] = fid
        return tuple(out)  # type: ignore[arg-type]  # every None replaced


def _parse_stack(head: str, frames: _Frames) -> tuple[tuple[int, ...], Labels | None, bool]:
    """(frame ids, labels of a leading pseudo-frame or None, py-spy's labels seen) of one stack text."""
    parts = head.split(";")
    p0 = parts[0]
    if p0.startswith("[pid="):
        lb = parse_labels(p0)
        if lb is not None:
            return frames.stack(parts[1:]), lb, False
    elif p0.startswith(("thread (", "process ")):
        lb, parts = _pyspy_labels(parts)
        return frames.stack(parts), lb, lb is not None
    return frames.stack(parts), None, False


def read(data: bytes, source: str = "<collapsed>", value_type: ValueType = SAMPLES) -> Profile:
    """Lines summed per distinct text first (a dict of strings), then each distinct
    stack split once into interned frame ids; the text is decoded block by block."""
    lim = limits.current()
    limits.check_size(data, source, lim)
    frames = _Frames()
    plain: dict[tuple, int] = {}  # stack -> weight (no labels)
    labelled: dict[tuple, int] = {}  # (stack, labels) -> weight
    order: list[tuple] = []  # each key at its first appearance: the samples' order
    pyspy = False
    for lineno, text in _blocks(data, source, lim):
        counts: dict[str | None, int] = {}
        _count_lines(text, lineno, source, counts)
        del text
        for head, weight in counts.items():
            stack: tuple[int, ...]
            key: tuple
            if head is None:  # _BARE: a bare count
                stack, lb = (), None
            else:
                stack, lb, seen = _parse_stack(head, frames)
                pyspy = pyspy or seen
            if lb is None or lb == NO_LABELS:
                acc, key = plain, stack
            else:
                acc, key = labelled, (stack, lb)
            old = acc.get(key)
            if old is None:
                order.append(key)
                acc[key] = weight
            else:
                acc[key] = old + weight
    if not order:
        raise InputFormatError(f"{source} holds no stacks", f"expected {_EXPECTED}")
    rec = Recording(source_format=NAME, tool="py-spy" if pyspy else None, kind="cpu" if pyspy else None)
    return Profile(frames=frames.frames, sample_types=[value_type], samples=_samples(order, plain, labelled),
                   recording=rec)


def _samples(order: list[tuple], plain: dict, labelled: dict) -> list[Sample]:
    values: dict[int, tuple[int]] = {}  # one (v,) tuple per distinct weight
    out: list[Sample] = []
    append, pget, vget, make = out.append, plain.get, values.get, Sample
    for key in order:
        v = pget(key)  # a plain key is a tuple of ints, a labelled one (stack, Labels)
        if v is None:
            (key, lb), v = key, labelled[key]
        else:
            lb = NO_LABELS
        vt = vget(v)
        if vt is None:
            vt = values[v] = (v,)
        append(make(key, vt, lb))
    return out
