"""memray's aggregated readers give the answer of iterating every record (checked, exactly).

perfkit reads what is alive at the end and at the peak through memray's aggregated
readers (``get_leaked_allocation_records`` / ``get_high_watermark_allocation_records``),
which run in C++, and sums everything allocated in its own single pass over every
record.  Here a real capture (scenarios/mem_leak.py: a leak, churn; mem_peak.py: a
one-off 8 MiB block) is read both ways and the totals and every site must agree to the
byte and to the allocation:

* still alive at the end: replaying every record (allocations by address, frees
  removing them) against the leaked-records reader, per (stack, thread);
* alive at the peak: the same replay up to memray's high-water mark (the last record
  at which the heap was at its maximum) against the high-water-mark reader;
* everything allocated: perfkit's pass against memray's own C++ statistics
  (``compute_statistics``: total count and bytes, the top lines by bytes).
"""

from __future__ import annotations

import subprocess
from collections import defaultdict

import pytest

from conftest import PY, ROOT, scenario_cmd

memray = pytest.importorskip("memray")

SIMPLE_FREE = {memray.AllocatorType.FREE, memray.AllocatorType.PYMALLOC_FREE}
RANGED_FREE = {memray.AllocatorType.MUNMAP}
RANGED = {memray.AllocatorType.MMAP}


@pytest.fixture(scope="module", params=[("mem_leak", "--rate", "4194304", "--duration", "1.2"),
                                        ("mem_peak", "--size", "8388608", "--delay", "0.2", "--hold", "0.2",
                                         "--duration", "0.8")],
                ids=["mem_leak", "mem_peak"])
def capture(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "capture.bin"
    cmd = scenario_cmd(*request.param)
    subprocess.run([PY, "-m", "memray", "run", "-q", "-f", "-o", str(out), *cmd[1:]], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, timeout=120)
    return str(out)


def _replay(path: str, upto: int | None = None):
    """Live allocations per (stack, thread) after record ``upto`` (inclusive; None: all),
    and memray's high-water mark: (index of the last record at the maximum, bytes)."""
    live: dict[int, tuple[int, tuple]] = {}
    ranged: dict[int, tuple[int, tuple]] = {}
    current = peak = 0
    peak_at = -1
    with memray.FileReader(path) as r:
        for i, rec in enumerate(r.get_allocation_records()):
            if upto is not None and i > upto:
                break
            kind = rec.allocator
            if kind in SIMPLE_FREE:
                got = live.pop(rec.address, None)
                if got is not None:
                    current -= got[0]
            elif kind in RANGED_FREE:
                got = ranged.get(rec.address)
                assert got is None or got[0] == rec.size, "a partial munmap: this replay only knows whole ones"
                if got is not None:
                    del ranged[rec.address]
                    current -= got[0]
            else:
                assert rec.n_allocations == 1
                (ranged if kind in RANGED else live)[rec.address] = (rec.size, (rec.stack_id, rec.tid))
                current += rec.size
            if current >= peak:
                peak, peak_at = current, i
    sites: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for size, key in [*live.values(), *ranged.values()]:
        sites[key][0] += size
        sites[key][1] += 1
    return {k: tuple(v) for k, v in sites.items()}, (peak_at, peak)


def _aggregated(records) -> dict[tuple, tuple[int, int]]:
    out = {}
    for rec in records:
        if rec.n_allocations or rec.size:
            out[(rec.stack_id, rec.tid)] = (rec.size, rec.n_allocations)
    return out


def _top(sites: dict, n: int = 10) -> list:
    return sorted(sites.items(), key=lambda kv: (-kv[1][0], kv[0]))[:n]


def test_leaked_records_equal_a_replay_of_every_record(capture):
    replayed, _ = _replay(capture)
    with memray.FileReader(capture) as r:
        agg = _aggregated(r.get_leaked_allocation_records(merge_threads=False))
    assert sum(v[0] for v in agg.values()) == sum(v[0] for v in replayed.values())
    assert sum(v[1] for v in agg.values()) == sum(v[1] for v in replayed.values())
    assert _top(agg) == _top(replayed)
    assert agg == replayed


def test_high_watermark_records_equal_a_replay_to_the_peak(capture):
    _, (peak_at, peak) = _replay(capture)
    at_peak, _ = _replay(capture, upto=peak_at)
    with memray.FileReader(capture) as r:
        assert r.metadata.peak_memory == peak
        agg = _aggregated(r.get_high_watermark_allocation_records(merge_threads=False))
    assert sum(v[0] for v in agg.values()) == sum(v[0] for v in at_peak.values()) == peak
    assert _top(agg) == _top(at_peak)
    assert agg == at_peak


def test_perfkit_reader_matches_both_paths(capture):
    from perfkit.formats.memray_capture import read_capture

    profile = read_capture(capture)
    totals = profile.recording.heap.totals
    replayed, (_, peak) = _replay(capture)
    assert totals["inuse_bytes"] == sum(v[0] for v in replayed.values())
    assert totals["inuse_count"] == sum(v[1] for v in replayed.values())
    assert profile.recording.heap.peak_heap_bytes == peak

    stats = memray._memray.compute_statistics(capture)
    assert totals["alloc_count"] == stats.total_num_allocations
    assert totals["alloc_bytes"] == stats.total_memory_allocated
    by_leaf: dict[tuple, int] = defaultdict(int)
    for sample in profile.samples:
        leaf = profile.frames[sample.stack[-1]]
        by_leaf[(leaf.function, leaf.file, leaf.line)] += sample.values[0]
    checked = 0
    for (function, file, line), size in stats.top_locations_by_size:
        # perfkit strips memray's launcher (memray run -> runpy) from stack roots: those lines are not the program's
        if function != "<unknown>" and "/memray/" not in file and "runpy" not in file:
            assert by_leaf[(function, file, line)] == size, (function, file, line)
            checked += 1
    assert checked >= 1  # the scenario's own lines are among memray's top five
