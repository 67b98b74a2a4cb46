"""The measuring half of the pytest plugin (loaded only when its options or marker are used).

Per test (a ``pytest.Function`` whose normal call passed): a warm call that calibrates
how many calls make one round (``inproc``), then rounds through the gate's one
adaptive loop (``runner.adaptive`` / ``runner.collect``) with the gate's repetition
plan, statistics and minimum effects:

* ``--perfkit-record FILE``: the cap of rounds of every selected metric, stored per test
  id in a gate baseline file (entries of tests not run this time are kept);
* ``--perfkit-check FILE``: rounds until each metric is decided or hopeless (unpaired
  against the stored rounds: Mann-Whitney / Hodges-Lehmann for time, Welch t for
  memory), with the false-alarm budget split over every test x metric x look; a
  regression fails that test (inconclusive too with ``--perfkit-strict``), and the
  gate's reports are written at the end;
* ``@pytest.mark.perfkit_limit(...)``: absolute limits, on every run, failing with the
  measured number (``limits``).

Only this test's own call is measured; fixtures are set up once and every round calls
the test body with the same fixture values.  A test that fails on a repeat is not
measured (and said so); its first, real outcome stands.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from perfkit.errors import PerfkitError

_DESCRIPTIONS = {
    "cpu": "CPU time per call of the test, user + system, in-process, at the baseline's reference speed",
    "wall": "wall-clock time per call of the test, at the baseline's reference speed",
    "heap_peak": "peak heap during one call of the test (memray, Python allocators traced)",
    "allocations": "allocations during one call of the test (memray)",
}
PLUGIN_METRICS = tuple(_DESCRIPTIONS)
_SOURCE = "pytest"
# Shift of one whole pytest process against another, log sd, when the baseline has too
# few sessions to tell: CPU per call of the same test in separate runs on the shared
# 2-core development VM, after speed correction, spread by 3-4 % (docs/pytest.md) — but
# with a tail: at 4 % one fresh-clone CI run flagged an unchanged test twice in a row
# (a shift past the +-14 % that 4 % allows at the suite's alpha), so the default is 6 %.
DEFAULT_BETWEEN_SD = {"cpu": 0.06, "wall": 0.06, "heap_peak": 0.0, "allocations": 0.0}
_MIN_SESSION_DF = 3


def _usage(exc: PerfkitError) -> pytest.UsageError:
    return pytest.UsageError(f"perfkit: {exc.message}" + (f"\n  {exc.hint}" if exc.hint else ""))


class GateSession:
    """A pytest plugin object: measures tests, decides, reports."""

    def __init__(self, config) -> None:
        self.config = config
        opt = config.getoption
        self.record_path = opt("perfkit_record", None)
        self.check_path = opt("perfkit_check", None)
        if self.record_path and self.check_path:
            raise pytest.UsageError("perfkit: give --perfkit-record or --perfkit-check, not both")
        self.mode = "record" if self.record_path else ("check" if self.check_path else None)
        if self.mode and (hasattr(config, "workerinput") or opt("numprocesses", None)):
            raise pytest.UsageError("perfkit: --perfkit-record / --perfkit-check measure tests one at a time; "
                                    "they cannot run under pytest-xdist (-n): parallel workers share the CPU")
        self.started = time.time()
        self._t0 = time.monotonic()
        self.results: list = []  # BenchResult per checked test
        self.recorded: dict[str, dict] = {}
        self.notes: list[str] = []
        self.written: list[str] = []
        self.stored: Any = None  # the baseline (check, append)
        self.append = bool(opt("perfkit_append", False))
        if self.append and not self.record_path:
            raise pytest.UsageError("perfkit: --perfkit-append adds a session to a baseline: "
                                    "give --perfkit-record FILE")
        try:
            self.cfg = self._load_config()
            self.metrics = self._metrics()
            self._preflight()
            from perfkit.gate import baseline

            if self.mode == "check":
                self.stored = baseline.read(self.check_path)
            elif self.append and Path(self.record_path).exists():
                self.stored = baseline.read(self.record_path)
        except PerfkitError as exc:
            raise _usage(exc) from None
        from perfkit.gate import runner

        self.plans = runner.plans(self.cfg)
        self.alpha_per_test = self.cfg.alpha
        self.between = {m: (DEFAULT_BETWEEN_SD[m], "the default") for m in self.metrics}
        self.scratch = tempfile.mkdtemp(prefix="perfkit-pytest-")
        self.ref_n, self.ref_s = self._reference()

    def _reference(self) -> tuple[int, float]:
        """The speed reference: recorded once per baseline, re-used by every check of it."""
        from perfkit import stats
        from perfkit.gate import inproc

        if self.mode == "check" or (self.mode == "record" and self.append):
            stored = self.stored
            path = self.check_path or self.record_path
            ref = (stored.settings or {}).get("reference") or {}
            if isinstance(ref.get("iterations"), int) and isinstance(ref.get("cpu_s"), (int, float)) \
                    and ref["iterations"] > 0 and ref["cpu_s"] > 0:
                return ref["iterations"], float(ref["cpu_s"])
            raise pytest.UsageError(f"perfkit: {path} was not recorded by pytest --perfkit-record "
                                    f"(it has no speed reference)\n  record it with: pytest --perfkit-record "
                                    f"{path}")
        if self.mode == "record":
            n = inproc.reference_size()
            times = []
            for _ in range(9):
                t0 = inproc.cpu_seconds()
                inproc.reference(n)
                times.append(inproc.cpu_seconds() - t0)
            return n, stats.median(times)
        return 0, 0.0  # limits alone: raw numbers, no reference runs

    # ------------------------------------------------------------------ set-up

    def _load_config(self):
        """``[tool.perfkit.gate]`` of the project (alpha, strict, min_effect, repetitions), then the flags."""
        from perfkit.gate import config as cfgmod

        opt = self.config.getoption
        pyproject = Path(str(self.config.rootpath)) / "pyproject.toml"
        cfg = cfgmod.load(pyproject) if pyproject.is_file() else cfgmod.GateConfig()
        alpha = opt("perfkit_alpha", None)
        if alpha is not None and not (0 < alpha <= 0.5):
            raise cfgmod.UsageError(f"--perfkit-alpha must be in (0, 0.5], not {alpha:g}")
        for name in ("perfkit_rounds", "perfkit_max_rounds"):
            v = opt(name, None)
            if v is not None and v < 2:
                raise cfgmod.UsageError(f"--{name.replace('_', '-')} must be at least 2, not {v}")
        effects = opt("perfkit_min_effect", None)
        return cfgmod.with_overrides(
            cfg, repetitions=opt("perfkit_rounds", None), max_repetitions=opt("perfkit_max_rounds", None),
            alpha=alpha, strict=opt("perfkit_strict", None),
            min_effect=cfgmod.parse_min_effects(effects, "--perfkit-min-effect") if effects else None)

    def _metrics(self) -> tuple[str, ...]:
        from perfkit.gate import config as cfgmod

        text = self.config.getoption("perfkit_metrics", None)
        if text:
            chosen = cfgmod.parse_metrics(text, "--perfkit-metrics")
            bad = [m for m in chosen if m not in PLUGIN_METRICS]
            if bad:
                raise cfgmod.UsageError(f"--perfkit-metrics: {bad[0]!r} is a benchmark-command metric; a test "
                                        f"measures {', '.join(PLUGIN_METRICS)}",
                                        "use perfkit gate for rss, threads and instructions of a whole program")
            return chosen
        return ("cpu", "heap_peak", "allocations") if self.config.getoption("perfkit_memory", False) else ("cpu",)

    def _preflight(self) -> None:
        from perfkit.gate import preflight

        checks = []
        if self.mode and any(m in ("heap_peak", "allocations") for m in self.metrics):
            checks.append(self._memray_check())
        if self.record_path:
            checks.append(preflight.writable_file(self.record_path, create_parents=True))
        for name in ("perfkit_junit", "perfkit_markdown"):
            p = self.config.getoption(name, None)
            if p:
                checks.append(preflight.writable_file(p, create_parents=True))
        preflight.require(checks)
        if self.record_path and Path(self.record_path).exists():
            self._previous()  # an existing file must be a baseline: never clobber something else

    def _memray_check(self):
        from perfkit.gate import preflight

        c = preflight.own_module("memray", why="measuring memory per test (--perfkit-memory, perfkit_limit memory)")
        if c.ok and self.config.getoption("memray", False):
            return preflight.Check("memray tracker", False, "--perfkit-memory and pytest-memray's --memray both "
                                   "track allocations, and only one memray tracker can run at a time",
                                   "drop one of them", preflight.UsageError)
        return c

    def _previous(self) -> dict:
        from perfkit.gate import baseline

        return baseline.read(self.record_path).benchmarks

    def pytest_report_header(self, config):
        if self.mode == "record":
            return [f"perfkit: recording {', '.join(self.metrics)} per test into {self.record_path} "
                    f"({self.plans['plain'].cap} rounds)"]
        if self.mode == "check":
            return [f"perfkit: checking {', '.join(self.metrics)} per test against {self.check_path} "
                    f"(alpha {self.cfg.alpha:g}{', strict' if self.cfg.strict else ''})"]
        return None

    def pytest_collection_finish(self, session) -> None:
        """The false-alarm budget is split over every test x metric x look that will be checked."""
        if self.mode != "check":
            return
        looks = 0
        for item in session.items:
            for m in self._gate_metrics(item.nodeid):
                looks += self.plans[_kind(m)].looks
        self.alpha_per_test = self.cfg.alpha / max(1, looks)
        self.between = self._between_sd()

    def _between_sd(self) -> dict[str, tuple[float, str]]:
        """Per metric: how far one process lands from another (log sd) and where that number comes from."""
        from perfkit import stats

        out = {}
        for metric in self.metrics:
            groups = [e.get("sessions", {}).get(metric) or [] for e in self.stored.benchmarks.values()
                      if isinstance(e, dict)]
            sd, df = stats.pooled_group_sd([g for g in groups if all(isinstance(v, (int, float)) for v in g)])
            if df >= _MIN_SESSION_DF:
                out[metric] = (sd, f"estimated from the recorded sessions ({df} degrees of freedom)")
            else:
                out[metric] = (DEFAULT_BETWEEN_SD[metric], "the default (record more sessions with --perfkit-append)")
        return out

    # ------------------------------------------------------------------ per test

    def _gate_metrics(self, nodeid: str) -> list[str]:
        if self.mode == "record":
            return list(self.metrics)
        if self.mode == "check":
            entry = self.stored.benchmarks.get(nodeid)
            if not entry:
                return []
            return [m for m in self.metrics if m in entry.get("metrics", {})]
        return []

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_call(self, item) -> None:
        """After the test's own call passed: measure it in rounds, decide, fail it if it regressed."""
        if not isinstance(item, pytest.Function):
            return
        from perfkit.gate import inproc, limits

        marker = item.get_closest_marker("perfkit_limit")
        try:
            lims = limits.from_kwargs(dict(marker.kwargs)) if marker is not None else []
            if marker is not None and marker.args:
                raise ValueError("perfkit_limit takes keyword arguments only, e.g. cpu='50 ms'")
        except ValueError as exc:
            pytest.fail(f"perfkit_limit: {exc}", pytrace=False)
        gate = self._gate_metrics(item.nodeid)
        if self.mode == "check" and item.nodeid not in self.stored.benchmarks:
            self.notes.append(f"{item.nodeid}: not in the baseline, not checked (record the baseline again)")
        need = list(dict.fromkeys(gate + [lim.metric for lim in lims]))
        if not need:
            return
        if any(_kind(m) == "memray" for m in need) and not self.mode:
            c = self._memray_check()
            if not c.ok:
                pytest.fail(f"perfkit_limit: {c.detail}" + (f" ({c.hint})" if c.hint else ""), pytrace=False)
        entry = self.stored.benchmarks.get(item.nodeid, {}) if self.stored else {}
        m = inproc.Measurer(item.runtest, scratch=self.scratch, ref_n=self.ref_n if gate else 0, ref_s=self.ref_s)
        try:
            m.calibrate()
            if isinstance(entry.get("calls_per_round"), int) and entry["calls_per_round"] >= 1 and gate:
                m.calls = min(entry["calls_per_round"], inproc.MAX_CALLS)  # the baseline's rounds, per call alike
            values, result = self._measure(item.nodeid, m, gate, [lim.metric for lim in lims])
            del values
        except inproc.NotRepeatable as exc:
            why = (f"{item.nodeid}: not measured: {exc} — it does not pass when called again with the same "
                   f"fixture values")
            self.notes.append(why)
            if lims:
                pytest.fail(f"perfkit_limit: cannot measure the test: {exc}", pytrace=False)
            return
        except PerfkitError as exc:
            pytest.fail(f"perfkit: {exc.message}", pytrace=False)
        except RuntimeError as exc:  # memray: another tracker is active (memray run, a test's own Tracker)
            pytest.fail(f"perfkit: cannot measure memory: {exc}", pytrace=False)
        problems = limits.violations(lims, m.raw_values(), m.calls)
        if result is not None:
            self.results.append(result)
            problems += [_verdict_line(r, m.calls) for r in result.results if self._fails(r)]
        if problems:
            pytest.fail("perfkit: " + "\nperfkit: ".join(problems), pytrace=False)

    def _fails(self, r) -> bool:
        from perfkit import stats

        return r.decision == stats.REGRESSION or (self.cfg.strict and r.decision == stats.INCONCLUSIVE)

    def _measure(self, nodeid: str, m, gate: list[str], limited: list[str]):
        """(values per metric, BenchResult or None): the rounds of this test."""
        from perfkit.gate import runner
        from perfkit.gate.results import BenchResult, MetricResult

        t0 = time.monotonic()
        values: dict[str, list[float]] = {}
        result = None
        if self.mode == "record" and gate:
            from perfkit import stats

            values = runner.collect(gate, m.run, self.plans)
            raw = m.raw_values()
            entry = {"source": _SOURCE, "metrics": {k: values[k] for k in gate},
                     "sessions": {k: [stats.median(values[k])] for k in gate},
                     "raw": {k: raw[k] for k in ("cpu", "wall") if k in gate},
                     "calls_per_round": m.calls, "profiles": None}
            old = self.stored.benchmarks.get(nodeid) if self.stored else None
            if isinstance(old, dict) and isinstance(old.get("metrics"), dict):  # --perfkit-append: one more session
                for k in gate:
                    if k in old["metrics"]:
                        entry["metrics"][k] = list(old["metrics"][k]) + entry["metrics"][k]
                        entry["sessions"][k] = list((old.get("sessions") or {}).get(k) or []) + entry["sessions"][k]
                entry["calls_per_round"] = old.get("calls_per_round", m.calls)
            self.recorded[nodeid] = entry
        elif self.mode == "check" and gate:
            entry = self.stored.benchmarks[nodeid]
            base = entry["metrics"]
            rows = {k: MetricResult(nodeid, k, list(base[k]), [], self._min_effect(k), False,
                                    between_sd=_between_for(self.between[k][0], base[k]),
                                    base_groups=max(1, len((entry.get("sessions") or {}).get(k) or [])))
                    for k in gate}
            runner.adaptive(rows, {"head": m.run}, self.plans, alpha_per_test=self.alpha_per_test)
            values = {k: r.head for k, r in rows.items()}
            result = BenchResult(nodeid, [_SOURCE, nodeid], [_SOURCE, nodeid], list(rows.values()))
        # limits alone (or of a kind the gate did not run): the first look's rounds give a median / a max
        for kind in sorted({_kind(k) for k in limited} - m.kinds_run()):
            for _ in range(self.plans[kind].first):
                m.run(kind)
        if result is not None:
            result.elapsed_s = time.monotonic() - t0
        return values, result

    def _min_effect(self, metric: str) -> float:
        from perfkit.gate.metrics import METRICS

        return self.cfg.min_effect.get(metric, METRICS[metric].min_effect)

    # ------------------------------------------------------------------ the end

    def gate_result(self):
        from perfkit.gate import baseline
        from perfkit.gate.results import GateResult

        env = baseline.environment()
        res = GateResult("check", list(self.results), self.cfg.alpha, self.cfg.strict, env,
                         self.stored.environment if self.stored else None, started=self.started,
                         descriptions=dict(_DESCRIPTIONS))
        if self.stored:
            diffs = baseline.machine_differences(self.stored.environment, env)
            if diffs:
                res.warnings.append("the baseline was recorded on a different machine (" + "; ".join(diffs) +
                                    "): compared anyway, but CPU time may differ for that reason alone — "
                                    "record the baseline on this runner")
        res.warnings += self.notes
        res.elapsed_s = time.monotonic() - self._t0
        return res

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        try:
            if self.mode == "record":
                self._write_baseline()
            elif self.mode == "check":
                self._write_reports(self.gate_result())
        except PerfkitError as exc:
            self.notes.append(f"could not write a report: {exc.message}")
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _write_baseline(self) -> None:
        from perfkit.gate import baseline

        base = baseline.new({"source": _SOURCE, "rounds": self.plans["plain"].cap,
                             "memory_rounds": self.plans["memray"].cap,
                             "reference": {"iterations": self.ref_n, "cpu_s": self.ref_s}})
        base.benchmarks = dict(self.recorded)
        if Path(self.record_path).exists():
            for k, v in self._previous().items():  # tests not run this time keep their entries
                base.benchmarks.setdefault(k, v)
        if not Path(self.record_path).parent.exists():
            from perfkit.fileio import private_mkdir

            private_mkdir(Path(self.record_path).parent)
        self.written.append(str(baseline.write(base, self.record_path)))

    def _write_reports(self, res) -> None:
        from perfkit.fileio import atomic_write, private_mkdir
        from perfkit.gate import report

        md = report.markdown(res)
        for opt, data in (("perfkit_junit", lambda: report.junit_xml(res)), ("perfkit_markdown", lambda: md)):
            p = self.config.getoption(opt, None)
            if p:
                if not Path(p).parent.exists():
                    private_mkdir(Path(p).parent)
                atomic_write(p, data())
                self.written.append(str(p))
        problem = report.append_step_summary(md)
        if problem:
            self.notes.append(problem)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        from perfkit.gate import report

        tr = terminalreporter
        if self.mode == "record":
            tr.write_sep("-", "perfkit record")
            _print(tr, report.record_table(self.recorded, f"{len(self.recorded)} test(s) measured"))
            for n in self.notes:
                tr.write_line(f"perfkit: {n}")
            for p in self.written:
                tr.write_line(f"perfkit: baseline written to {p} (commit it; pytest --perfkit-check {p} "
                              f"compares with it)")
        elif self.mode == "check":
            res = self.gate_result()
            tr.write_sep("-", "perfkit check")
            _print(tr, report.TerminalView(res))
            for metric, (sd, source) in self.between.items():
                if sd > 0:
                    tr.write_line(f"perfkit: {metric}: separate runs assumed to land up to ±{sd * 100:.1f} % "
                                  f"(1 sd) apart — {source}")
            if os.environ.get("GITHUB_ACTIONS") == "true":
                for line in report.github_annotations(res):
                    tr.write_line(line)
            for p in self.written:
                tr.write_line(f"perfkit: wrote {p}")
        elif self.notes:
            for n in self.notes:
                tr.write_line(f"perfkit: {n}")


