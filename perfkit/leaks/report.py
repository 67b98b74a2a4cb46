"""Views of a leak report: terminal (rich), markdown and self-contained HTML with every
series plotted as inline SVG.

Everything that came from the target (paths, thread and function names, socket
addresses) is escaped for the output at hand: rich ``Text`` in the terminal, HTML
entities in HTML/SVG, backslash-escaped markdown in markdown.
"""

from __future__ import annotations

import html
import math
import time

from perfkit import units
from perfkit.leaks import trend
from perfkit.leaks.findings import Finding, LeakReport
from perfkit.units import human_bytes, human_duration

VERDICT_STYLE = {trend.LEAK: "bold red", trend.STEADY: "green", trend.INCONCLUSIVE: "yellow"}
VERDICT_COLOR = {trend.LEAK: "#c62828", trend.STEADY: "#2e7d32", trend.INCONCLUSIVE: "#f9a825"}


# ------------------------------------------------------------------ number formats


def _unit(resource: str) -> str:
    return "bytes" if resource == "memory" else "count"


def fmt_value(v: float | None, resource: str) -> str:
    return units.fmt_value(v if v is None or not isinstance(v, float) or math.isfinite(v) else None, _unit(resource))


def fmt_rate(v: float | None, resource: str) -> str:
    return units.fmt_rate(v, _unit(resource))


def thresholds_text(resource: str, th: trend.Thresholds) -> str:
    return (f"{resource}: Mann-Kendall (Hamed-Rao) p < {th.alpha:g}; Theil-Sen {th.confidence:.0%} lower bound > 0 "
            f"and slope > {fmt_rate(th.min_rate, resource)}; rise > {fmt_value(th.min_rise, resource)}; "
            f"high-water mark rising in all {th.subwindows} sub-windows "
            f"(by > {fmt_value(th.hwm_tolerance, resource)}); first {th.warmup_fraction:.0%} ignored as warm-up")


def headline(f: Finding) -> str:
    v = f.verdict
    if not f.measured:
        return f"{f.resource}: not measured ({f.why_unmeasured})"
    text = f"{f.resource}: {v.verdict.upper()}"
    if v.start_value is not None:
        text += f" · {fmt_value(v.start_value, f.resource)} → {fmt_value(v.end_value, f.resource)}"
    if v.slope is not None:
        text += (f" · slope {fmt_rate(v.slope.slope, f.resource)} "
                 f"[{fmt_rate(v.slope.low, f.resource)}, {fmt_rate(v.slope.high, f.resource)}]")
    if v.verdict == trend.LEAK and v.limit is not None:
        text += f" · limit {fmt_value(v.limit, f.resource)} ({v.limit_source})"
        if v.time_to_limit_s is not None:
            text += f" reached in ~{human_duration(v.time_to_limit_s)}"
    return text


def attribution_lines(f: Finding) -> list[str]:
    a = f.attribution
    if not a:
        return []
    if not a.get("available", True):
        return [f"attribution unavailable: {a.get('why') or a.get('error')}"]
    out = []
    if f.resource == "threads":
        out.append(f"{a['new_threads']} new threads:")
        if a.get("names") and not a["groups"]:
            out.append("  OS thread names: " + ", ".join(f"{n['count']} × {n['pattern']}" for n in a["names"]))
        if not a["groups"] and a.get("why"):
            out.append(f"  stacks unavailable: {a['why']}")
        for g in a["groups"]:
            out.append(f"  {g['summary']}")
            for fr in g["frames"][:6]:
                out.append(f"      {fr['function']}  {fr['file']}:{fr['line']}")
    elif f.resource in ("fds", "sockets"):
        out.append(f"{a['new_fds']} new {'sockets' if f.resource == 'sockets' else 'fds'}:")
        for g in a["groups"]:
            out.append(f"  {g['count']} × {g['pattern']}")
    elif f.resource == "memory":
        from perfkit import paths

        secs = a.get("seconds")
        out.append(f"memray ({secs:.0f} s): your lines holding memory allocated during the capture:" if secs else
                   "memray: your lines holding memory allocated during the capture:")
        for ln in a["lines"]:
            yours = ln.get("your_code")
            where = paths.frame_text(ln["function"], ln["file"], ln["line"])
            if yours is None:
                text = f"{where} (no frame of your code on the stack)"
            elif (yours["function"], yours["file"], yours["line"]) == (ln["function"], ln["file"], ln["line"]):
                text = where
            else:
                text = f"{paths.frame_text(yours['function'], yours['file'], yours['line'])}  ← allocated in {where}"
            out.append(f"  {human_bytes(ln['bytes'])} ({ln['pct']:.0f}%)  {text}")
        hidden = a.get("import_time_hidden")
        if hidden and hidden.get("value"):
            out.append(f"  (hidden: {human_bytes(hidden['value'])} ({hidden['pct']:.0f}%) allocated by imports "
                       f"during the capture)")
    return out


