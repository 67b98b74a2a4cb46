"""`perfkit serve` against live scenarios, with real clients (go tool pprof, HTTP).

Truths used: scenarios/cpu_split.py burns 75:25 in spin_a:spin_b; scenarios/deadlock.py
has 9 threads (main, locker-1/2 in take_a_then_b/take_b_then_a, 6 idle-worker-N in
idle_worker); a `python -c` sleeper carries secrets on its command line.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from serve_helpers import Serve, descendants, processes_mentioning, tracer_pid, wait_for

from conftest import IN_CI, free_pid, one_error, run_perfkit, scenario

pytestmark = pytest.mark.live

SECRET = "hunter2-s3cr3t"


def go_env(tmp) -> dict:
    e = dict(os.environ)
    e.update({"HOME": str(tmp), "GOPATH": str(tmp / "gopath"), "GOCACHE": str(tmp / "gocache"),
              "GOFLAGS": "-mod=mod", "GOPROXY": "off", "PPROF_TMPDIR": str(tmp / "pprof")})
    return e


def need_go():
    if shutil.which("go") is None:
        if IN_CI:
            pytest.fail("go not installed; run ./scripts/setup")
        pytest.skip("go not installed; run ./scripts/setup")


@pytest.fixture(scope="module")
def targets():
    with scenario("cpu_split", "--ratio", "75:25", "--duration", "300") as cpu, \
            scenario("deadlock", "--idle-workers", "6", "--duration", "300") as dead:
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", f"--api-key={SECRET}",
                                    f"password={SECRET}"], start_new_session=True)
        try:
            yield {"cpu": cpu.pid, "dead": dead.pid, "secret": sleeper.pid}
        finally:
            sleeper.kill()
            sleeper.wait()


@pytest.fixture(scope="module")
def served(targets):
    with Serve("--pid", targets["cpu"], "--pid", targets["dead"], "--pid", targets["secret"], "--interval", "1",
               "--max-seconds", "20", "--label", "service=checkout") as s:
        yield s


def test_go_tool_pprof_cpu_profile_finds_the_hot_function(served, targets, tmp_path):
    need_go()
    url = f"{served.url}/debug/pprof/profile?seconds=2&pid={targets['cpu']}"
    res = subprocess.run(["go", "tool", "pprof", "-top", "-nodecount=20", url], capture_output=True, text=True,
                         timeout=120, env=go_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "Type: cpu" in res.stdout
    # go tool pprof prints flat times in ms below a second and in s above it
    flat = {m.group(3): float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)
            for m in re.finditer(r"^\s*(\d+(?:\.\d+)?)(ms|s)\s.*\s(\S+)\s*$", res.stdout, re.M)}
    a, b = flat.get("spin_a", 0.0), flat.get("spin_b", 0.0)
    assert a + b > 500, res.stdout  # 2 s at 100 Hz: ~2000 ms of CPU samples (fewer on a loaded box)
    # 75:25 truth; n >= 50 samples gives sigma <= 6 pp, so 0.2 is > 3 sigma
    n = (a + b) / 10
    tol = max(0.06, 3 * (0.75 * 0.25 / n) ** 0.5)
    assert a / (a + b) == pytest.approx(0.75, abs=tol), res.stdout
    tags = subprocess.run(["go", "tool", "pprof", "-tags", url.replace("seconds=2", "seconds=1")],
                          capture_output=True, text=True, timeout=120, env=go_env(tmp_path))
    assert tags.returncode == 0, tags.stderr
    assert "service: Total" in tags.stdout and "checkout" in tags.stdout, tags.stdout
    assert re.search(rf"\b{targets['cpu']}\b", tags.stdout), tags.stdout  # pid / thread_id labels


def test_go_tool_pprof_goroutine_finds_every_thread(served, targets, tmp_path):
    need_go()
    url = f"{served.url}/debug/pprof/goroutine?pid={targets['dead']}"
    res = subprocess.run(["go", "tool", "pprof", "-traces", url], capture_output=True, text=True, timeout=120,
                         env=go_env(tmp_path))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Type: goroutine" in out
    assert out.count("thread_name:") == 9, out
    for name in ["locker-1", "locker-2", *[f"idle-worker-{i}" for i in range(6)]]:
        assert name in out
    assert "take_a_then_b" in out and "take_b_then_a" in out and "idle_worker" in out


def test_goroutine_text_forms(served, targets):
    one = served.get(f"/debug/pprof/goroutine?debug=1&pid={targets['dead']}")
    assert one.status == 200 and one.ctype == "text/plain; charset=utf-8"
    text = one.text()
    assert text.startswith("goroutine profile: total 9\n")
    assert re.search(r"^6 @ Condition\.wait \((?:\S+/)?threading\.py:\d+\) from idle_worker "
                     r"\((?:\S+/)?deadlock\.py:\d+\)$", text, re.M), text
    two = served.get(f"/debug/pprof/goroutine?debug=2&pid={targets['dead']}").text()
    assert len(re.findall(r"^goroutine \d+ \[(running|idle)", two, re.M)) == 9
    assert 'thread "locker-1"' in two and "take_a_then_b(...)" in two


def test_goroutine_delta_profile(served, targets):
    r = served.get(f"/debug/pprof/goroutine?seconds=1&pid={targets['dead']}")
    assert r.status == 200 and r.ctype == "application/octet-stream"
    assert r.headers["content-disposition"] == 'attachment; filename="goroutine-delta"'
    from perfkit.formats import pprof

    prof = pprof.read(r.body)
    assert prof.sample_types[0].type == "goroutine"
    assert sum(s.values[0] for s in prof.samples) == 0  # the deadlocked threads did not move


def test_cmdline_metrics_targets_and_profiles_are_redacted(served, targets):
    pid = targets["secret"]
    r = served.get(f"/debug/pprof/cmdline?pid={pid}")
    assert r.status == 200 and r.ctype == "text/plain; charset=utf-8"
    argv = r.text().split("\0")
    assert argv[-2:] == ["--api-key=REDACTED", "password=REDACTED"], argv
    for path in ("/metrics", "/debug/perfkit/targets", f"/debug/pprof/goroutine?debug=2&pid={pid}"):
        assert SECRET not in served.get(path).text(), path
    prof = served.get(f"/debug/pprof/goroutine?pid={pid}").body
    assert SECRET.encode() not in gzip.decompress(prof)
    cpu = served.get(f"/debug/pprof/profile?seconds=1&pid={pid}")
    assert cpu.status == 200, cpu.text()
    raw = gzip.decompress(cpu.body)
    assert SECRET.encode() not in raw and b"REDACTED" in raw  # the recording's cmdline, redacted


def test_metrics_match_proc_and_pass_promtool(served, targets, tmp_path):
    r = served.get("/metrics")
    assert r.status == 200 and r.ctype.startswith("text/plain; version=0.0.4")
    text = r.text()
    pid = targets["dead"]
    with open(f"/proc/{pid}/status") as f:
        threads = int(next(ln.split()[1] for ln in f if ln.startswith("Threads:")))
    m = re.search(rf'^perfkit_process_threads\{{[^}}]*pid="{pid}"[^}}]*\}} (\S+)$', text, re.M)
    assert m and float(m.group(1)) == threads == 9, text[:2000]
    assert re.search(rf'^perfkit_target_info\{{[^}}]*origin="pid",pid="{pid}",service="checkout"\}} 1\.0$', text, re.M)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    m = re.search(rf'^perfkit_process_open_fds\{{[^}}]*pid="{pid}"[^}}]*\}} (\S+)$', text, re.M)
    assert m and abs(float(m.group(1)) - fds) <= 1  # reading /proc/PID/fd opens none in the target
    assert re.search(r'^perfkit_process_cpu_seconds_total\{.*pid="%d".*\} [1-9]' % targets["cpu"], text, re.M)
    promtool = shutil.which("promtool")
    if promtool is None:
        (pytest.fail if IN_CI else pytest.skip)("promtool not installed; run ./scripts/setup")
    res = subprocess.run([promtool, "check", "metrics"], input=r.body, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()


def test_second_cpu_profile_gets_429_with_retry_after(served, targets):
    pid = targets["cpu"]
    first: dict = {}
    th = threading.Thread(target=lambda: first.update(r=served.get(f"/debug/pprof/profile?seconds=4&pid={pid}")))
    th.start()
    try:
        assert wait_for(lambda: [p for p, c in processes_mentioning(f"--pid {pid}") if "py-spy record" in c],
                        timeout=15), "the first profile did not start"
        busy = served.get(f"/debug/pprof/profile?seconds=1&pid={pid}")
        assert busy.status == 429, busy.text()
        assert busy.headers["x-go-pprof"] == "1"
        assert 1 <= int(busy.headers["retry-after"]) <= 7
        other = served.get(f"/debug/pprof/goroutine?debug=1&pid={pid}")  # other endpoints still answer
        assert other.status == 200
    finally:
        th.join(30)
    assert first["r"].status == 200


def test_limits_and_refusals(served, targets):
    r = served.get("/debug/pprof/profile?seconds=21")
    assert r.status == 400 and "max-seconds 20" in r.text()
    for name in ("heap", "allocs"):
        r = served.get(f"/debug/pprof/{name}")
        assert r.status == 403 and "--allow-heap" in r.text()
    assert served.get("/debug/pprof/block").status == 404
    assert served.get(f"/debug/pprof/goroutine?pid={free_pid()}").status == 404
    assert served.get("/debug/pprof/goroutine?pid=12ab").status == 400
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        assert served.get("/debug/pprof/", method=method).status == 405
    assert "heap" not in served.get("/debug/pprof/").text()


def test_token_tls_and_access_log(targets, tmp_path):
    token = "t0ken-" + "x" * 26
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    tf.chmod(0o600)
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    ok = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                         "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                         str(cert)], capture_output=True, timeout=60).returncode == 0
    log = tmp_path / "access.log"
    extra = ["--tls-cert", str(cert), "--tls-key", str(key)] if ok else []
    with Serve("--pid", targets["dead"], "--token-file", str(tf), "--access-log", str(log), *extra) as s:
        ca = str(cert) if ok else None
        assert s.url.startswith("https://" if ok else "http://")
        for tok in (None, "wrong-token-wrong-token", token + "x"):
            r = s.get("/metrics", token=tok, tls_ca=ca)
            assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer"), (tok, r.status)
        assert s.get("/nope", tls_ca=ca).status == 401  # unknown paths do not leak either
        assert s.get("/metrics", token=token, tls_ca=ca).status == 200
        assert s.get("/debug/pprof/goroutine?debug=1&token=abc", token=token, tls_ca=ca).status == 200
    text = log.read_text()
    assert token not in text and " 401 " in text and " 200 " in text
    assert "token=REDACTED" in text
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_open_address_without_token_refused(targets, tmp_path):
    res = run_perfkit("serve", "--listen", "0.0.0.0:0", "--pid", targets["dead"], timeout=60)
    one_error(res, 2, "--token-file")
    weak = tmp_path / "tok"
    weak.write_text("short")
    weak.chmod(0o600)
    one_error(run_perfkit("serve", "--listen", "0.0.0.0:0", "--token-file", weak,
                              "--pid", targets["dead"]), 2, "too short")
    one_error(run_perfkit("serve", "--pid", free_pid()), 3, "no such process")


def test_shutdown_mid_profile_leaves_nothing_running(targets):
    pid = targets["cpu"]
    s = Serve("--pid", pid, "--interval", "0.5", "--gil-rate", "2")
    got: dict = {}
    th = threading.Thread(target=lambda: got.update(r=s.get(f"/debug/pprof/profile?seconds=15&pid={pid}")))
    th.start()
    assert wait_for(lambda: [p for p, c in processes_mentioning(f"--pid {pid}") if "py-spy record" in c], timeout=15)
    kids = descendants(s.pid)
    assert kids
    t0 = time.monotonic()
    rc = s.stop(signal.SIGTERM)
    took = time.monotonic() - t0
    th.join(20)
    assert rc == 0, s.stderr()
    assert took < 12, took  # the 15 s profile was cut short, not waited for
    assert got["r"].status == 200  # the client still got the partial profile
    assert wait_for(lambda: not [k for k in kids if os.path.exists(f"/proc/{k}")], timeout=10), kids
    assert not [c for _, c in processes_mentioning(f"--pid {pid}") if "py-spy" in c]
    assert os.path.exists(f"/proc/{pid}") and tracer_pid(pid) == 0
    assert "SIGTERM: shutting down" in s.stderr() and "Traceback" not in s.stderr()


def test_sighup_and_sigint_also_stop(targets):
    for sig in (signal.SIGHUP, signal.SIGINT):
        s = Serve("--pid", targets["dead"])
        assert s.get("/metrics").status == 200
        assert s.stop(sig) == 0, s.stderr()
        assert not [k for k in descendants(s.pid) if os.path.exists(f"/proc/{k}")]


def test_heap_with_allow_heap_finds_the_leaking_line(tmp_path):
    """scenarios/mem_leak.py keeps rate x T bytes alive from its LEAK LINE (± one chunk)."""
    need_go()
    rate = 1 << 20
    with scenario("mem_leak", "--rate", rate, "--duration", "120") as sc, \
            Serve("--pid", sc.pid, "--allow-heap", "--max-seconds", "10", "--heap-seconds", "2") as s:
        fields = dict(kv.split("=") for kv in sc.ready_line.split()[1:])
        url = f"{s.url}/debug/pprof/heap?seconds=3"
        res = subprocess.run(["go", "tool", "pprof", "-raw", url], capture_output=True, text=True, timeout=120,
                             env=go_env(tmp_path))
        assert res.returncode == 0, res.stderr
        from perfkit.formats import pprof

        saved = list((tmp_path / "pprof").glob("*.pb.gz"))  # what go tool pprof fetched over HTTP
        assert len(saved) == 1, res.stderr
        prof = pprof.read(saved[0].read_bytes())
        assert prof.sample_types[prof.default_index].type == "inuse_space"
        i = prof.default_index
        leak = sum(smp.values[i] for smp in prof.samples
                   if any(prof.frames[f].function == "leak" and prof.frames[f].line == int(fields["leak_line"])
                          for f in smp.stack))
        expected = rate * (prof.recording.duration_s or 3.0)
        assert abs(leak - expected) <= 2 * int(fields["chunk"]) + 0.1 * expected, (leak, expected)
        assert "inuse_space" in res.stdout and "leak" in res.stdout
        assert s.get("/debug/pprof/allocs?seconds=2&debug=1").status == 400  # as Go: incompatible
        top = s.get("/debug/pprof/allocs?debug=1")  # --heap-seconds 2
        assert top.status == 200 and top.ctype == "text/plain; charset=utf-8"
        assert re.search(rf"@ leak \S*mem_leak\.py:{fields['leak_line']}$", top.text(), re.M), top.text()
        assert s.stop() == 0
        assert sc.alive() and tracer_pid(sc.pid) == 0  # memray detached, nothing left in the target


def test_gil_and_idle_shares_from_nonblocking_dumps(targets):
    """cpu_split's one thread always runs and holds the GIL; deadlock's 9 threads all wait."""
    with Serve("--pid", targets["cpu"], "--pid", targets["dead"], "--gil-rate", "4", "--interval", "1") as s:
        def shares():
            text = s.get("/metrics").text()
            out = {}
            for name in ("gil_held", "threads_idle"):
                for pid in (targets["cpu"], targets["dead"]):
                    m = re.search(rf'^perfkit_process_{name}_ratio\{{[^}}]*pid="{pid}"[^}}]*\}} (\S+)$', text, re.M)
                    if m:
                        out[(name, pid)] = float(m.group(1))
            return out if len(out) == 4 else None

        assert wait_for(shares, timeout=15)
        time.sleep(2.5)  # ~10 dumps each
        got = shares()
    # py-spy sees the spinning thread on-CPU in nearly every dump; allow a few misses under load
    assert got[("gil_held", targets["cpu"])] >= 0.6 and got[("threads_idle", targets["cpu"])] <= 0.4, got
    assert got[("gil_held", targets["dead"])] == 0.0 and got[("threads_idle", targets["dead"])] == 1.0, got
