"""Your code first: the innermost frame of each stack that is the user's own code, and
which stacks are import-time noise.

"User code" is what :mod:`perfkit.paths` classifies as ``user`` (not the standard
library, not site-packages, not perfkit / py-spy / memray; adjustable with
``--user-code`` and ``[tool.perfkit] user_code``).  A stack is *import-time* when any
of its frames is the import machinery (``<frozen importlib._bootstrap>`` …): module
code running because something was imported.  Pure functions over a ``Profile``.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit import paths
from perfkit.model import Frame, Profile


def user_flags(profile: Profile) -> list[bool]:
    """Per frame index: is it the user's code?"""
    return [paths.classify(f.file, f.function) == paths.USER for f in profile.frames]


def import_flags(profile: Profile) -> list[bool]:
    return [paths.is_import_machinery(f.file, f.function) for f in profile.frames]


def innermost_user(stack: tuple[int, ...], flags: list[bool]) -> int | None:
    """The frame index of the innermost user frame of a root-first stack (None: none)."""
    for i in reversed(stack):
        if flags[i]:
            return i
    return None


def is_import(stack: tuple[int, ...], flags: list[bool]) -> bool:
    return any(flags[i] for i in stack)


@dataclass(frozen=True)
class Hidden:
    """What a table left out as import-time noise (value, count, % of the total)."""

    value: int
    count: int
    pct: float

    def to_json(self) -> dict:
        return {"value": self.value, "count": self.count, "pct": round(self.pct, 3)}


def import_noise(profile: Profile, value_index: int, count_index: int | None = None) -> Hidden:
    flags = import_flags(profile)
    grand = value = count = 0
    for s in profile.samples:
        v = s.values[value_index]
        grand += v
        if v and is_import(s.stack, flags):
            value += v
            count += s.values[count_index] if count_index is not None else 0
    return Hidden(value, count, 100.0 * value / grand if grand else 0.0)


def without_imports(profile: Profile) -> Profile:
    """The profile without import-time stacks (a new profile; the recording is kept)."""
    from dataclasses import replace

    flags = import_flags(profile)
    return replace(profile, samples=[s for s in profile.samples if not is_import(s.stack, flags)])


def dominant_user_frames(profile: Profile, value_index: int, key_of_leaf) -> dict:
    """{leaf key: (innermost user Frame or None, share of that key's value)} — for each
    row of a table keyed by its leaf (``key_of_leaf(frame) -> key``), the user frame
    that most of its value comes through."""
    flags = user_flags(profile)
    acc: dict = {}
    for s in profile.samples:
        v = s.values[value_index]
        if not v or not s.stack:
            continue
        k = key_of_leaf(profile.frames[s.stack[-1]])
        u = innermost_user(s.stack, flags)
        slot = acc.setdefault(k, {})
        slot[u] = slot.get(u, 0) + v
    out = {}
    for k, by in acc.items():
        total = sum(by.values())
        u, v = max(by.items(), key=lambda kv: (kv[1], kv[0] is not None, -(kv[0] or 0)))
        out[k] = (profile.frames[u] if u is not None else None, v / total if total else 0.0)
    return out


def frame_json(frame: Frame | None) -> dict | None:
    if frame is None:
        return None
    return {"function": frame.function, "file": frame.file, "line": frame.line}
