"""Small pure transforms on profiles.  Each returns a new Profile."""

from __future__ import annotations

import re
from dataclasses import replace

from perfkit.errors import UsageError
from perfkit.model import Frame, Labels, Profile, ProfileBuilder


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"bad regular expression {pattern!r}: {exc}") from None


def frame_text(frame: Frame) -> str:
    """What --focus/--ignore regexes are matched against: ``function file:line``."""
    return f"{frame.function} {frame.file}:{frame.line}" if frame.file else frame.function


def _matching_frames(profile: Profile, pattern: str) -> set[int]:
    rx = _compile(pattern)
    return {i for i, f in enumerate(profile.frames) if rx.search(frame_text(f))}


def _keep(profile: Profile, keep) -> Profile:
    return replace(profile, samples=[s for s in profile.samples if keep(s)],
                   recording=profile.recording.copy(), frames=list(profile.frames))


def focus(profile: Profile, pattern: str) -> Profile:
    """Keep only samples whose stack has a frame matching ``pattern``."""
    hits = _matching_frames(profile, pattern)
    return _keep(profile, lambda s: any(i in hits for i in s.stack))


def ignore(profile: Profile, pattern: str) -> Profile:
    """Drop samples whose stack has a frame matching ``pattern``."""
    hits = _matching_frames(profile, pattern)
    return _keep(profile, lambda s: not any(i in hits for i in s.stack))


def only_threads(profile: Profile, spec: str) -> Profile:
    """Keep samples of threads whose id equals ``spec`` or whose name matches it (regex)."""
    rx = _compile(spec)

    def keep(s) -> bool:
        l = s.labels
        return (l.tid is not None and str(l.tid) == spec) or (l.thread is not None and bool(rx.search(l.thread)))

    return _keep(profile, keep)


def only_pids(profile: Profile, pids: set[int]) -> Profile:
    return _keep(profile, lambda s: s.labels.pid in pids)


def drop_labels(profile: Profile) -> Profile:
    """Merge samples across threads and processes."""
    b = ProfileBuilder(profile.sample_types, profile.recording, profile.default_index)
    b._frames = list(profile.frames)  # same frame table
    b._frame_index = {f: i for i, f in enumerate(profile.frames)}
    for s in profile.samples:
        b.add_ids(s.stack, s.values, Labels())
    out = b.build()
    out.series = dict(profile.series)
    return out


def with_default(profile: Profile, value: str | None) -> Profile:
    """The same profile with another default value type (by type name)."""
    if value is None:
        return profile
    return replace(profile, default_index=profile.value_index(value))


def apply_filters(profile: Profile, *, focus_re: str | None = None, ignore_re: str | None = None,
                  thread: str | None = None, pids: list[int] | None = None) -> Profile:
    """The standard filter pipeline shared by every command (--focus/--ignore/--thread/--pid)."""
    if pids:
        profile = only_pids(profile, set(pids))
    if thread:
        profile = only_threads(profile, thread)
    if focus_re:
        profile = focus(profile, focus_re)
    if ignore_re:
        profile = ignore(profile, ignore_re)
    return profile
