"""perfkit_limit quantities, the in-process measurer and the between-process noise term (no subprocesses)."""

from __future__ import annotations

import math

import pytest

from perfkit import stats
from perfkit.gate import inproc, limits


@pytest.mark.parametrize("key,text,value", [
    ("cpu", "50 ms", 0.05), ("cpu", "500us", 5e-4), ("cpu", "0.2 s", 0.2), ("cpu", 2, 2.0), ("wall", "1.5 min", 90.0),
    ("memory", "20 MiB", 20 * 1024 ** 2), ("memory", "20 MB", 20e6), ("memory", "512 KiB", 512 * 1024),
    ("memory", 1000, 1000.0), ("allocations", "10k", 10000.0), ("allocations", 7, 7.0),
])
def test_parse_quantities(key, text, value):
    assert limits.parse(key, text) == pytest.approx(value)


@pytest.mark.parametrize("key,text,needle", [
    ("cpu", "fast", "is not a quantity"), ("cpu", "5 parsecs", "unknown unit"), ("memory", "-1 MiB", "not a quantity"),
    ("memory", "0", "must be positive"), ("speed", "1", "unknown limit"), ("cpu", True, "not a quantity"),
])
def test_bad_quantities(key, text, needle):
    with pytest.raises(ValueError, match=needle):
        limits.parse(key, text)


def test_violations_name_the_measured_number():
    lims = limits.from_kwargs({"cpu": "1 ms", "memory": "1 MiB"})
    out = limits.violations(lims, {"cpu": [0.002, 0.003, 0.0025], "heap_peak": [3 << 20, 3 << 20]}, calls=4)
    assert out[0] == "cpu 2.5 ms per call (median of 3 rounds x 4 calls) exceeds the limit cpu=1 ms (1.0 ms)"
    assert out[1] == "peak heap 3.0 MiB (max of 2 memory rounds) exceeds the limit memory=1 MiB (1.0 MiB)"
    assert limits.violations(lims, {"cpu": [0.0005], "heap_peak": [100]}, calls=1) == []


def test_measurer_rounds_and_not_repeatable(tmp_path):
    calls = []
    m = inproc.Measurer(lambda: calls.append(sum(range(2000))), scratch=str(tmp_path), ref_n=2000, ref_s=0.001)
    assert m.calibrate() >= 1
    v = m.run("plain")
    assert v["cpu_raw"] > 0 and v["cpu"] > 0 and v["reference"] > 0
    mem = m.run("memray")
    assert mem["allocations"] >= 0 and mem["heap_peak"] >= 0
    assert set(m.raw_values()) == {"cpu", "wall", "heap_peak", "allocations"}
    state = []

    def once():
        state.append(1)
        assert len(state) == 1

    once()
    m2 = inproc.Measurer(once, scratch=str(tmp_path), ref_n=0, ref_s=0.0)
    with pytest.raises(inproc.NotRepeatable, match="round 1 raised AssertionError"):
        m2.calibrate()


def test_heap_peak_is_the_bytes_one_call_holds(tmp_path):
    m = inproc.Measurer(lambda: bytearray(3 << 20), scratch=str(tmp_path), ref_n=0, ref_s=0.0)
    peaks = [m.run("memray")["heap_peak"] for _ in range(3)]
    assert all(3 << 20 <= p < (3 << 20) + (64 << 10) for p in peaks), peaks


def test_between_noise_widens_and_zero_leaves_alone():
    iv = stats.Interval(1.10, 1.05, 1.15, "mann-whitney-hl", 0.99)
    assert stats.with_between_noise(iv, 0.0, 1, 0.005) is iv
    wide = stats.with_between_noise(iv, 0.04, 1, 0.005)
    z = stats.norm_ppf(1 - 0.005)
    extra = z * 0.04 * math.sqrt(2)
    assert math.log(wide.hi / 1.10) == pytest.approx(math.hypot(math.log(1.15 / 1.10), extra))
    assert wide.lo < 1.0 < wide.hi  # +10 % is no longer significant with one process per side
    more = stats.with_between_noise(iv, 0.04, 25, 0.005)
    assert wide.lo < more.lo and more.hi < wide.hi  # more recorded sessions: narrower
    sd, df = stats.pooled_group_sd([[1.0, 1.1, 0.9], [2.0], [5.0, 5.0]])
    assert df == 3 and sd > 0
