"""Triage views: summary.md, index.html, stacks.txt and the terminal summary.

All take the typed triage summary (:class:`~perfkit.triage.summary.Summary`, whose
``to_json()`` is the ``--json`` output).  Every name that comes from a target (process names,
command lines, thread and function names, file paths) is escaped for the output it
lands in: Markdown, HTML, or the terminal (rich ``Text``, never markup strings).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from perfkit.render import escape
from perfkit.triage.facts import Event
from perfkit.triage.model import ProcessFacts, ThreadDump
from perfkit.triage.summary import Finding, ProcessRow, Summary
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


def _pct(v: float | None) -> str:
    return "?" if v is None else f"{v:.0f}%"


def _fds(p: ProcessRow) -> str:
    if p.fds is None:
        return "?"
    return f"{p.fds}/{p.fd_limit}" if p.fd_limit else str(p.fds)


def _sockets(p: ProcessRow) -> str:
    return str(p.sockets) if p.sockets is not None else "?"


def _headline(doc: Summary) -> str:
    within = "within" if doc.within_budget else "OVER"
    return (f"{len(doc.processes)} Python processes · {doc.elapsed_s:.1f} s "
            f"({within} the {doc.budget_s:g} s budget)")


def _host_lines(doc: Summary) -> list[str]:
    h = doc.host
    out = []
    if h.load is not None:
        load = h.load
        out.append(f"load {load.load1} / {load.load5} / {load.load15} on {load.cpus} CPUs")
    if h.cpu_modes_percent:
        out.append("CPU " + ", ".join(f"{k} {v:.0f}%" for k, v in h.cpu_modes_percent.items() if v >= 0.5))
    mem = h.memory
    if mem is not None:
        out.append(f"memory {_size(mem.available)} available of {_size(mem.total)}; "
                   f"swap {_size(mem.swap_used)} used of {_size(mem.swap_total)}")
    if h.pressure:
        out.append("pressure (some avg10) " + ", ".join(f"{k} {v:.1f}%" for k, v in h.pressure.items()
                                                          if v is not None))
    if h.top_cpu:
        out.append("top CPU: " + ", ".join(f"{r.name or '?'} ({r.pid}) {r.cpu_percent or 0:.0f}%"
                                           for r in h.top_cpu[:5]))
    if h.top_rss:
        out.append("top RSS: " + ", ".join(f"{r.name or '?'} ({r.pid}) {_size(r.rss)}" for r in h.top_rss[:5]))
    return out


def _failed_line(row: Event) -> tuple[str, str, str]:
    """(who and what, status, error) of a row that was not collected."""
    who = f"pid {row.pid}: " if row.pid else ""
    return who + row.what, row.status, row.error or ""


# --------------------------------------------------------------------------- Markdown

def _sev(f: Finding) -> str:
    return SEV_LABEL.get(f.severity, f.severity)


def summary_md(doc: Summary) -> str:
    lines = [f"# perfkit triage — {md(doc.hostname or '?')}", "",
             f"{_when(doc.started)} · {_headline(doc)}", ""]
    if doc.interrupted:
        lines += ["**Interrupted**: partial results.", ""]
    lines += ["## What stands out", ""]
    if not doc.findings:
        lines.append("Nothing stood out.")
    for f in doc.findings:
        ev = ", ".join(f"[{md(e)}]({_md_link(e)})" for e in f.evidence)
        lines.append(f"- **{_sev(f)}** {md(f.title)}"
                     + (f" — {md(f.detail)}" if f.detail else "") + (f" (evidence: {ev})" if ev else ""))
    lines += ["", "## Host", ""]
    lines += [f"- {md(x)}" for x in _host_lines(doc)]
    lines += ["", "## Python processes", "",
              "| pid | parent | name | CPU | RSS | threads | fds/limit | sockets | GIL holder | stacks | flame graph |",
              "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for p in doc.processes:
        lines.append("| " + " | ".join([
            str(p.pid), str(p.ppid or ""), md(p.shown_name),
            _pct(p.cpu_percent), _size(p.rss), str(p.threads or "?"), _fds(p), _sockets(p),
            md(p.gil_holder) if p.gil_holder else "",
            f"[stacks]({_md_link(p.stacks)})" if p.stacks else md(p.stacks_error or "—"),
            f"[flame]({_md_link(p.flame)})" if p.flame else "",
        ]) + " |")
    if doc.collection.failed:
        lines += ["", "## Not collected", ""]
        for row in doc.collection.failed:
            what, status, error = _failed_line(row)
            priv = " (needs more rights)" if row.needs_privilege else ""
            lines.append(f"- {md(what)}: {md(status)} — {md(error)}{priv}")
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


def index_html(doc: Summary, stacks: Mapping[int, str] | None = None) -> str:
    """The bundle's front page; ``stacks`` (pid -> stacks.txt text) is shown inline."""
    e = xml
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
             "img-src 'self'\">",
             f"<title>perfkit triage {e(doc.hostname or '?')}</title><style>{_CSS}</style></head><body>",
             f"<h1>perfkit triage — {e(doc.hostname or '?')}</h1>",
             f"<p>{e(_when(doc.started))} · {e(_headline(doc))}</p>"]
    if doc.interrupted:
        parts.append("<p class='high'>Interrupted: partial results.</p>")
    parts.append("<h2>What stands out</h2>")
    if not doc.findings:
        parts.append("<p>Nothing stood out.</p>")
    else:
        parts.append("<ul>")
        for f in doc.findings:
            ev = ", ".join(f"<a href='{e(_href(p))}'>{e(p)}</a>" for p in f.evidence)
            parts.append(f"<li><span class='{e(f.severity)}'>{e(_sev(f))}</span> "
                         f"{e(f.title)}" + (f" — {e(f.detail)}" if f.detail else "")
                         + (f" <small>(evidence: {ev})</small>" if ev else "") + "</li>")
        parts.append("</ul>")
    parts.append("<h2>Host</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in _host_lines(doc))
                 + "<li><a href='host/host.json'>host/host.json</a> (all host facts)</li></ul>")
    parts.append("<h2>Python processes</h2><table><tr><th>pid</th><th>parent</th><th>name</th><th>CPU</th>"
                 "<th>RSS</th><th>threads</th><th>fds/limit</th><th>sockets</th><th>GIL holder</th>"
                 "<th>artifacts</th></tr>")
    for p in doc.processes:
        links = [f"<a href='{e(_href(path))}'>{label}</a>" for path, label in
                 ((p.process_json, "facts"), (p.stacks, "stacks"), (p.flame, "flame graph")) if path]
        parts.append("<tr>" + "".join([
            f"<td class='n'>{p.pid}</td>", f"<td class='n'>{e(p.ppid or '')}</td>",
            f"<td title='{e(' '.join(p.cmdline))}'>{e(p.shown_name)}</td>",
            f"<td class='n'>{e(_pct(p.cpu_percent))}</td>", f"<td class='n'>{e(_size(p.rss))}</td>",
            f"<td class='n'>{e(p.threads or '?')}</td>", f"<td class='n'>{e(_fds(p))}</td>",
            f"<td class='n'>{e(_sockets(p))}</td>",
            f"<td>{e(p.gil_holder or '')}</td>", f"<td>{' · '.join(links)}</td>"]) + "</tr>")
    parts.append("</table>")
    if stacks:
        parts.append("<h2>Stacks</h2>")
        for pid, text in sorted(stacks.items()):
            parts.append(f"<details><summary>pid {pid}</summary><pre>{e(text)}</pre></details>")
    if doc.collection.failed:
        parts.append("<h2>Not collected</h2><ul>")
        for row in doc.collection.failed:
            what, status, error = _failed_line(row)
            priv = " <b>(needs more rights)</b>" if row.needs_privilege else ""
            parts.append(f"<li>{e(what)}: {e(status)} — {e(error)}{priv}</li>")
        parts.append("</ul>")
    parts.append("<p><a href='summary.md'>summary.md</a> · <a href='manifest.json'>manifest.json</a></p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _href(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/#.-_")


