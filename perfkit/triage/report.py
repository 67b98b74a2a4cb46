"""Triage views: summary.md, index.html, stacks.txt and the terminal summary.

All take the triage summary document (the ``--json`` output; see
``perfkit.triage.command``).  Every name that comes from a target (process names,
command lines, thread and function names, file paths) is escaped for the output it
lands in: Markdown, HTML, or the terminal (rich ``Text``, never markup strings).
"""

from __future__ import annotations

import time

from perfkit.render import escape
from perfkit.units import human_bytes as _size


def visible(text: object) -> str:
    """Control, bidi and zero-width characters shown as escapes (``\\n``, ``\\u202e``), nothing else changed."""
    return escape.visible(text)


def xml(text: object) -> str:
    """Untrusted text made safe for HTML text and quoted attribute values."""
    return escape.xml(text)


SEV_LABEL = {"high": "HIGH", "warn": "WARN", "info": "info"}
_MD_SPECIAL = {ord(c): "\\" + c for c in "\\`*_[]|#~"}
_MD_SPECIAL.update({ord("<"): "&lt;", ord(">"): "&gt;", ord("&"): "&amp;"})


def md(text: object) -> str:
    """Untrusted text made inert inside one line of Markdown."""
    return visible(text).translate(_MD_SPECIAL)




def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "?"


def _pct(v) -> str:
    return "?" if v is None else f"{v:.0f}%"


def _fds(p: dict) -> str:
    if p.get("fds") is None:
        return "?"
    return f"{p['fds']}/{p['fd_limit']}" if p.get("fd_limit") else str(p["fds"])


def _headline(doc: dict) -> str:
    within = "within" if doc.get("within_budget") else "OVER"
    return (f"{len(doc.get('processes') or [])} Python processes · {doc.get('elapsed_s', 0):.1f} s "
            f"({within} the {doc.get('budget_s', 0):g} s budget)")


def _host_lines(doc: dict) -> list[str]:
    h = doc.get("host") or {}
    out = []
    load = h.get("load") or {}
    if load:
        out.append(f"load {load.get('load1')} / {load.get('load5')} / {load.get('load15')} on {load.get('cpus')} CPUs")
    modes = h.get("cpu_modes_percent") or {}
    if modes:
        out.append("CPU " + ", ".join(f"{k} {v:.0f}%" for k, v in modes.items() if v >= 0.5))
    mem = h.get("memory") or {}
    if mem:
        out.append(f"memory {_size(mem.get('available'))} available of {_size(mem.get('total'))}; "
                   f"swap {_size(mem.get('swap_used'))} used of {_size(mem.get('swap_total'))}")
    psi = h.get("pressure") or {}
    if psi:
        out.append("pressure (some avg10) " + ", ".join(f"{k} {v:.1f}%" for k, v in psi.items() if v is not None))
    top = h.get("top_cpu") or []
    if top:
        out.append("top CPU: " + ", ".join(f"{r.get('name', '?')} ({r['pid']}) {r.get('cpu_percent') or 0:.0f}%"
                                           for r in top[:5]))
    top = h.get("top_rss") or []
    if top:
        out.append("top RSS: " + ", ".join(f"{r.get('name', '?')} ({r['pid']}) {_size(r.get('rss'))}"
                                           for r in top[:5]))
    return out


# --------------------------------------------------------------------------- Markdown

