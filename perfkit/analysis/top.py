"""Top-N: where the value (CPU samples, bytes ...) goes, by function or by line.

self  = value of samples whose leaf is the function (or line);
total = value of samples with the function anywhere on the stack (counted once per
        sample even under recursion).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.model import Profile


@dataclass(frozen=True)
class TopRow:
    function: str
    file: str
    line: int  # the hottest line (by self value, else by total) within the function
    self_value: int
    total_value: int
    self_pct: float
    total_pct: float

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""

    def to_json(self) -> dict:
        return {"function": self.function, "file": self.file, "line": self.line,
                "self": self.self_value, "total": self.total_value,
                "self_pct": round(self.self_pct, 3), "total_pct": round(self.total_pct, 3)}


def top(profile: Profile, value_index: int | None = None, *, by_line: bool = False,
        limit: int | None = None, sort: str = "self") -> list[TopRow]:
    vi = profile.default_index if value_index is None else value_index
    grand = profile.total(vi)
    frames = profile.frames
    # every frame gets the id of its key (function + file, or + line), so a sample's keys
    # are one C-level set of ints; lines are chosen afterwards from per-frame sums
    ids: dict[tuple, int] = {}
    kid = [ids.setdefault((f.function, f.file, f.line) if by_line else (f.function, f.file), len(ids))
           for f in frames]
    nk = len(ids)
    self_v = [0] * nk
    total_v = [0] * nk
    leaf_v = [0] * len(frames)  # self value per frame (its line)
    seen_frames: set[int] = set()  # frames on a stack with a value: their lines are candidates
    getk = kid.__getitem__
    for s in profile.samples:
        v = s.values[vi]
        stack = s.stack
        if not v or not stack:
            continue
        leaf = stack[-1]
        leaf_v[leaf] += v
        self_v[kid[leaf]] += v
        for ki in set(map(getk, stack)):  # once per sample, even under recursion
            total_v[ki] += v
        seen_frames.update(stack)
    # lines of non-leaf frames count at weight 0 so a purely-caller function still has a
    # representative line; the hottest line wins, ties to the lowest
    line_v: dict[int, dict[int, int]] = {}
    for fi in seen_frames:
        lines = line_v.setdefault(kid[fi], {})
        ln = frames[fi].line
        lines[ln] = lines.get(ln, 0) + leaf_v[fi]
    keys = list(ids)
    rows = []
    for k in line_v:  # every key on a stack with a value (even one whose values cancel)
        tot = total_v[k]
        key = keys[k]
        sv = self_v[k]
        if by_line:
            line = key[2]
        else:
            lines = line_v.get(k, {0: 0})
            line = max(lines.items(), key=lambda kv: (kv[1], -kv[0]))[0]
        rows.append(TopRow(key[0], key[1], line, sv, tot,
                           100.0 * sv / grand if grand else 0.0, 100.0 * tot / grand if grand else 0.0))
    if sort == "total":
        rows.sort(key=lambda r: (-r.total_value, -r.self_value, r.function, r.file, r.line))
    else:
        rows.sort(key=lambda r: (-r.self_value, -r.total_value, r.function, r.file, r.line))
    return rows[:limit] if limit else rows


@dataclass(frozen=True)
class ThreadRow:
    pid: int | None
    tid: int | None
    thread: str | None
    value: int
    pct: float

    def to_json(self) -> dict:
        return {"pid": self.pid, "tid": self.tid, "thread": self.thread, "value": self.value,
                "pct": round(self.pct, 3)}


def by_thread(profile: Profile, value_index: int | None = None) -> list[ThreadRow]:
    vi = profile.default_index if value_index is None else value_index
    grand = profile.total(vi)
    acc: dict[tuple, int] = {}
    for s in profile.samples:
        k = (s.labels.pid, s.labels.tid, s.labels.thread)
        acc[k] = acc.get(k, 0) + s.values[vi]
    rows = [ThreadRow(p, t, n, v, 100.0 * v / grand if grand else 0.0) for (p, t, n), v in acc.items()]
    rows.sort(key=lambda r: (-r.value, r.pid or 0, r.tid or 0))
    return rows


def by_process(profile: Profile, value_index: int | None = None) -> dict[int | None, float]:
    """Share (%) of the value per pid."""
    vi = profile.default_index if value_index is None else value_index
    grand = profile.total(vi)
    acc: dict[int | None, int] = {}
    for s in profile.samples:
        acc[s.labels.pid] = acc.get(s.labels.pid, 0) + s.values[vi]
    return {p: (100.0 * v / grand if grand else 0.0) for p, v in acc.items()}
