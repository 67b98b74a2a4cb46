"""Reports of a gate run: terminal table, markdown, JUnit XML, GitHub annotations.

Benchmark names, commands and function names are untrusted text: the terminal view
builds ``rich.text.Text`` objects, markdown escapes every character with a meaning
(and HTML), JUnit goes through an XML serialiser, annotations are percent-encoded the
way GitHub's workflow commands require.
"""

from __future__ import annotations

import os

from perfkit import paths, stats, units
from perfkit.console import plain
from perfkit.gate.metrics import METRICS, TIME_METRICS
from perfkit.gate.results import GateResult, MetricResult

_ICON = {stats.REGRESSION: "❌", stats.IMPROVEMENT: "✅", stats.NO_CHANGE: "➖", stats.INCONCLUSIVE: "❔"}
_STYLE = {stats.REGRESSION: "bold red", stats.IMPROVEMENT: "green", stats.NO_CHANGE: "", stats.INCONCLUSIVE: "yellow"}


def fmt_value(v: float | None, unit: str) -> str:
    return units.fmt_value(v, unit, digits=3)


def change_text(r: MetricResult) -> str:
    """The change of the medians shown beside it: head median / base median − 1.

    (The decision uses the metric's own estimate and interval — Hodges–Lehmann or t,
    in ``--json`` as ``change`` and ``interval`` — which the interval column shows.)"""
    if not r.base or not r.head:
        return "-"
    b, h = stats.median(r.base), stats.median(r.head)
    return "-" if not b else f"{(h / b - 1) * 100:+.1f}%"


def n_text(r: MetricResult) -> str:
    """Runs per side: ``10`` pairs in compare, ``30/10`` baseline/head in check."""
    return f"{len(r.head)}" if r.paired else f"{len(r.base)}/{len(r.head)}"


def summary_line(res: GateResult) -> str:
    c = {d: res.count(d) for d in _ICON}
    parts = [f"{c[stats.REGRESSION]} regression(s)", f"{c[stats.IMPROVEMENT]} improvement(s)",
             f"{c[stats.NO_CHANGE]} unchanged", f"{c[stats.INCONCLUSIVE]} inconclusive (too noisy to tell)"]
    verdict = {"regression": "FAIL", "inconclusive": "FAIL (strict)" if res.strict else "PASS",
               "pass": "PASS"}[res.verdict]
    return f"perfkit gate {res.mode}: {verdict} — " + ", ".join(parts)


def grew_line(row: dict) -> str:
    what = " total" if row.get("measure") == "total" else ""
    return (f"{row['function']} ({paths.location(row['file'], row['line']) or '?'}){what} "
            f"{row['base_pct']:.1f}% → {row['new_pct']:.1f}% ({row['delta_pp']:+.1f} pp)")


def explained_rows(explanation: dict | None) -> list[dict]:
    """What the explanation names: your code first (total share), then other functions (self share)."""
    return list((explanation or {}).get("grew") or [])


def _short(path: str) -> str:
    return paths.location(path) or "?"


