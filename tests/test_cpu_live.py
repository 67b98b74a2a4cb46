"""perfkit cpu against live scenario processes: the known answers, within tolerance."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import perfkit_json, scenario, scenario_cmd

pytestmark = pytest.mark.live


def _self_share(doc: dict, function: str) -> float:
    return sum(r["self_pct"] for r in doc["top"] if r["function"] == function)


def _assert_split(doc: dict, a: float, b: float, tol: float) -> None:
    got_a, got_b = _self_share(doc, "spin_a"), _self_share(doc, "spin_b")
    assert abs(got_a - a) <= tol and abs(got_b - b) <= tol, f"spin_a {got_a:.1f}% spin_b {got_b:.1f}% vs {a}:{b}"


def _pooled_split(docs: list[dict]) -> tuple[float, float]:
    """spin_a / spin_b shares (%) over several recordings, pooled by sample count."""
    n = sum(d["quality"]["samples"] for d in docs)
    a = sum(_self_share(d, "spin_a") * d["quality"]["samples"] for d in docs) / n
    b = sum(_self_share(d, "spin_b") * d["quality"]["samples"] for d in docs) / n
    return a, b


def _assert_rate(docs: list[dict]) -> None:
    """Achieved rate >= 90 % of the requested 100 Hz over the pooled runs; py-spy's own
    sampling thread is occasionally late on a 2-core box (one run seen at 87 %), so a
    single run is held to 80 %."""
    rates = [d["quality"]["achieved_rate"] for d in docs]
    assert sum(rates) / len(rates) >= 90 and min(rates) >= 80, rates


# Sampling error: py-spy's samples behave like independent draws, so one 5 s recording
# at 100 Hz (~500 samples) has a standard error of 1.9 pp at p = 0.75 (measured: 2.2 pp
# over 8 runs) and 3 pp is only 1.5 sigma.  The accuracy tests therefore pool three
# 5 s / 100 Hz recordings (~1500 samples, 1.1 pp) and hold them to the 3 pp budget.

def test_cpu_split_attach_mode_75_25():
    with scenario("cpu_split", "--ratio", "75:25", "--duration", "60") as sc:
        docs = [perfkit_json("cpu", "--pid", sc.pid, "-d", "5", "-r", "100") for _ in range(3)]
        assert sc.alive(), "the target must keep running after perfkit detaches"
    _assert_rate(docs)
    for doc in docs:
        q = doc["quality"]
        # samples py-spy took (reclassified idle ones included: on a loaded box a runnable
        # spinner without a core is not on CPU, and those samples are set aside)
        assert q["samples"] + doc["idle_correction"]["reclassified"] >= 400
        assert q["processes"] == 1 and q["threads"] == 1
        assert abs(_self_share(doc, "spin_a") - 75) <= 8, "each single run is within 4 sigma"
    a, b = _pooled_split(docs)
    assert abs(a - 75) <= 3 and abs(b - 25) <= 3, (a, b)
    doc = docs[0]
    assert doc["pid"] == sc.pid
    top = doc["top"][0]
    assert top["function"] == "spin_a" and top["file"].endswith("scenarios/cpu_split.py") and top["line"] > 0


def test_cpu_split_launch_mode_75_25(tmp_path):
    out = tmp_path / "split.speedscope.json"
    docs = [perfkit_json("cpu", "-d", "5", "-o", out, "--",
                         *scenario_cmd("cpu_split", "--ratio", "75:25", "--duration", "20")) for _ in range(3)]
    _assert_rate(docs)
    a, b = _pooled_split(docs)
    assert abs(a - 75) <= 3 and abs(b - 25) <= 3, (a, b)
    assert out.exists() and (out.stat().st_mode & 0o777) == 0o600


def test_cpu_split_launch_until_exit_reversed_ratio():
    # no --duration: records until the launched program exits by itself.  One ~4 s
    # recording (~400 samples, 2.2 pp standard error): held to 6 pp, under 3 sigma.
    doc = perfkit_json("cpu", "--", *scenario_cmd("cpu_split", "--ratio", "25:75", "--duration", "4"))
    assert 3.5 <= doc["quality"]["duration_s"] <= 15
    _assert_split(doc, 25, 75, tol=6.0)


def _pooled_by(docs: list[dict], key) -> dict:
    """Shares (%) over several recordings, pooled by each recording's total value."""
    acc: dict = {}
    grand = 0.0
    for d in docs:
        for t in d["threads"]:
            acc[key(t)] = acc.get(key(t), 0.0) + t["value"]
            grand += t["value"]
    return {k: 100.0 * v / grand for k, v in acc.items()} if grand else {}


