"""memray attach's own allocations, taken out of an attach capture.

``memray attach`` runs its payload in a thread of its own and starts a timer thread in
the target; what they allocate is memray's, not the program's.
"""

from __future__ import annotations

import re

from perfkit.model import HeapFacts, Profile

_OVERHEAD_LIMIT = 256 << 10


def drop_attach_overhead(profile: Profile) -> Profile:
    """Remove memray attach's own allocations from an attach capture.

    ``memray attach`` runs its payload in a thread of its own (memray's first thread,
    ``main_thread_id``, since the tracker starts there) and starts a timer thread; both
    allocate a little (thread objects, stacks) that would otherwise show up as "still
    alive".  The injector thread runs no user code.  A timer-like thread (named
    ``Thread-N``) is recognised by allocating only from ``threading.py``, native code or
    with no Python frame at all, and only a little; anything bigger is left alone.
    What was removed is kept in ``recording.heap.attach_overhead``.
    """
    from perfkit.model import rebuild

    heap = profile.recording.heap
    main_tid = heap.memray_main_thread_id if heap else None
    per_tid: dict[int | None, list] = {}
    for smp in profile.samples:
        per_tid.setdefault(smp.labels.tid, []).append(smp)

    def internal_only(samples) -> bool:
        total = sum(x.values[0] for x in samples)
        if total > _OVERHEAD_LIMIT:
            return False
        for x in samples:
            for i in x.stack:
                f = profile.frames[i]
                if f.file.endswith(".py") and not f.file.endswith("/threading.py"):
                    return False  # user (or library) Python code: not memray's
        return True

    drop = {tid for tid, samples in per_tid.items()
            if (tid == main_tid and internal_only(samples)) or
            (tid != main_tid and samples and internal_only(samples) and _thread_named_like_timer(samples))}
    if not drop:
        return profile
    kept, gone = [], [0, 0, 0, 0]
    for smp in profile.samples:
        if smp.labels.tid in drop:
            gone = [a + b for a, b in zip(gone, smp.values)]
        else:
            kept.append((profile.stack_frames(smp), smp.values, smp.labels))
    rec = profile.recording.copy()
    rec.heap = rec.heap or HeapFacts()
    totals = dict(rec.heap.totals)
    for key, v in zip(("alloc_bytes", "alloc_count", "inuse_bytes", "inuse_count"), gone):
        if key in totals:
            totals[key] -= v
    rec.heap.totals = totals
    rec.heap.attach_overhead = {"threads": sorted(t for t in drop if t is not None), "alloc_bytes": gone[0],
                               "alloc_count": gone[1], "inuse_bytes": gone[2], "inuse_count": gone[3]}
    rec.threads = len(per_tid) - len(drop)
    return rebuild(profile, kept, recording=rec)


def _thread_named_like_timer(samples) -> bool:
    names = {x.labels.thread for x in samples}
    return all(n is None or re.fullmatch(r"Thread-\d+( \(.*\))?", n) for n in names)