# --------------------------------------------------------------------------- stacks.txt

def stacks_text(pid: int, threads: Sequence[ThreadDump] | None, facts: ProcessFacts | None, *,
                title: str = "") -> str:
    """py-spy-dump-like text for one process; names shown with control chars escaped."""
    lines = [f"pid {pid}{(' ' + visible(title)) if title else ''}"]
    per_thread = facts.threads if facts else {}
    for t in threads or ():
        tid = t.os_thread_id
        state = "active" if t.active else "idle"
        gil = ", holds GIL" if t.owns_gil else ""
        row = per_thread.get(str(tid))
        cpu = row.cpu_percent if row else None
        cpu_s = f", {cpu:.0f}% CPU" if cpu is not None else ""
        name = visible(t.name) if t.name else "?"
        lines.append(f'\nThread {tid} ({state}{gil}{cpu_s}): "{name}"')
        for f in t.frames:
            lines.append(f"    {visible(f.name)} ({visible(f.filename or '?')}:{f.line})")
            for loc in f.locals:
                lines.append(f"        {visible(loc.name)} = {visible(loc.repr)}")
    if not threads:
        lines.append("\n(no Python threads)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- terminal

class TerminalSummary:
    """The triage summary as a rich renderable (all target text as ``Text``)."""

    def __init__(self, doc: Summary) -> None:
        self.doc = doc

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.table import Table
        from rich.text import Text

        doc = self.doc
        yield Text(f"perfkit triage · {visible(doc.hostname or '?')} · {_headline(doc)}", style="bold")
        for line in _host_lines(doc):
            yield Text("  " + visible(line), style="dim")
        if not doc.findings:
            yield Text("nothing stands out")
        styles = {"high": "bold red", "warn": "yellow", "info": "dim"}
        for f in doc.findings:
            text = Text(f"{_sev(f):>4} ", style=styles.get(f.severity, ""))
            text.append(visible(f.title))
            if f.detail:
                text.append(" — " + visible(f.detail), style="dim")
            if f.evidence:
                text.append("  [" + ", ".join(visible(x) for x in f.evidence) + "]", style="cyan")
            yield text
        table = Table(title="Python processes", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("pid", "name", "CPU", "RSS", "threads", "fds/limit", "GIL holder", "status"):
            table.add_column(col, justify="left" if col in ("name", "GIL holder", "status") else "right")
        for p in doc.processes[:40]:
            table.add_row(str(p.pid), Text(visible(p.shown_name)),
                          _pct(p.cpu_percent), _size(p.rss), str(p.threads or "?"), _fds(p),
                          Text(visible(p.gil_holder or "")), Text(visible(p.state or "")))
        yield table
        if len(doc.processes) > 40:
            yield Text(f"… and {len(doc.processes) - 40} more (see summary.md)")
        failed = doc.collection.failed
        if failed:
            n_priv = len(doc.collection.needs_privilege)
            msg = f"{len(failed)} items not collected"
            if n_priv:
                msg += f" ({n_priv} need more rights: run as root or with CAP_SYS_PTRACE)"
            yield Text(msg + " — see manifest.json", style="yellow")
        yield Text(f"bundle: {doc.bundle}", style="bold")


__all__ = ["summary_md", "index_html", "stacks_text", "TerminalSummary", "md"]