class TerminalView:
    """The rich renderable of a ``GateResult``."""

    def __init__(self, res: GateResult) -> None:
        self.res = res

    def __rich_console__(self, console, options):
        from rich import box
        from rich.table import Table
        from rich.text import Text

        res = self.res
        conf = None
        wide = options.max_width >= 100  # narrow terminals: min effect and runs are in the footnote/JSON
        table = Table(title=f"perfkit gate {res.mode}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      padding=(0, 1), collapse_padding=True, show_edge=False)
        cols = [("benchmark", "left"), ("metric", "left"), ("base", "right"), ("head", "right"),
                ("change", "right"), ("interval", "right")]
        if wide:
            cols += [("min", "right"), ("runs", "right")]
        cols.append(("verdict", "left"))
        for col, just in cols:
            table.add_column(col, justify=just, overflow="fold", no_wrap=col != "benchmark")
        for b in res.benchmarks:
            for r in b.results:
                conf = r.interval.confidence if r.interval else conf
                row = [Text(plain(b.name)), r.metric,
                       fmt_value(stats.median(r.base) if r.base else None, r.unit),
                       fmt_value(stats.median(r.head) if r.head else None, r.unit),
                       change_text(r), r.ci_text()]
                if wide:
                    row += [f"{r.min_effect * 100:g}%", n_text(r)]
                row.append(Text(r.decision + (" (too noisy)" if r.too_noisy and wide else ""),
                                style=_STYLE[r.decision]))
                table.add_row(*row)
        yield table
        if conf is not None:
            yield Text(f"base/head: medians; change: head median / base median; interval: of the change by the "
                       f"metric's test, {conf * 100:.2f}% confidence each (false-alarm "
                       f"budget {res.alpha:g} split over all metrics, benchmarks and looks); min: smallest change "
                       f"that counts; runs: {'pairs' if res.mode == 'compare' else 'baseline/head'}", style="dim")
        for b in res.benchmarks:
            for note in b.notes:
                yield Text(f"{plain(b.name)}: {plain(note)}", style="yellow")
            if explained_rows(b.explanation):
                yield Text(f"{plain(b.name)}: CPU share grew in (your code first, consistent across runs):",
                           style="bold")
                for row in explained_rows(b.explanation):
                    yield Text("  " + plain(grew_line(row)))
        for w in res.warnings:
            yield Text("warning: ", style="yellow") + Text(plain(w))
        style = "bold red" if res.exit_code else ("yellow" if res.verdict == "inconclusive" else "bold green")
        yield Text(summary_line(res), style=style)


def record_table(benchmarks: dict, title: str):
    """The rich table of what a record stored: per benchmark x metric, median, spread, runs."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for col in ("benchmark", "metric", "median", "cv", "runs"):
        table.add_column(col, justify="left" if col in ("benchmark", "metric") else "right")
    for bname, entry in benchmarks.items():
        for m, vals in entry["metrics"].items():
            table.add_row(Text(plain(bname)), m, fmt_value(stats.median(vals), METRICS[m].unit) if vals else "-",
                          f"{stats.cv(vals) * 100:.2f}%", str(len(vals)))
    return table


# ------------------------------------------------------------------------ markdown

# + - . only mean something at the start of a line, which an escaped cell never is
_MD_SPECIAL = set("\\`*_{}[]()#!|~")


def md_escape(text: object) -> str:
    out = []
    for ch in str(text):
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch in "\r\n":
            out.append(" ")
        elif ch in _MD_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def markdown(res: GateResult) -> str:
    icon = {"regression": "❌", "inconclusive": "❔", "pass": "✅"}[res.verdict]
    lines = [f"## {icon} {md_escape(summary_line(res))}", ""]
    for w in res.warnings:
        lines.append(f"> ⚠️ {md_escape(w)}")
    if res.warnings:
        lines.append("")
    lines += ["| benchmark | metric | base | head | change | interval | min effect | runs | verdict |",
              "|---|---|--:|--:|--:|--:|--:|--:|---|"]
    for b in res.benchmarks:
        for r in b.results:
            lines.append("| " + " | ".join([
                md_escape(b.name), r.metric,
                fmt_value(stats.median(r.base) if r.base else None, r.unit),
                fmt_value(stats.median(r.head) if r.head else None, r.unit),
                change_text(r), r.ci_text(), f"{r.min_effect * 100:g}%",
                n_text(r), f"{_ICON[r.decision]} {r.decision}"]) + " |")
    for b in res.benchmarks:
        for note in b.notes:
            lines += ["", f"*{md_escape(b.name)}*: {md_escape(note)}"]
        if b.explanation and explained_rows(b.explanation):
            lines += ["", f"**{md_escape(b.name)}: functions whose CPU share grew** (your code first)", ""]
            lines += [f"- `{_code(r['function'])}` ({md_escape(paths.location(r['file'], r['line']))})"
                      f"{' total' if r.get('measure') == 'total' else ''}: "
                      f"{r['base_pct']:.1f}% → {r['new_pct']:.1f}% ({r['delta_pp']:+.1f} pp)"
                      for r in explained_rows(b.explanation)]
            if b.explanation.get("svg"):
                lines += ["", f"Differential flame graph: `{_code(b.explanation['svg'])}`"]
    lines += ["", "<sub>Inconclusive means too noisy to tell at this number of runs: it passes unless "
              "`--strict`.</sub>", ""]
    return "\n".join(lines)


def _code(text: str) -> str:
    # inside a code span only backticks and line breaks matter; HTML still must not leak
    return str(text).replace("`", "'").replace("\n", " ").replace("\r", " ").replace("<", "‹").replace(">", "›")


# --------------------------------------------------------------------------- JUnit

def _fails(res: GateResult, r: MetricResult) -> bool:
    return r.decision == stats.REGRESSION or (res.strict and r.decision == stats.INCONCLUSIVE)


def explains(r: MetricResult) -> bool:
    """Whether the CPU explanation (functions whose share grew) is about this metric.

    py-spy profiles explain where CPU time went: a cpu, wall or instructions change.
    A memory or thread-count failure must never carry them (it would blame functions
    for a change they were not measured to cause).
    """
    return r.metric in TIME_METRICS + ("instructions",)


def metric_description(res: GateResult, metric: str) -> str:
    """What the metric measures in this run (the pytest plugin measures in-process, the gate per command)."""
    return res.descriptions.get(metric) or METRICS[metric].description


def failure_message(res: GateResult, r: MetricResult) -> str:
    """One line for a failing metric: which metric, what it measures, how much it moved."""
    base = fmt_value(stats.median(r.base) if r.base else None, r.unit)
    head = fmt_value(stats.median(r.head) if r.head else None, r.unit)
    return (f"{r.metric} {r.decision}: {change_text(r)} ({metric_description(res, r.metric)}; "
            f"base {base}, head {head})")


def failure_text(res: GateResult, name: str, r: MetricResult, explanation: dict | None) -> str:
    """The full text of one metric's failure: its numbers, and the CPU explanation only where it applies."""
    text = describe(name, r) + f"\n{r.metric}: {metric_description(res, r.metric)}"
    if explains(r) and explanation and explanation.get("grew"):
        text += "\nCPU share grew in:\n" + "\n".join("  " + grew_line(g) for g in explanation["grew"])
    return text


def junit_xml(res: GateResult) -> bytes:
    """JUnit XML (the Jenkins / Surefire junit-10 dialect that pytest writes too).

    One test case per benchmark x metric, with its own time (its share of the runs);
    a regression is a failure whose message and text name that metric; inconclusive
    is skipped (a failure with --strict); the suite carries timestamp, hostname and
    the environment as properties.
    """
    import xml.etree.ElementTree as ET

    from perfkit.gate.results import timestamp

    results = res.all_results()
    failures = sum(1 for r in results if _fails(res, r))
    skipped = sum(1 for r in results if r.decision == stats.INCONCLUSIVE and not res.strict)
    elapsed = f"{res.elapsed_s:.3f}"
    suites = ET.Element("testsuites", name="perfkit gate", tests=str(len(results)), failures=str(failures),
                        errors="0", time=elapsed)
    suite = ET.SubElement(suites, "testsuite", name=f"perfkit gate {res.mode}", tests=str(len(results)),
                          failures=str(failures), errors="0", skipped=str(skipped), time=elapsed,
                          timestamp=timestamp(res.started), hostname=_xml_safe(res.hostname or "localhost"))
    props = ET.SubElement(suite, "properties")
    facts = {"mode": res.mode, "verdict": res.verdict, "alpha": f"{res.alpha:g}", "strict": str(res.strict).lower()}
    facts.update({k: str(v) for k, v in sorted(res.environment.items())})
    for k, v in facts.items():
        ET.SubElement(props, "property", name=_xml_safe(k), value=_xml_safe(v))
    for b in res.benchmarks:
        for r in b.results:
            case = ET.SubElement(suite, "testcase", classname=f"perfkit.gate.{_xml_safe(b.name)}",
                                 name=r.metric, time=f"{r.elapsed_s:.3f}")
            text = describe(b.name, r)
            if _fails(res, r):
                fail = ET.SubElement(case, "failure", message=_xml_safe(failure_message(res, r)), type=r.decision)
                fail.text = _xml_safe(failure_text(res, b.name, r, b.explanation))
            elif r.decision == stats.INCONCLUSIVE:
                ET.SubElement(case, "skipped", message=_xml_safe(text))
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _xml_safe(text)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="utf-8")


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters even escaped
    return "".join(ch if ch in "\t\n" or ord(ch) >= 32 else f"\\x{ord(ch):02x}" for ch in str(text))