def summary_md(doc: dict) -> str:
    lines = [f"# perfkit triage — {md(doc.get('hostname', '?'))}", "",
             f"{_when(doc.get('started'))} · {_headline(doc)}", ""]
    if doc.get("interrupted"):
        lines += ["**Interrupted**: partial results.", ""]
    lines += ["## What stands out", ""]
    findings = doc.get("findings") or []
    if not findings:
        lines.append("Nothing stood out.")
    for f in findings:
        ev = ", ".join(f"[{md(e)}]({_md_link(e)})" for e in f.get("evidence") or [])
        lines.append(f"- **{SEV_LABEL.get(f['severity'], f['severity'])}** {md(f['title'])}"
                     + (f" — {md(f['detail'])}" if f.get("detail") else "") + (f" (evidence: {ev})" if ev else ""))
    lines += ["", "## Host", ""]
    lines += [f"- {md(x)}" for x in _host_lines(doc)]
    lines += ["", "## Python processes", "",
              "| pid | parent | name | CPU | RSS | threads | fds/limit | sockets | GIL holder | stacks | flame graph |",
              "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for p in doc.get("processes") or []:
        gil = p.get("gil_holder")
        lines.append("| " + " | ".join([
            str(p["pid"]), str(p.get("ppid") or ""), md(p.get("script") or p.get("name") or "?"),
            _pct(p.get("cpu_percent")), _size(p.get("rss")), str(p.get("threads") or "?"), _fds(p),
            str(p.get("sockets") if p.get("sockets") is not None else "?"),
            md(gil) if gil else "",
            f"[stacks]({_md_link(p['stacks'])})" if p.get("stacks") else md(p.get("stacks_error") or "—"),
            f"[flame]({_md_link(p['flame'])})" if p.get("flame") else "",
        ]) + " |")
    probs = doc.get("collection") or {}
    if probs.get("failed") or probs.get("needs_privilege"):
        lines += ["", "## Not collected", ""]
        for row in probs.get("failed") or []:
            who = f"pid {row['pid']}: " if row.get("pid") else ""
            priv = " (needs more rights)" if row.get("needs_privilege") else ""
            lines.append(f"- {md(who + row['what'])}: {md(row.get('status', ''))} — {md(row.get('error', ''))}{priv}")
    lines += ["", "See [manifest.json](manifest.json) for everything collected and [index.html](index.html).", ""]
    return "\n".join(lines)


def _md_link(path: str) -> str:
    return path.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right}.high{color:#b00;font-weight:600}.warn{color:#a60;font-weight:600}.info{color:#666}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}details{margin:4px 0}code{font-size:12px}
"""


def index_html(doc: dict, stacks: dict[int, str] | None = None) -> str:
    """The bundle's front page; ``stacks`` (pid -> stacks.txt text) is shown inline."""
    e = xml
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
             "img-src 'self'\">",
             f"<title>perfkit triage {e(doc.get('hostname', '?'))}</title><style>{_CSS}</style></head><body>",
             f"<h1>perfkit triage — {e(doc.get('hostname', '?'))}</h1>",
             f"<p>{e(_when(doc.get('started')))} · {e(_headline(doc))}</p>"]
    if doc.get("interrupted"):
        parts.append("<p class='high'>Interrupted: partial results.</p>")
    parts.append("<h2>What stands out</h2>")
    findings = doc.get("findings") or []
    if not findings:
        parts.append("<p>Nothing stood out.</p>")
    else:
        parts.append("<ul>")
        for f in findings:
            ev = ", ".join(f"<a href='{e(_href(p))}'>{e(p)}</a>" for p in f.get("evidence") or [])
            parts.append(f"<li><span class='{e(f['severity'])}'>{e(SEV_LABEL.get(f['severity'], f['severity']))}</span> "
                         f"{e(f['title'])}" + (f" — {e(f['detail'])}" if f.get("detail") else "")
                         + (f" <small>(evidence: {ev})</small>" if ev else "") + "</li>")
        parts.append("</ul>")
    parts.append("<h2>Host</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in _host_lines(doc))
                 + "<li><a href='host/host.json'>host/host.json</a> (all host facts)</li></ul>")
    parts.append("<h2>Python processes</h2><table><tr><th>pid</th><th>parent</th><th>name</th><th>CPU</th>"
                 "<th>RSS</th><th>threads</th><th>fds/limit</th><th>sockets</th><th>GIL holder</th>"
                 "<th>artifacts</th></tr>")
    for p in doc.get("processes") or []:
        links = [f"<a href='{e(_href(p[k]))}'>{label}</a>" for k, label in
                 (("process_json", "facts"), ("stacks", "stacks"), ("flame", "flame graph")) if p.get(k)]
        parts.append("<tr>" + "".join([
            f"<td class='n'>{p['pid']}</td>", f"<td class='n'>{e(p.get('ppid') or '')}</td>",
            f"<td title='{e(' '.join(p.get('cmdline') or []))}'>{e(p.get('script') or p.get('name') or '?')}</td>",
            f"<td class='n'>{e(_pct(p.get('cpu_percent')))}</td>", f"<td class='n'>{e(_size(p.get('rss')))}</td>",
            f"<td class='n'>{e(p.get('threads') or '?')}</td>", f"<td class='n'>{e(_fds(p))}</td>",
            f"<td class='n'>{e(p.get('sockets') if p.get('sockets') is not None else '?')}</td>",
            f"<td>{e(p.get('gil_holder') or '')}</td>", f"<td>{' · '.join(links)}</td>"]) + "</tr>")
    parts.append("</table>")
    if stacks:
        parts.append("<h2>Stacks</h2>")
        for pid, text in sorted(stacks.items()):
            parts.append(f"<details><summary>pid {pid}</summary><pre>{e(text)}</pre></details>")
    coll = doc.get("collection") or {}
    if coll.get("failed"):
        parts.append("<h2>Not collected</h2><ul>")
        for row in coll["failed"]:
            who = f"pid {row['pid']}: " if row.get("pid") else ""
            priv = " <b>(needs more rights)</b>" if row.get("needs_privilege") else ""
            parts.append(f"<li>{e(who + row['what'])}: {e(row.get('status', ''))} — {e(row.get('error', ''))}{priv}</li>")
        parts.append("</ul>")
    parts.append("<p><a href='summary.md'>summary.md</a> · <a href='manifest.json'>manifest.json</a></p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _href(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/#.-_")