def test_per_thread_split_with_a_sleeping_main_thread():
    """Truth (scenarios/cpu_threads.py): worker-a and worker-b take strict turns of 15 and
    5 ms of their own CPU time (75:25 of the process's CPU); MainThread sleeps in
    time.sleep (0 %).  py-spy counts the sleeping main thread as running in a few % of
    its samples; perfkit reclassifies those as idle (its leaf line sleeps, and its /proc
    CPU time is ~0) and takes each thread's CPU time from /proc.  Three pooled 5 s
    recordings, within 3 pp."""
    with scenario("cpu_threads", "--ratio", "75:25", "--duration", "40") as sc:
        docs = [perfkit_json("cpu", "--pid", sc.pid, "-d", "5", "--by-thread") for _ in range(3)]
    shares = _pooled_by(docs, lambda t: t["thread"])
    assert abs(shares.get("worker-a", 0) - 75) <= 3, shares
    assert abs(shares.get("worker-b", 0) - 25) <= 3, shares
    assert shares.get("MainThread", 0.0) <= 1.0, shares
    for doc in docs:
        assert all(t["pid"] == sc.pid and t["tid"] for t in doc["threads"])
        corr = doc["idle_correction"]
        assert corr["threads_cpu_from_proc"] >= 2, corr
        assert any("thread" in n and "/proc" in n for n in doc["quality"]["notes"]), doc["quality"]


def test_per_process_split_with_subprocesses():
    """Truth (scenarios/cpu_workers.py): the parent sleeps; worker 0 spins all the time,
    worker 1 half the time (2/3 : 1/3 of the CPU) — while the machine has a core for each.
    Three pooled 5 s recordings within 3 pp; the sleeping parent within 1 pp of 0."""
    import psutil

    with scenario("cpu_workers", "--duty", "1.0,0.5", "--duration", "60") as sc:
        workers = [int(p) for p in sc.ready_line.split()[1:]]
        procs = [psutil.Process(p) for p in workers]
        cpu0 = [sum(p.cpu_times()[:2]) for p in procs]
        t0 = time.monotonic()
        docs = [perfkit_json("cpu", "--pid", sc.pid, "-d", "5", "--subprocesses") for _ in range(3)]
        got = [(sum(p.cpu_times()[:2]) - c) / (time.monotonic() - t0) for p, c in zip(procs, cpu0)]
    shares = _pooled_by(docs, lambda t: t["pid"])
    assert shares.get(sc.pid, 0.0) <= 1.0, shares
    assert all(d["quality"]["processes"] >= 2 for d in docs)
    if not got[1] or not 1.7 <= got[0] / got[1] <= 2.3:
        # the truth is the ratio of the duties: it holds while both workers get (or lose)
        # CPU alike — py-spy pausing them to sample slows both; an oversubscribed box that
        # starves one more than the other moves the split (psutil says by how much)
        pytest.skip(f"truth check skipped: workers got {got[0]:.2f} and {got[1]:.2f} CPUs (duty ratio 2, got "
                    f"{got[0] / max(got[1], 1e-9):.2f}); measured {shares}")
    assert abs(shares.get(workers[0], 0) - 200 / 3) <= 3, shares
    assert abs(shares.get(workers[1], 0) - 100 / 3) <= 3, shares


def test_epoll_idle_server_samples_are_reclassified():
    """Truth (scenarios/epoll_server.py): the event loop waits in selector.select (epoll)
    with a 2 ms timeout and uses a few % of a core; the worker spins.  Samples of the
    loop in select are idle: reclassified, and the loop keeps only its /proc CPU time."""
    with scenario("epoll_server", "--duration", "30") as sc:
        loop_tid = int(sc.ready_line.split("loop_tid=")[1].split()[0])
        doc = perfkit_json("cpu", "--pid", sc.pid, "-d", "5", "--by-thread")
    corr = doc["idle_correction"]
    assert corr["blocking_calls"] > 0, corr
    assert any("reclassified as idle" in n for n in doc["quality"]["notes"]), doc["quality"]
    loop = next((t for t in corr["threads"] if t["tid"] == loop_tid), None)
    share = sum(t["pct"] for t in doc["threads"] if t["tid"] == loop_tid)
    cpu = {t["tid"]: t["cpu_s"] for t in corr["threads"]}
    truth = 100.0 * cpu.get(loop_tid, 0.0) / max(1e-9, sum(cpu.values()))
    assert abs(share - truth) <= 1.0, (share, truth, loop)
    assert all(r["function"] != "select" for r in doc["top"] if r["self_pct"] > 1), doc["top"]