def describe(name: str, r: MetricResult) -> str:
    base = fmt_value(stats.median(r.base) if r.base else None, r.unit)
    head = fmt_value(stats.median(r.head) if r.head else None, r.unit)
    return (f"{name}: {r.metric} {r.decision}: {change_text(r)} (interval {r.ci_text()}, min effect "
            f"{r.min_effect * 100:g}%; base {base}, head {head}; {n_text(r)})")


# ------------------------------------------------------------------ GitHub Actions

def _gh_data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def append_step_summary(md: str) -> str | None:
    """Append ``md`` to $GITHUB_STEP_SUMMARY when it is set; what went wrong, if anything."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return None
    try:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    except OSError as exc:
        return f"cannot append to $GITHUB_STEP_SUMMARY ({summary}): {exc.strerror}"
    return None


def github_annotations(res: GateResult) -> list[str]:
    """``::error`` for each regression, ``::warning`` for inconclusive metrics and warnings."""
    out = []
    for b in res.benchmarks:
        for r in b.results:
            if r.decision == stats.REGRESSION or (res.strict and r.decision == stats.INCONCLUSIVE):
                level = "error"
            elif r.decision == stats.INCONCLUSIVE:
                level = "warning"
            else:
                continue
            msg = describe(b.name, r)
            if r.decision == stats.REGRESSION and explains(r) and b.explanation and b.explanation.get("grew"):
                msg += "\nCPU share grew in: " + "; ".join(grew_line(g) for g in b.explanation["grew"][:3])
            out.append(f"::{level} title={_gh_prop('perfkit gate: ' + b.name + ' ' + r.metric)}::{_gh_data(msg)}")
    for w in res.warnings:
        out.append(f"::warning title={_gh_prop('perfkit gate')}::{_gh_data(w)}")
    return out