def hints(report: LeakReport) -> list[str]:
    """What to do next, where a reader would ask."""
    out = []
    for f in report.leaks:
        if f.resource == "memory" and not f.attribution:
            out.append(f"memory leaks: rerun with --attribute-memory to name your lines holding it (a short memray "
                       f"capture), or perfkit heap --pid {report.pid} --leaks")
        elif f.resource == "threads" and f.attribution and not f.attribution.get("groups"):
            out.append(f"perfkit threads --pid {report.pid} shows what the new threads are doing")
    if not report.leaks and any(f.verdict.verdict == trend.INCONCLUSIVE for f in report.findings if f.measured):
        out.append("inconclusive: watch longer (-d) so a trend can be told from warm-up or a cache filling up")
    return out[:3]


# ------------------------------------------------------------------ terminal


class LeakSummary:
    """rich renderable of a report."""

    def __init__(self, report: LeakReport, verbose: bool = False) -> None:
        self.report = report
        self.verbose = verbose

    def __rich_console__(self, console, options):
        from rich.text import Text

        from perfkit.console import plain

        r = self.report
        yield Text(f"perfkit leaks: pid {r.pid} · {r.elapsed:.0f} s · {r.n_samples} samples every "
                   f"{r.interval:g} s · {r.cost_per_sample_s * 1e3:.2f} ms CPU per sample", style="bold")
        for f in r.findings:
            t = Text("  ")
            t.append(plain(headline(f)), style=VERDICT_STYLE.get(f.verdict.verdict, "") if f.measured else "dim")
            yield t
            for line in attribution_lines(f):
                yield Text("      " + plain(line))
            if self.verbose or f.verdict.verdict != trend.STEADY:
                for reason in f.verdict.reasons:
                    yield Text("      · " + plain(reason), style="dim")
        for n in r.notes:
            yield Text("note: " + plain(n), style="yellow")
        if r.leaks:
            yield Text(f"{len(r.leaks)} leak(s): {', '.join(f.resource for f in r.leaks)}", style="bold red")
        else:
            yield Text("no leak found", style="green")
        for h in hints(r):
            yield Text("hint: " + plain(h), style="dim")


# ------------------------------------------------------------------ markdown


_MD_SPECIAL = "\\`*_[]|<>~#"


def md(text: object) -> str:
    """Escape for markdown text (and table cells); control characters made visible."""
    from perfkit.console import plain

    s = plain(text)
    s = "".join("\\" + c if c in _MD_SPECIAL else c for c in s)
    return s.replace("&", "&amp;")


