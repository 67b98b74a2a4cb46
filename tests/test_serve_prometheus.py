"""`perfkit serve` with the real Prometheus: a server scraping /metrics with a bearer
token, and promtool checking and unit-testing every generated alert rule.

Truth: scenarios/leak_threads.py starts with 3 threads (main + 2 helpers) and leaks
``--rate`` threads per second; /proc/PID/status ``Threads:`` is the ground truth.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from serve_helpers import Serve, wait_for

from conftest import IN_CI, run_perfkit, scenario

pytestmark = pytest.mark.live


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        (pytest.fail if IN_CI else pytest.skip)(f"{name} not installed (Debian prometheus); run ./scripts/setup")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(ln.split()[1] for ln in f if ln.startswith("Threads:")))


def _query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_prometheus_scrapes_with_a_bearer_token_and_sees_proc_thread_counts(tmp_path):
    prometheus = _tool("prometheus")
    token = "prom-" + "k" * 27
    tf = tmp_path / "token"
    tf.write_text(token)
    tf.chmod(0o600)
    with scenario("leak_threads", "--rate", "0.5", "--duration", "120") as sc, \
            Serve("--pid", sc.pid, "--token-file", tf, "--interval", "1") as s:
        port = int(s.info["port"])
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "perfkit", "authorization": {"type": "Bearer", "credentials_file": str(tf)},
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                               {"job_name": "perfkit-no-token",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
        web = _free_port()
        prom = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        base = f"http://127.0.0.1:{web}"
        try:
            assert wait_for(lambda: _query(base, 'up{job="perfkit"} == 1') if _ready(base) else None, timeout=60), \
                "prometheus never scraped perfkit serve"
            # the scrape without a token is refused (401): Prometheus marks it down
            assert wait_for(lambda: _query(base, 'up{job="perfkit-no-token"} == 0'), timeout=30)
            expr = f'perfkit_process_threads{{job="perfkit",pid="{sc.pid}"}}'
            # /proc's truth, recorded every 50 ms while Prometheus scrapes every second
            history: list[tuple[float, int]] = []
            t_end = time.time() + 6
            while time.time() < t_end:
                history.append((time.time(), _proc_threads(sc.pid)))
                time.sleep(0.05)
            series = _query(base, f"{expr}[5s]")
            assert series, _query(base, "perfkit_process_threads")
            assert "leak_threads.py" in series[0]["metric"]["cmd"]
            values = [(float(ts), float(v)) for ts, v in series[0]["values"]]
            assert len(values) >= 3, values
            for ts, v in values:
                # the scrape's reading is at most ~1 s older than its timestamp (fresh() re-reads older ones)
                seen = {c for t, c in history if ts - 1.5 <= t <= ts + 0.2}
                assert v in seen, (ts, v, sorted(seen))
            counts = [v for _, v in values]
            assert counts == sorted(counts) and counts[-1] > counts[0] >= 3  # it leaks: the series only grows
        finally:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
    assert prom.returncode is not None


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


# ---------------------------------------------------------------------------- rules

L1 = {"pid": "101", "cmd": "python app.py", "instance": "host-a:6060", "job": "perfkit"}
L2 = {"pid": "202", "cmd": "python steady.py", "instance": "host-a:6060", "job": "perfkit"}
L3 = {"pid": "303", "cmd": "python other.py", "instance": "host-b:6060", "job": "perfkit"}


def _sel(name: str, labels: dict, **more) -> str:
    items = {**labels, **more}
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(items.items())) + "}"


def _render(text: str, labels: dict) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


def _rule_tests(rules: dict) -> list[dict]:
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}

    def expect(alert: str, labels: dict, **extra) -> dict:
        r = by_name[alert]
        lab = {**labels, **extra, "severity": r["labels"]["severity"]}
        return {"exp_labels": lab, "exp_annotations": {k: _render(v, lab) for k, v in r["annotations"].items()}}

    tests = []
    for res in ("memory", "threads", "fds", "sockets", "children"):
        alert = f"Perfkit{res.capitalize()}Leak"
        tests.append({"interval": "1m", "input_series": [
            {"series": _sel("perfkit_leak_detected", L1, resource=res), "values": "0 0 1x20"},
            {"series": _sel("perfkit_leak_detected", L2, resource=res), "values": "0x22"},
            {"series": _sel("perfkit_leak_detected", L3, resource=res), "values": "1 0 1 0 1 0 1 0 1 0 1 0 1 0 1"}],
            "alert_rule_test": [{"eval_time": "8m", "alertname": alert, "exp_alerts": []},  # not yet: for 10m
                                {"eval_time": "15m", "alertname": alert,
                                 "exp_alerts": [expect(alert, L1, resource=res)]}]})
    tests.append({"interval": "1m", "input_series": [
        {"series": _sel("perfkit_process_open_fds", L1), "values": "100+10x90"},
        {"series": _sel("perfkit_process_max_fds", L1), "values": "1024x90"},
        {"series": _sel("perfkit_process_open_fds", L2), "values": "100x90"},
        {"series": _sel("perfkit_process_max_fds", L2), "values": "1024x90"}],
        "alert_rule_test": [{"eval_time": "80m", "alertname": "PerfkitFdExhaustionPredicted",
                             "exp_alerts": [expect("PerfkitFdExhaustionPredicted", L1)]}]})
    tests.append({"interval": "1m", "input_series": [
        {"series": _sel("perfkit_process_open_fds", L1), "values": "950x20"},
        {"series": _sel("perfkit_process_max_fds", L1), "values": "1000x20"},
        {"series": _sel("perfkit_process_open_fds", L2), "values": "500x20"},
        {"series": _sel("perfkit_process_max_fds", L2), "values": "1000x20"}],
        "alert_rule_test": [{"eval_time": "3m", "alertname": "PerfkitFdsNearLimit", "exp_alerts": []},
                            {"eval_time": "10m", "alertname": "PerfkitFdsNearLimit",
                             "exp_alerts": [expect("PerfkitFdsNearLimit", L1)]}]})
    tests.append({"interval": "1m", "input_series": [
        {"series": _sel("perfkit_process_resident_memory_bytes", L1), "values": "1000000000+10000000x90"},
        {"series": _sel("perfkit_process_memory_limit_bytes", L1), "values": "2000000000x90"},
        {"series": _sel("perfkit_process_resident_memory_bytes", L2), "values": "1500000000x90"},
        {"series": _sel("perfkit_process_memory_limit_bytes", L2), "values": "2000000000x90"}],
        "alert_rule_test": [{"eval_time": "80m", "alertname": "PerfkitMemoryLimitPredicted",
                             "exp_alerts": [expect("PerfkitMemoryLimitPredicted", L1)]}]})
    tests.append({"interval": "1m", "input_series": [
        {"series": _sel("perfkit_cgroup_cpu_periods_total", L1), "values": "0+600x40"},
        {"series": _sel("perfkit_cgroup_cpu_throttled_periods_total", L1), "values": "0+300x40"},
        {"series": _sel("perfkit_cgroup_cpu_periods_total", L2), "values": "0+600x40"},
        {"series": _sel("perfkit_cgroup_cpu_throttled_periods_total", L2), "values": "0+30x40"}],  # 5 %: fine
        "alert_rule_test": [{"eval_time": "10m", "alertname": "PerfkitCPUThrottled", "exp_alerts": []},
                            {"eval_time": "30m", "alertname": "PerfkitCPUThrottled",
                             "exp_alerts": [expect("PerfkitCPUThrottled", L1)]}]})
    tests.append({"interval": "1m", "input_series": [
        {"series": _sel("perfkit_target_info", L1, origin="match"), "values": "1x5 stale"},
        {"series": _sel("perfkit_target_info", L2, origin="match"), "values": "1x15"},
        {"series": _sel("perfkit_target_info", L3, origin="match"), "values": "1x5 stale"},
        {"series": 'up{instance="host-a:6060",job="perfkit"}', "values": "1x15"},
        {"series": 'up{instance="host-b:6060",job="perfkit"}', "values": "1x5 0x10"}],  # perfkit itself down
        "alert_rule_test": [{"eval_time": "4m", "alertname": "PerfkitTargetGone", "exp_alerts": []},
                            {"eval_time": "8m", "alertname": "PerfkitTargetGone",
                             "exp_alerts": [expect("PerfkitTargetGone", L1, origin="match")]},
                            {"eval_time": "20m", "alertname": "PerfkitTargetGone", "exp_alerts": []}]})
    return tests


def test_generated_rules_pass_promtool_check_and_unit_tests(tmp_path):
    promtool = _tool("promtool")
    res = run_perfkit("serve", "--print-rules", check=True)
    rules_file = tmp_path / "perfkit-rules.yml"
    rules_file.write_text(res.stdout)
    check = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    rules = yaml.safe_load(res.stdout)
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(names)} rules found" in check.stdout
    for r in (r for g in rules["groups"] for r in g["rules"]):
        assert re.search(r"next: perfkit (leaks|threads|heap|affinity|triage)\b", r["annotations"]["summary"]), r
    tests = _rule_tests(rules)
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    assert tested == set(names), set(names) ^ tested  # every generated rule has a test
    test_file = tmp_path / "perfkit-rules.test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [rules_file.name], "evaluation_interval": "1m",
                                         "tests": tests}, sort_keys=False))
    run = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout
