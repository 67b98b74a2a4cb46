"""Scratch directories left by a perfkit run that was SIGKILLed are swept by the next run;
those of a run still going are not, whatever its command line (perfkit.api inside a
program, a test runner: a concurrent `perfkit` once deleted such a run's py-spy stderr
mid-recording)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from perfkit.fileio import TEMP_PREFIX, sweep_stale


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_keeps_a_live_creator_and_removes_dead_and_reused_pids(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # no "perfkit" in its argv
    try:
        time.sleep(0.2)
        mine = tmp_path / f"{TEMP_PREFIX}cpu-{live.pid}-abc"
        mine.mkdir()
        (mine / "py-spy.stderr").write_text("")
        dead = tmp_path / f"{TEMP_PREFIX}heap-{_dead_pid()}-def"
        dead.mkdir()
        reused = tmp_path / f"{TEMP_PREFIX}cpu-{live.pid}-old"  # written before that pid's process began
        reused.mkdir()
        past = time.time() - 3600
        os.utime(reused, (past, past))
        other = tmp_path / "someone-else-123-x"
        other.mkdir()
        removed = sweep_stale(str(tmp_path))
        assert sorted(removed) == sorted([str(dead), str(reused)])
        assert mine.is_dir() and (mine / "py-spy.stderr").exists() and other.is_dir()
    finally:
        live.kill()
        live.wait()
    assert sweep_stale(str(tmp_path)) == [str(mine)]  # its creator gone, the next run sweeps it


def test_partial_writes_of_a_live_writer_are_kept_and_a_dead_ones_removed(tmp_path):
    from perfkit.fileio import sweep_partial

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        mine = tmp_path / f".report.html.perfkit-{live.pid}-x.tmp"
        mine.write_text("half")
        dead = tmp_path / f".report.html.perfkit-{_dead_pid()}-y.tmp"
        dead.write_text("half")
        sweep_partial(tmp_path, "report.html")
        assert mine.exists() and not dead.exists()
    finally:
        live.kill()
        live.wait()
