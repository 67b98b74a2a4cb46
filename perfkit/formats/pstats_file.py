"""Python's pstats format (``.pstats``): what cProfile writes, read by ``pstats.Stats``,
snakeviz, gprof2dot and tuna.

The file is ``marshal`` of ``{(file, line, function): (cc, nc, tt, ct, callers)}`` with
``callers`` = ``{(file, line, function): (cc, nc, tt, ct)}``, times in seconds.  From a
sampled profile:

* ``tt`` (tottime): time of the samples in which the function is the leaf;
* ``ct`` (cumtime): time of the samples in which it is on the stack (once per sample,
  however deep the recursion);
* ``cc``/``nc``: sampling does not count calls, so both hold the number of samples that
  saw the function (pyinstrument writes -1, which pstats prints as negative per-call
  times);
* the key's line is the lowest line perfkit saw in that function (samples know the
  running line, not the ``def`` line); functions are told apart by (file, name).

The value written is time: the given ``value`` if it is in nanoseconds, else the
profile's first nanoseconds type, else sample counts times the period; without any,
the default value is written as if it were seconds (say a heap profile's bytes).
"""

from __future__ import annotations

import marshal

from perfkit.model import Profile

NAME = "pstats"


def _seconds(profile: Profile, value: str | None) -> tuple[int, float]:
    vi = profile.value_index(value)
    if profile.sample_types[vi].unit == "nanoseconds":
        return vi, 1e-9
    if value is None:
        for j, vt in enumerate(profile.sample_types):
            if vt.unit == "nanoseconds":
                return j, 1e-9
    if profile.sample_types[vi].unit == "count" and profile.recording.period_ns:
        return vi, profile.recording.period_ns * 1e-9
    return vi, 1.0


def write(profile: Profile, value: str | None = None) -> bytes:
    vi, scale = _seconds(profile, value)
    counts_i = next((j for j, vt in enumerate(profile.sample_types) if vt.type == "samples"), None)
    frames = profile.frames
    first_line: dict[tuple[str, str], int] = {}
    for f in frames:
        k = (f.file, f.function)
        if f.line and (k not in first_line or f.line < first_line[k]):
            first_line[k] = f.line
    key_of = [(f.file or "~", first_line.get((f.file, f.function), 0), f.function) for f in frames]
    stats: dict[tuple, list] = {}
    edges: dict[tuple, list] = {}
    for s in profile.samples:
        w = s.values[vi]
        n = s.values[counts_i] if counts_i is not None else 1
        if not s.stack or (not w and not n):
            continue
        keys = [key_of[i] for i in s.stack]
        leaf = keys[-1]
        for key in set(keys):
            st = stats.setdefault(key, [0, 0.0, 0.0])
            st[0] += n
            st[2] += w
        stats[leaf][1] += w
        seen_edges = set()
        for pos in range(1, len(keys)):
            e = (keys[pos - 1], keys[pos])
            if e in seen_edges:
                continue
            seen_edges.add(e)
            ed = edges.setdefault(e, [0, 0.0, 0.0])
            ed[0] += n
            ed[2] += w
        if len(keys) > 1:
            edges[(keys[-2], leaf)][1] += w  # the leaf's own time, through its direct caller
    out = {}
    callers: dict[tuple, dict] = {}
    for (caller, callee), (n, tt, ct) in edges.items():
        callers.setdefault(callee, {})[caller] = (n, n, tt * scale, ct * scale)
    for k, (n, tt, ct) in stats.items():
        out[k] = (n, n, tt * scale, ct * scale, callers.get(k, {}))
    return marshal.dumps(out)
