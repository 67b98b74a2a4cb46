"""Bounds on what a reader takes in: a bomb fails in seconds, with bounded memory, exit 2.

Every reader goes through these limits (documented in docs/formats.md):

=================  ======================  =============================================
limit              default                 adjust with
=================  ======================  =============================================
input size         256 MiB (decompressed)  ``PERFKIT_MAX_INPUT=2G`` or ``--max-input 2G``
JSON nesting       64 levels               ``PERFKIT_MAX_DEPTH=200``
text line length   16 MiB                  ``PERFKIT_MAX_LINE=64M``
=================  ======================  =============================================

* **Input size** counts the bytes a reader would hold: the file itself, or what a gzip
  stream inflates to (inflated in chunks and stopped at the limit, so a 1 MB gzip
  bomb costs the limit, never its full 1 GB).  memray captures are read by memray from
  the file: their (LZ4-compressed) size on disk is checked, and memray's own reader
  streams records, so its memory stays bounded by the profile it builds.
* **JSON nesting** is checked before parsing (speedscope, Chrome trace, perfkit
  files are at most ~6 levels deep; Python's parser would otherwise recurse).
* **Line length** bounds one line of a text format (collapsed, austin).

A value is bytes with an optional K/M/G suffix (powers of 1024).  Exceeding a limit
raises :class:`InputTooLarge`, an :class:`~perfkit.errors.InputFormatError` (exit 2)
whose hint names the variable to raise.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from perfkit.errors import InputFormatError, UsageError

DEFAULT_MAX_INPUT = 256 << 20
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_LINE = 16 << 20
ENV = {"max_input": "PERFKIT_MAX_INPUT", "max_depth": "PERFKIT_MAX_DEPTH", "max_line": "PERFKIT_MAX_LINE"}
_CHUNK = 1 << 20


class InputTooLarge(InputFormatError):
    """An input goes past one of the reader limits."""


@dataclass(frozen=True)
class Limits:
    max_input: int = DEFAULT_MAX_INPUT
    max_depth: int = DEFAULT_MAX_DEPTH
    max_line: int = DEFAULT_MAX_LINE


_override: Limits | None = None


def parse_size(text: str, what: str = "size") -> int:
    """``"512M"`` → 536870912; plain digits are bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise UsageError(f"invalid {what} {text!r}", "give bytes, optionally with K, M or G (e.g. 512M, 2G)")
    value = float(m.group(1)) * (1 << (10 * " KMGT".index(m.group(2).upper() or " ")))
    if value < 1:
        raise UsageError(f"{what} {text!r} is too small", "give at least 1 byte")
    return int(value)


def _from_env() -> Limits:
    kw = {}
    for field, var in ENV.items():
        raw = os.environ.get(var)
        if raw:
            kw[field] = parse_size(raw, var) if field != "max_depth" else _depth(raw, var)
    return Limits(**kw)


def _depth(raw: str, var: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise UsageError(f"invalid {var} {raw!r}", "give a whole number of nesting levels, e.g. 200")
    return int(raw)


def current() -> Limits:
    """The limits in force: a ``configure()`` override, else the environment, else the defaults."""
    return _override if _override is not None else _from_env()


def configure(**changes) -> Limits:
    """Override limits for this process (``--max-input``); ``configure()`` with nothing resets."""
    global _override
    _override = replace(_from_env(), **changes) if changes else None
    return current()


def _too_large(source: str, what: str, limit: int, var: str) -> InputTooLarge:
    flag = f"--max-input {_human(limit * 4)} or " if var == ENV["max_input"] else ""
    return InputTooLarge(f"{source} is larger than perfkit reads ({what} over {_human(limit)})",
                         f"if the file is genuine, raise the limit: {flag}{var}={_human(limit * 4)}")


def _human(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def read_file(path: Path, source: str, limits: Limits | None = None) -> bytes:
    """A file's bytes, refusing one over the input limit before reading it."""
    lim = limits or current()
    with open(path, "rb") as f:
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError:
            size = 0
        if size > lim.max_input:
            raise _too_large(source, "file size", lim.max_input, ENV["max_input"])
        data = f.read(lim.max_input + 1)  # a pipe or /proc file has no size: read one byte past
    if len(data) > lim.max_input:
        raise _too_large(source, "file size", lim.max_input, ENV["max_input"])
    return data


def check_size(data: bytes, source: str, limits: Limits | None = None) -> None:
    lim = limits or current()
    if len(data) > lim.max_input:
        raise _too_large(source, "input", lim.max_input, ENV["max_input"])


def gunzip(data: bytes, source: str, limits: Limits | None = None) -> bytes:
    """Inflate a gzip stream (several members allowed), stopping at the input limit."""
    lim = limits or current()
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = d.decompress(rest, _CHUNK)
        while True:
            out += chunk
            if len(out) > lim.max_input:
                raise _too_large(source, "decompressed size", lim.max_input, ENV["max_input"])
            if d.eof or not d.unconsumed_tail:
                break
            chunk = d.decompress(d.unconsumed_tail, _CHUNK)
        if not d.eof:
            out += d.flush()
            if not d.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
        rest = d.unused_data
        while rest[:1] == b"\0":  # gzip files may be padded with zeros
            rest = rest[1:]
    return bytes(out)


_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NEST = bytes.maketrans(b"[]{}", b"()()")


def gzip_head(data: bytes, n: int) -> bytes | None:
    """Up to ``n`` inflated bytes from the start of gzip ``data`` (for sniffing; None: not gzip)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:4096], n)
    except zlib.error:
        return None


def check_json_depth(data: bytes, source: str, limits: Limits | None = None) -> None:
    """Refuse JSON nested deeper than the limit, before the parser recurses into it.

    Strings are blanked out, every bracket kept, and innermost pairs removed one level
    per round (each round a C-speed pass over a shrinking string).
    """
    lim = limits or current()
    if data.count(b"[", 0, 1 << 16) + data.count(b"{", 0, 1 << 16) < lim.max_depth and len(data) < 1 << 16:
        return  # too few openers to be that deep
    brackets = _STRINGS.sub(b"", data).translate(_NEST, _NOT_BRACKETS)
    for _ in range(lim.max_depth):
        if not brackets:
            return
        shorter = brackets.replace(b"()", b"")
        if len(shorter) == len(brackets):
            return  # unbalanced: the parser reports it
        brackets = shorter
    if brackets and b"()" in brackets:  # still more levels to peel: deeper than the limit
        raise InputTooLarge(f"{source} nests JSON deeper than {lim.max_depth} levels",
                            f"profile files are a few levels deep; if this one is genuine: "
                            f"{ENV['max_depth']}={lim.max_depth * 4}")


def check_line(line_len: int, lineno: int, source: str, limits: Limits) -> None:
    if line_len > limits.max_line:
        raise InputTooLarge(f"{source}:{lineno}: a line longer than {_human(limits.max_line)}",
                            f"if the file is genuine, raise the limit: {ENV['max_line']}={_human(limits.max_line * 4)}")


def longest_line_ok(data: bytes, source: str, limits: Limits | None = None) -> None:
    """Check every line of a text input against the line limit (C-speed scan)."""
    lim = limits or current()
    if len(data) <= lim.max_line:
        return
    start = 0
    lineno = 1
    while True:
        end = data.find(b"\n", start)
        stop = len(data) if end < 0 else end
        if stop - start > lim.max_line:
            check_line(stop - start, lineno, source, lim)
        if end < 0:
            return
        start = end + 1
        lineno += 1
