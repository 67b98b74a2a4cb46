"""perfkit's pytest plugin (entry point ``pytest11: perfkit``): the gate, per test.

    pytest --perfkit-record .perfkit/pytest-baseline.json       # measure every test, write a baseline
    pytest --perfkit-check .perfkit/pytest-baseline.json        # fail the tests that got slower / hungrier
    pytest --perfkit-check FILE --perfkit-memory --perfkit-junit perf.xml

    @pytest.mark.perfkit_limit(cpu="50 ms", memory="20 MiB")   # absolute limits, checked on every run

This module is loaded into every pytest run once perfkit is installed (perfkit's own
suite included), so it stays inert: it registers its options and its marker, and
imports nothing else — no rich, no memray, not the gate — unless one of its options is
given or a collected test carries the marker.  ``-p no:perfkit`` turns it off.  The
work is done by :mod:`perfkit.gate.pytest_session` over the gate's own statistics
(``perfkit.stats``, ``runner.adaptive``) and reports (``perfkit.gate.report``).
"""

from __future__ import annotations

_PLUGIN = "perfkit-gate-session"
MARKER = "perfkit_limit"


def pytest_addoption(parser) -> None:
    g = parser.getgroup("perfkit", "perfkit: fail tests that got slower or hungrier (docs/pytest.md)")
    g.addoption("--perfkit-record", metavar="FILE", default=None,
                help="measure each test's CPU time (and memory with --perfkit-memory) over repeated rounds "
                     "and write the baseline FILE")
    g.addoption("--perfkit-append", action="store_true", default=False,
                help="with --perfkit-record: add this run as one more session to the existing baseline "
                     "(3-5 sessions teach the check how far separate runs land apart)")
    g.addoption("--perfkit-check", metavar="FILE", default=None,
                help="measure each test and fail those whose metrics regressed against the baseline FILE")
    g.addoption("--perfkit-memory", action="store_true", default=False,
                help="also measure peak heap and allocations per test (memray, Python allocators traced)")
    g.addoption("--perfkit-metrics", metavar="LIST", default=None,
                help="comma-separated: cpu, wall, heap_peak, allocations [default: cpu, plus heap_peak and "
                     "allocations with --perfkit-memory]")
    g.addoption("--perfkit-rounds", metavar="N", type=int, default=None,
                help="measured rounds per test before the first decision [default: repetitions, 10]")
    g.addoption("--perfkit-max-rounds", metavar="N", type=int, default=None,
                help="adaptive cap on rounds per test; record stores this many [default: max_repetitions, 30]")
    g.addoption("--perfkit-min-effect", metavar="METRIC=PCT", action="append", default=None,
                help="smallest change that counts, e.g. cpu=5%% (repeatable) [default: the gate's]")
    g.addoption("--perfkit-alpha", metavar="P", type=float, default=None,
                help="false-alarm budget for the whole run [default: 0.05]")
    g.addoption("--perfkit-strict", action="store_true", default=None,
                help="inconclusive (too noisy to tell) fails the test too")
    g.addoption("--perfkit-junit", metavar="FILE", default=None,
                help="write the gate's JUnit XML report (one case per test x metric)")
    g.addoption("--perfkit-markdown", metavar="FILE", default=None,
                help="write the gate's markdown report (also appended to $GITHUB_STEP_SUMMARY)")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(cpu=None, wall=None, memory=None, allocations=None): fail the test when its "
                   "median CPU / wall time per call or its peak heap / allocation count exceeds the limit, "
                   "e.g. cpu='50 ms', memory='20 MiB' (perfkit)")
    if config.getoption("perfkit_record", None) or config.getoption("perfkit_check", None):
        from perfkit.gate.pytest_session import GateSession

        config.pluginmanager.register(GateSession(config), _PLUGIN)


def pytest_collection_modifyitems(session, config, items) -> None:
    """Only limits, no record/check: start the measuring part when some test carries the marker."""
    if config.pluginmanager.has_plugin(_PLUGIN):
        return
    if any(item.get_closest_marker(MARKER) is not None for item in items):
        from perfkit.gate.pytest_session import GateSession

        config.pluginmanager.register(GateSession(config), _PLUGIN)