def _between_for(shared_sd: float, base_rounds: list[float]) -> float:
    """This test's between-process spread: the suite's, or more when its own rounds scatter more.

    A test whose rounds spread widely inside one process (allocator state, page faults,
    system calls: a 0.1 ms test that maps 2 MiB varied by 25 % here) lands even further
    apart from one process to the next; it is never assumed steadier than its rounds.
    """
    import math

    from perfkit import stats

    if shared_sd <= 0:
        return 0.0
    own = stats.robust_sd([math.log(max(v, 1e-12)) for v in base_rounds]) if len(base_rounds) >= 5 else 0.0
    return max(shared_sd, own)


def _kind(metric: str) -> str:
    from perfkit.gate.metrics import METRICS

    return METRICS[metric].run


def _verdict_line(r, calls: int) -> str:
    from perfkit import stats
    from perfkit.gate.report import change_text, fmt_value

    per = "" if r.metric in ("heap_peak", "allocations") else " per call"
    return (f"{r.metric} {r.decision}: {change_text(r)} (interval {r.ci_text()}, min effect {r.min_effect * 100:g}%; "
            f"baseline {fmt_value(stats.median(r.base), r.unit)}, now {fmt_value(stats.median(r.head), r.unit)}"
            f"{per}; {len(r.base)}/{len(r.head)} rounds)")


def _print(tr, renderable) -> None:
    """A rich renderable through pytest's terminal writer (its width, its colour choice)."""
    from rich.console import Console

    buf = io.StringIO()
    tw = getattr(tr, "_tw", None)
    width = getattr(tw, "fullwidth", 0) or 100
    markup = bool(getattr(tr, "hasmarkup", False))
    con = Console(file=buf, width=max(60, width), force_terminal=markup, color_system="standard" if markup else None,
                  highlight=False, no_color=not markup)
    con.print(renderable)
    tr.write(buf.getvalue())