def test_idle_excluded_unless_idle_flag():
    # truth: 30 % of the time spinning in burst, 70 % sleeping in wait_for_work
    with scenario("idle", "--duration", "30", "--busy", "0.3") as sc:
        # 8 s each (~800 samples with --idle: 1.6 pp standard error at p = 0.7)
        busy = perfkit_json("cpu", "--pid", sc.pid, "-d", "8")
        idle = perfkit_json("cpu", "--pid", sc.pid, "-d", "8", "--idle")
    assert _self_share(busy, "burst") >= 90, busy["top"]
    # truth 0; a thread just woken from sleep is briefly "active" on a loaded box
    assert sum(r["total_pct"] for r in busy["top"] if r["function"] == "wait_for_work") <= 8
    # with --idle the sleeping function holds its share of wall time
    wait_total = sum(r["total_pct"] for r in idle["top"] if r["function"] == "wait_for_work")
    assert abs(wait_total - 70) <= 5, wait_total
    assert abs(_self_share(idle, "burst") - 30) <= 5
    assert idle["value_type"] == "wall/nanoseconds"


def test_outputs_all_formats_and_roundtrip(tmp_path, speedscope_schema):
    import jsonschema

    from perfkit.formats import read_profile

    paths = [tmp_path / "p.perfkit", tmp_path / "p.collapsed", tmp_path / "p.speedscope.json"]
    args = []
    for p in paths:
        args += ["-o", p]
    doc = perfkit_json("cpu", "-d", "3", *args, "--",
                           *scenario_cmd("cpu_split", "--ratio", "75:25", "--duration", "10"))
    for p in paths:
        assert (p.stat().st_mode & 0o777) == 0o600
    jsonschema.validate(json.loads(paths[2].read_text()), speedscope_schema)
    native = read_profile(paths[0])
    collapsed = read_profile(paths[1])
    speedscope = read_profile(paths[2])
    n = doc["quality"]["samples"]
    assert native.total(0) == n and collapsed.total(0) == n
    # perfkit's own speedscope file carries its value types: samples come back as written; it
    # lays out the timeline (one sampling period per event), so its cpu is samples x period,
    # while the .perfkit file keeps /proc's CPU time per thread (the idle correction)
    assert [str(t) for t in speedscope.sample_types] == ["samples/count", "cpu/nanoseconds"]
    assert speedscope.total(0) == n and speedscope.total(1) == n * 10_000_000
    assert native.recording.thread_cpu and native.recording.thread_cpu["threads"]
    # the collapsed file round-trips: same stacks (as frame tuples) and weights
    def stacks(prof, vi=0):
        acc = {}
        for s in prof.samples:
            key = tuple(prof.frames[i] for i in s.stack)
            acc[key] = acc.get(key, 0) + s.values[vi]
        return acc
    assert stacks(collapsed) == stacks(native)
    assert stacks(speedscope) == stacks(native)
    assert len(speedscope.live_timeline()) == n == len(native.live_timeline())  # one event per sample, in order
    # lossless file keeps labels and the recording facts
    assert native.recording.requested_rate == 100 and native.pids() == {doc["pid"]}


def test_pyspy_own_speedscope_fails_schema_ours_passes(tmp_path, speedscope_schema):
    """py-spy's file has activeProfileIndex: null, which the schema rejects."""
    import jsonschema

    from perfkit.tools.pyspy import find_pyspy

    raw = tmp_path / "raw.json"
    subprocess.run([find_pyspy(), "record", "-f", "speedscope", "-o", str(raw), "-d", "1", "--",
                    *scenario_cmd("cpu_split", "--duration", "3")], capture_output=True, timeout=60, check=True)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(raw.read_text()), speedscope_schema)
    out = tmp_path / "ours.speedscope.json"
    from perfkit.formats import read_profile, write_profile

    write_profile(read_profile(raw), out)
    jsonschema.validate(json.loads(out.read_text()), speedscope_schema)