# --------------------------------------------------------------------------- stacks.txt

def stacks_text(pid: int, threads: list[dict] | None, facts: dict | None, *, title: str = "") -> str:
    """py-spy-dump-like text for one process; names shown with control chars escaped."""
    lines = [f"pid {pid}{(' ' + visible(title)) if title else ''}"]
    per_thread = (facts or {}).get("threads") or {}
    for t in threads or []:
        tid = t.get("os_thread_id")
        state = "active" if t.get("active") else "idle"
        gil = ", holds GIL" if t.get("owns_gil") else ""
        cpu = (per_thread.get(str(tid)) or {}).get("cpu_percent")
        cpu_s = f", {cpu:.0f}% CPU" if cpu is not None else ""
        name = visible(t.get("name")) if t.get("name") else "?"
        lines.append(f'\nThread {tid} ({state}{gil}{cpu_s}): "{name}"')
        for f in t.get("frames") or []:
            lines.append(f"    {visible(f.get('name', '?'))} ({visible(f.get('filename') or '?')}:{f.get('line', 0)})")
            for loc in f.get("locals") or []:
                lines.append(f"        {visible(loc.get('name', '?'))} = {visible(loc.get('repr', ''))}")
    if not threads:
        lines.append("\n(no Python threads)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- terminal

class TerminalSummary:
    """The triage summary as a rich renderable (all target text as ``Text``)."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        doc = self.doc
        yield Text(f"perfkit triage · {visible(doc.get('hostname', '?'))} · {_headline(doc)}", style="bold")
        for line in _host_lines(doc):
            yield Text("  " + visible(line), style="dim")
        findings = doc.get("findings") or []
        if not findings:
            yield Text("nothing stands out")
        styles = {"high": "bold red", "warn": "yellow", "info": "dim"}
        for f in findings:
            line = Text(f"{SEV_LABEL.get(f['severity'], f['severity']):>4} ", style=styles.get(f["severity"], ""))
            line.append(visible(f["title"]))
            if f.get("detail"):
                line.append(" — " + visible(f["detail"]), style="dim")
            if f.get("evidence"):
                line.append("  [" + ", ".join(visible(x) for x in f["evidence"]) + "]", style="cyan")
            yield line
        table = Table(title="Python processes", title_justify="left", show_edge=False, pad_edge=False)
        for col, just in (("pid", "right"), ("name", "left"), ("CPU", "right"), ("RSS", "right"),
                          ("threads", "right"), ("fds/limit", "right"), ("GIL holder", "left"), ("status", "left")):
            table.add_column(col, justify=just)
        for p in (doc.get("processes") or [])[:40]:
            table.add_row(str(p["pid"]), Text(visible(p.get("script") or p.get("name") or "?")),
                          _pct(p.get("cpu_percent")), _size(p.get("rss")), str(p.get("threads") or "?"), _fds(p),
                          Text(visible(p.get("gil_holder") or "")), Text(visible(p.get("state") or "")))
        yield table
        if len(doc.get("processes") or []) > 40:
            yield Text(f"… and {len(doc['processes']) - 40} more (see summary.md)")
        coll = doc.get("collection") or {}
        if coll.get("failed"):
            n_priv = sum(1 for r in coll["failed"] if r.get("needs_privilege"))
            msg = f"{len(coll['failed'])} items not collected"
            if n_priv:
                msg += f" ({n_priv} need more rights: run as root or with CAP_SYS_PTRACE)"
            yield Text(msg + " — see manifest.json", style="yellow")
        yield Text(f"bundle: {doc.get('bundle')}", style="bold")


__all__ = ["summary_md", "index_html", "stacks_text", "TerminalSummary", "md"]