def markdown(report: LeakReport) -> str:
    r = report
    out = [f"# perfkit leaks: pid {r.pid}", ""]
    out.append(f"Monitored {r.elapsed:.0f} s ({r.n_samples} samples every {r.interval:g} s) from "
               f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(r.started))}; command: "
               f"{md(' '.join(r.cmdline)[:300])}" if r.cmdline else
               f"Monitored {r.elapsed:.0f} s ({r.n_samples} samples every {r.interval:g} s).")
    out += ["", "| resource | verdict | start | end | slope [95% CI] | limit | time to limit |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for f in r.findings:
        v = f.verdict
        slope = (f"{fmt_rate(v.slope.slope, f.resource)} [{fmt_rate(v.slope.low, f.resource)}, "
                 f"{fmt_rate(v.slope.high, f.resource)}]") if v.slope else "-"
        out.append(f"| {f.resource} | **{v.verdict if f.measured else 'not measured'}** | "
                   f"{md(fmt_value(v.start_value, f.resource))} | {md(fmt_value(v.end_value, f.resource))} | "
                   f"{md(slope)} | {md(fmt_value(v.limit, f.resource)) if v.limit else '-'} | "
                   f"{md(human_duration(v.time_to_limit_s))} |")
    for f in r.findings:
        lines = attribution_lines(f)
        if f.verdict.verdict == trend.STEADY and not lines:
            continue
        out += ["", f"## {f.resource}: {f.verdict.verdict}", ""]
        out += [f"- {md(x)}" for x in f.verdict.reasons]
        if lines:
            out += ["", "Attribution:", ""]
            for x in lines:
                depth = (len(x) - len(x.lstrip(" "))) // 2
                out.append("  " * depth + "- " + md(x.strip()))
    if r.notes:
        out += ["", "## Notes", ""] + [f"- {md(n)}" for n in r.notes]
    out += ["", "## Thresholds", ""] + [f"- {md(thresholds_text(f.resource, f.verdict.thresholds))}"
                                         for f in r.findings]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ HTML / SVG


def _e(text: object) -> str:
    """HTML/SVG-safe: control characters made visible, then markup escaped (quotes too)."""
    from perfkit.console import plain

    return html.escape(plain(text), quote=True)


def svg_series(points: list[tuple[float, float]], resource: str, *, color: str = "#1565c0",
               width: int = 560, height: int = 140, slope: trend.Slope | None = None) -> str:
    """A small line chart of ``points`` (t seconds, value) as inline SVG."""
    e = _e
    pad_l, pad_b, pad_t, pad_r = 70, 20, 8, 8
    if not points:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
                '<text x="10" y="20">no data</text></svg>')
    ts = [p[0] for p in points]
    vs = [p[1] for p in points]
    t0, t1 = min(ts), max(ts)
    lo, hi = min(vs), max(vs)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(t: float) -> float:
        return pad_l + (t - t0) / (t1 - t0 if t1 > t0 else 1) * w

    def y(v: float) -> float:
        return pad_t + (1 - (v - lo) / (hi - lo)) * h

    pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="series" width="{width}" height="{height}" '
             f'role="img" aria-label="{e(resource)} over time">',
             f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>',
             f'<text x="{pad_l - 4}" y="{pad_t + 10}" text-anchor="end" '
             f'font-size="10">{e(fmt_value(hi, resource))}</text>',
             f'<text x="{pad_l - 4}" y="{pad_t + h}" text-anchor="end" '
             f'font-size="10">{e(fmt_value(lo, resource))}</text>',
             f'<text x="{pad_l}" y="{height - 4}" font-size="10">{t0:.0f} s</text>',
             f'<text x="{pad_l + w}" y="{height - 4}" text-anchor="end" font-size="10">{t1:.0f} s</text>',
             f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>']
    if slope is not None and math.isfinite(slope.slope):
        ya, yb = slope.intercept + slope.slope * t0, slope.intercept + slope.slope * t1
        if lo - (hi - lo) <= ya <= hi + (hi - lo) and lo - (hi - lo) <= yb <= hi + (hi - lo):
            parts.append(f'<line class="fit" x1="{x(t0):.1f}" y1="{y(ya):.1f}" x2="{x(t1):.1f}" y2="{y(yb):.1f}" '
                         f'stroke="#999" stroke-dasharray="4 3"/>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.leak{color:#c62828;font-weight:bold}.steady{color:#2e7d32}.inconclusive{color:#b28704}
pre{background:#f5f5f5;padding:.6em;overflow-x:auto}section{margin-top:1.5em}"""


def html_report(report: LeakReport) -> str:
    e = _e
    r = report
    body = [f"<h1>perfkit leaks: pid {r.pid}</h1>",
            f"<p>Monitored {r.elapsed:.0f} s, {r.n_samples} samples every {r.interval:g} s "
            f"({r.cost_per_sample_s * 1e3:.2f} ms CPU per sample), from "
            f"{e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(r.started)))}.</p>"]
    if r.cmdline:
        body.append(f"<p>Command: <code>{e(' '.join(r.cmdline))}</code></p>")
    body.append("<table><tr><th>resource</th><th>verdict</th><th>start</th><th>end</th><th>slope [95% CI]</th>"
                "<th>limit</th><th>time to limit</th></tr>")
    for f in r.findings:
        v = f.verdict
        slope = (f"{fmt_rate(v.slope.slope, f.resource)} [{fmt_rate(v.slope.low, f.resource)}, "
                 f"{fmt_rate(v.slope.high, f.resource)}]") if v.slope else "-"
        verdict = v.verdict if f.measured else "not measured"
        body.append(f'<tr><td>{e(f.resource)}</td><td class="{e(v.verdict)}">{e(verdict)}</td>'
                    f"<td>{e(fmt_value(v.start_value, f.resource))}</td>"
                    f"<td>{e(fmt_value(v.end_value, f.resource))}</td>"
                    f"<td>{e(slope)}</td><td>{e(fmt_value(v.limit, f.resource)) if v.limit else '-'}"
                    f"{' (' + e(v.limit_source or '') + ')' if v.limit else ''}</td>"
                    f"<td>{e(human_duration(v.time_to_limit_s))}</td></tr>")
    body.append("</table>")
    for f in r.findings:
        v = f.verdict
        body.append(f'<section id="{e(f.resource)}"><h2>{e(f.resource)}: '
                    f'<span class="{e(v.verdict)}">{e(v.verdict if f.measured else "not measured")}</span></h2>')
        body.append(svg_series(f.series, f.resource, color=VERDICT_COLOR.get(v.verdict, "#1565c0"), slope=v.slope))
        if f.resource == "memory":
            for key in ("pss", "uss"):
                if key in r.extra_series:
                    body.append(f"<h3>{key.upper()}</h3>" + svg_series(r.extra_series[key], "memory"))
        body.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in v.reasons) + "</ul>")
        lines = attribution_lines(f)
        if lines:
            body.append("<h3>Attribution</h3><pre>" + e("\n".join(lines)) + "</pre>")
        body.append("</section>")
    if r.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>")
    body.append("<h2>Thresholds</h2><ul>" + "".join(
        f"<li>{e(thresholds_text(f.resource, f.verdict.thresholds))}</li>" for f in r.findings) + "</ul>")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>perfkit leaks: pid "
            f"{r.pid}</title><style>{_CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
