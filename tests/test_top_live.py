"""`perfkit top` driven for real: under tmux (a real terminal: keys, the screen, NO_COLOR),
as plain snapshots when stdout is a pipe, as JSON around a launched program — always
against scenarios/cpu_split.py (truth: spin_a 75 %, spin_b 25 % of one busy thread),
and always leaving the target as it was: alive, not stopped, not traced, no py-spy or
perfkit guard left behind."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from conftest import IN_CI, PY, ROOT, one_error, perfkit_cmd, run_perfkit, scenario, scenario_cmd

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]

ROW = re.compile(r"^\s*(\d+\.\d)\s+(\d+\.\d)\s+\d+\.\d+\s+\d+\.\d+\s+(\S+)", re.M)
SAMPLES = re.compile(r"([\d,]+) samples in")
COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7]|38;[25];[0-9;]+)m")


def tmux_bin() -> str:
    exe = shutil.which("tmux")
    if exe:
        return exe
    if IN_CI:
        pytest.fail("tmux is not installed (scripts/setup installs it)")
    pytest.skip("tmux is not installed; run ./scripts/setup")


class Tmux:
    """A private tmux server (its own socket) running one command in a 120x40 pane."""

    def __init__(self, command: str, env: dict | None = None) -> None:
        self.exe = tmux_bin()
        self.sock = f"perfkit-test-{uuid.uuid4().hex[:8]}"
        self.status = f"/tmp/{self.sock}.status"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # the pane decides the size: a COLUMNS/LINES inherited from the test runner must not
        script = (f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES {exports} {command}; "
                  f"echo $? > {self.status}; sleep 120")
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", script)

    def tmux(self, *args: str) -> str:
        res = subprocess.run([self.exe, "-L", self.sock, *args], capture_output=True, text=True, timeout=20)
        return res.stdout

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "0")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", *keys)

    def wait_for(self, pred, timeout: float, what: str) -> str:
        end = time.monotonic() + timeout
        text = ""
        while time.monotonic() < end:
            text = self.screen()
            if pred(text):
                return text
            time.sleep(0.25)
        raise AssertionError(f"{what} not on screen within {timeout:g} s:\n{text}")

    def exit_status(self, timeout: float) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.path.exists(self.status):
                with open(self.status) as f:
                    data = f.read().strip()
                if data:
                    return int(data)
            time.sleep(0.1)
        raise AssertionError(f"perfkit top did not exit within {timeout:g} s:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([self.exe, "-L", self.sock, "kill-server"], capture_output=True, timeout=20)
        if os.path.exists(self.status):
            os.unlink(self.status)


def top_rows(text: str) -> list[tuple[float, float, str]]:
    return [(float(a), float(b), name) for a, b, name in ROW.findall(text)]


def samples_on(text: str) -> int:
    m = SAMPLES.search(text)
    return int(m.group(1).replace(",", "")) if m else 0


def assert_unharmed(pid: int) -> None:
    """Alive, not stopped, not traced, and no py-spy or perfkit guard still around."""
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    assert status["State"][0] not in "TtZX", status["State"]
    assert status["TracerPid"].strip() == "0"
    end = time.monotonic() + 10
    while True:
        left = helpers(pid)
        if not left or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert not left, left


def helpers(pid: int) -> list[str]:
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
        except OSError:
            continue
        text = " ".join(argv)
        if ("py-spy" in text or "perfkit/procs/guard.py" in text) and str(pid) in argv:
            found.append(text)
    return found


def test_top_in_a_terminal_shows_the_hot_function_answers_keys_and_q_exits_0():
    with scenario("cpu_split", "--ratio", "75:25", "--duration", "90") as s:
        t = Tmux(shlex.join([*perfkit_cmd(), "top", "--pid", str(s.pid)]), env={"TERM": "xterm-256color"})
        try:
            first = t.wait_for(lambda x: top_rows(x) and top_rows(x)[0][2] == "spin_a", 12,
                               "spin_a as the hottest function")
            assert "perfkit top · pid" in first and "rate" in first
            # enough samples for a tolerance over 3 sigma: sqrt(.75*.25/300) = 2.5 pp -> 10 pp is 4 sigma
            text = t.wait_for(lambda x: samples_on(x) >= 300, 20, "300 samples")
            own = {name: a for a, _, name in top_rows(text)}
            assert abs(own["spin_a"] - 75) <= 10 and abs(own["spin_b"] - 25) <= 10, text
            assert re.search(r"^\s*\d+\s+\d+%\s+\d+%\s+\d+%", text, re.M), "a thread row with CPU/active/GIL"
            assert COLOUR.search(t.screen(escapes=True)), "colours on a colour terminal"
            t.keys("2")
            t.wait_for(lambda x: "by total share" in x, 5, "sort by total")
            t.keys("l")
            t.wait_for(lambda x: "lines by total share" in x, 5, "the lines view")
            t.keys("t")
            t.wait_for(lambda x: "tid" not in x, 5, "the threads panel hidden")
            t.keys("T")
            t.wait_for(lambda x: f"thread {s.pid}" in x, 5, "one thread selected")
            t.keys("Space")
            t.wait_for(lambda x: "PAUSED" in x, 5, "paused")
            t.keys("q")
            assert t.exit_status(15) == 0
        finally:
            t.close()
        assert s.alive()
        assert_unharmed(s.pid)


def test_top_honours_no_color():
    with scenario("cpu_split", "--duration", "60") as s:
        t = Tmux(shlex.join([*perfkit_cmd(), "top", "--pid", str(s.pid)]),
                 env={"TERM": "xterm-256color", "NO_COLOR": "1"})
        try:
            t.wait_for(lambda x: "spin_a" in x, 12, "spin_a")
            assert not COLOUR.search(t.screen(escapes=True))
            t.keys("q")
            assert t.exit_status(15) == 0
        finally:
            t.close()
        assert_unharmed(s.pid)


def test_top_without_a_terminal_prints_plain_snapshots_and_sigterm_exits_130():
    with scenario("cpu_split", "--duration", "60") as s:
        proc = subprocess.Popen([*perfkit_cmd(), "top", "--pid", str(s.pid), "--delay", "1"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "COLUMNS": "120"})
        time.sleep(4.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert "\x1b" not in out
        snaps = out.count("perfkit top · pid")
        assert snaps >= 2, out
        last = out.split("perfkit top · pid")[-1]
        assert top_rows(last)[0][2] == "spin_a", out
        assert s.alive()
        assert_unharmed(s.pid)


def test_top_json_around_a_launched_program():
    res = run_perfkit("top", "--json", "--delay", "1", "--", *scenario_cmd("cpu_split", "--duration", "4"),
                      timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["reason"] == "target-exit" and doc["program"]["returncode"] == 0
    last = doc["snapshots"][-1]
    assert last["stats"]["samples"] >= 300, last["stats"]  # 4 sigma at 10 pp, as above
    own = {r["function"]: r["own"] for r in last["rows"]}
    assert abs(own["spin_a"] - 0.75) <= 0.10 and abs(own["spin_b"] - 0.25) <= 0.10
    assert 50 <= last["stats"]["achieved_rate"] <= 100
    thread = last["threads"][0]
    assert thread["gil"] is not None and thread["gil"] > 0.5  # the one busy thread holds the GIL
    assert thread["cpu"] is not None and thread["cpu"] > 0


def test_top_of_a_failing_program_exits_3_and_says_so():
    res = run_perfkit("top", "--delay", "1", "--", PY, "-c", "import time, sys; time.sleep(1.5); sys.exit(4)",
                      timeout=60)
    one_error(res, 3, "exited with status 4")


def test_top_refuses_bad_input():
    one_error(run_perfkit("top"), 2, "no target")
    one_error(run_perfkit("top", "--pid", "1", "--sort", "sideways"), 2, "--sort")
    one_error(run_perfkit("top", "--pid", "999999999"), 3)
