"""`perfkit leaks` against live scenarios with known leaks and known steady look-alikes.

Several watches run concurrently (each its own perfkit process on its own scenario)
so the suite's wall time stays near one monitoring window.  Tolerances: the measured
slope must be within 30 % of the scenario's rate (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import ExitStack

import pytest

from conftest import ROOT, perfkit_cmd, scenario

pytestmark = pytest.mark.live

WATCH = ["-d", "12", "--interval", "0.2"]


def _env():
    e = dict(os.environ)
    e["NO_COLOR"] = "1"
    e["COLUMNS"] = "200"
    e.pop("RUST_BACKTRACE", None)
    return e


def watch_all(specs, extra=()):
    """specs: {key: (scenario name, [args])} -> {key: (ready line, returncode, json doc or None, stderr)}."""
    out = {}
    with ExitStack() as stack:
        running = {}
        for key, (name, args) in specs.items():
            sc = stack.enter_context(scenario(name, "--duration", "60", *args))
            proc = subprocess.Popen(perfkit_cmd() + ["leaks", "--pid", str(sc.pid), *WATCH, "--json", *extra],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
            running[key] = (sc, proc)
        for key, (sc, proc) in running.items():
            stdout, stderr = proc.communicate(timeout=120)
            doc = json.loads(stdout) if stdout.strip() else None
            out[key] = (sc.ready_line, proc.returncode, doc, stderr)
    return out


def resource(doc, name):
    return next(r for r in doc["resources"] if r["resource"] == name)


@pytest.fixture(scope="module")
def leak_runs():
    return watch_all({
        "fd": ("fd_leak", ["--rate", "5", "--limit", "400"]),
        "threads": ("leak_threads", ["--rate", "2"]),
        "socket": ("socket_leak", ["--rate", "3"]),
    })


def test_fd_leak_is_flagged_with_its_path_pattern(leak_runs):
    ready, rc, doc, err = leak_runs["fd"]
    assert rc == 0, err
    assert doc["verdicts"]["fds"] == "leak"
    assert doc["leaks"] == ["fds"], doc["verdicts"]  # nothing else moves in this scenario
    fds = resource(doc, "fds")
    assert fds["slope_per_s"]["slope"] == pytest.approx(5.0, rel=0.3)
    assert fds["slope_per_s"]["low"] > 0
    top = fds["attribution"]["groups"][0]
    directory = ready.split("dir=")[1].split()[0]
    assert top["kind"] == "file"
    assert top["pattern"] == f"{directory}/leaked-*.dat"
    assert top["count"] >= 0.7 * 5 * 12
    assert (fds["limit"], fds["limit_source"]) == (400, "RLIMIT_NOFILE (soft)")
    expected = (400 - fds["end_value"]) / 5.0
    assert fds["time_to_limit_s"] == pytest.approx(expected, rel=0.3)
    assert doc["series"]["fds_file"][-1][1] - doc["series"]["fds_file"][0][1] >= 0.7 * 5 * 12


def test_thread_leak_is_flagged_with_the_leaking_function(leak_runs):
    _, rc, doc, err = leak_runs["threads"]
    assert rc == 0, err
    assert doc["leaks"] == ["threads"], doc["verdicts"]
    thr = resource(doc, "threads")
    assert thr["slope_per_s"]["slope"] == pytest.approx(2.0, rel=0.3)
    att = thr["attribution"]
    group = att["groups"][0]
    assert group["app_frame"]["function"] == "leaked_worker"
    assert group["app_frame"]["file"].endswith("scenarios/leak_threads.py")
    assert att["new_threads"] >= 0.7 * 2 * 12
    assert group["count"] == att["new_threads"]  # all new threads are one group
    assert all(t["name"].startswith("leaky-") for t in group["threads"])


def test_socket_leak_is_flagged_with_its_peer(leak_runs):
    ready, rc, doc, err = leak_runs["socket"]
    assert rc == 0, err
    port = ready.split("port=")[1].split()[0]
    assert doc["verdicts"]["sockets"] == "leak"
    assert set(doc["leaks"]) == {"sockets", "fds"}
    sk = resource(doc, "sockets")
    assert sk["slope_per_s"]["slope"] == pytest.approx(6.0, rel=0.3)  # both ends of 3 conn/s
    patterns = {g["pattern"]: g["count"] for g in sk["attribution"]["groups"]}
    client = f"tcp ESTABLISHED 127.0.0.1:* -> peer 127.0.0.1:{port}"
    server = f"tcp ESTABLISHED 127.0.0.1:{port} -> peer 127.0.0.1:*"
    assert client in patterns and server in patterns, patterns
    assert abs(patterns[client] - patterns[server]) <= 1
    assert doc["series"]["sockets"][-1][1] > doc["series"]["sockets"][0][1]
    established = doc["series"]["sockets_tcp:ESTABLISHED"]
    assert established[-1][1] - established[0][1] >= 0.7 * 6 * 12 - 6  # state table refreshes every 2 s
    assert doc["series"]["sockets_tcp:LISTEN"][-1][1] == 1


STEADY_KINDS = {
    "bounded_cache": [],
    "thread_pool": [],
    "sawtooth": [],
    "bursts": ["--seed", "4"],
    "step": ["--step-at", "6"],
}


def test_steady_look_alikes_have_no_leak_verdict():
    runs = watch_all({k: ("steady", ["--kind", k, *a]) for k, a in STEADY_KINDS.items()})
    for kind, (_, rc, doc, err) in runs.items():
        assert rc == 0, (kind, err)
        assert doc["leaks"] == [], (kind, {r["resource"]: r["reasons"] for r in doc["resources"]
                                           if r["verdict"] == "leak"})
    # the look-alikes did move: the plateau / step / teeth are real
    assert resource(runs["step"][2], "threads")["end_value"] - resource(runs["step"][2], "threads")["start_value"] == 4
    mem = [v for _, v in runs["sawtooth"][2]["series"]["memory"]]
    assert max(mem) - min(mem) > 10 * 1024 * 1024


def test_memory_leak_is_attributed_to_its_line():

    res = watch_all({"mem": ("leak_memory", ["--rate", str(2 * 1024 * 1024)])},
                    extra=("--attribute-memory", "--memray-seconds", "3", "--fail-on-leak"))
    ready, rc, doc, err = res["mem"]
    assert rc == 1, err  # --fail-on-leak
    assert "leak found (memory)" in err
    assert doc["leaks"] == ["memory"]
    mem = resource(doc, "memory")
    assert mem["slope_per_s"]["slope"] == pytest.approx(2 * 1024 * 1024, rel=0.3)
    line = int(ready.split("line=")[1])
    att = mem["attribution"]
    assert att["available"], att
    top = att["lines"][0]
    assert (top["function"], top["line"]) == ("handle_request", line)
    assert top["file"].endswith("scenarios/leak_memory.py")
    assert top["pct"] > 80
    assert "uss" in doc["series"] and "pss" in doc["series"]


@pytest.mark.parametrize("via, lib", [("json", "json/encoder.py"), ("tabulate", "site-packages/tabulate/")])
def test_memory_leak_through_a_library_is_attributed_to_your_line(via, lib):
    """Truth (scenarios/leak_cache.py): the CACHE LINE in handle_request keeps 2 MiB/s
    alive, allocated inside json (stdlib) or tabulate (a package in the test venv)."""
    res = watch_all({"mem": ("leak_cache", ["--via", via, "--rate", str(2 * 1024 * 1024)])},
                    extra=("--attribute-memory", "--memray-seconds", "3"))
    ready, rc, doc, err = res["mem"]
    assert rc == 0, err
    assert doc["leaks"] == ["memory"], doc["verdicts"]
    line = int(ready.split("cache_line=")[1].split()[0])
    att = resource(doc, "memory")["attribution"]
    assert att["available"], att
    first = att["lines"][0]
    assert first["your_code"]["function"] == "handle_request" and first["your_code"]["line"] == line, att
    assert first["your_code"]["file"].endswith("scenarios/leak_cache.py")
    assert lib in first["file"], first  # where the bytes were allocated: the library
    held = sum(x["pct"] for x in att["lines"] if x["your_code"] and x["your_code"]["line"] == line)
    assert held > 80, att["lines"]
