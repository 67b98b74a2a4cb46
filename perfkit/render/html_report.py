"""A self-contained HTML report (opens offline: no network fetch, no external file).

Holds: an interactive flame graph (canvas; click to zoom, search with highlight and
matched %, hover details, flame/icicle toggle, one view per value type), a sortable
top-functions table, the split by thread, the recording's quality summary and
metadata, and line charts of ``profile.series`` (e.g. heap/RSS over time) as inline
SVG.  ``write_diff`` makes the differential variant (colour = change of share).

Untrusted names reach the page only as escaped HTML text or inside a JSON island that
cannot close its ``<script>`` element; the script draws them with ``fillText`` and
``textContent`` (never ``innerHTML``).  Output is deterministic.
"""

from __future__ import annotations

import json

from perfkit.model import Profile, Recording
from perfkit.render import flametree as ft
from perfkit.render.escape import encode, json_for_script, visible, xml
from perfkit.render.flamegraph_svg import LEGEND, category_color, diff_color
from perfkit.units import fmt_value

MIN_FRACTION = 1e-4  # frames under 0.01% of the total are left out of the page
TOP_ROWS = 300


# ----------------------------------------------------------------- data
def _view(tree: ft.FlameTree, slot: int, name: str, colors: list[str], color_of, extra_of=None,
          min_fraction: float = MIN_FRACTION) -> dict:
    boxes = ft.layout(tree, slot, min_fraction=min_fraction)
    palette: dict[str, int] = {}
    keymap: dict[int, int] = {}
    keys: list[list] = []
    out = []
    for b in boxes:
        k = tree.keys[b.node.key]
        ki = keymap.get(b.node.key)
        if ki is None:
            ki = keymap[b.node.key] = len(keys)
            keys.append([k.function, k.file, ft.CATEGORY_NAMES[ft.category(k.file, k.function)]])
        c = color_of(b.node, k)
        ci = palette.get(c)
        if ci is None:
            ci = palette[c] = len(colors)
            colors.append(c)
        row = [ki, b.depth, round(b.x, 7), round(b.w, 7), b.node.values[slot], tree.self_value(b.node, slot), ci]
        if extra_of is not None:
            row.extend(extra_of(b.node))
        out.append(row)
    return {"name": name, "unit": tree.units[slot], "total": tree.totals[slot], "keys": keys, "boxes": out}


def _plain_views(profile: Profile, value: str | None, min_fraction: float) -> tuple[list[dict], list[str]]:
    order = [profile.value_index(value)] + [i for i in range(len(profile.sample_types))
                                            if i != profile.value_index(value)]
    colors: list[str] = []
    views = []
    for i in order[:4]:
        vt = profile.sample_types[i]
        tree = ft.build([profile], vt.type, min_fraction=min_fraction, keep_small=False)
        cache: dict[int, str] = {}

        def color(node, k, cache=cache):
            c = cache.get(node.key)
            if c is None:
                c = cache[node.key] = category_color(ft.category(k.file, k.function), k.function)
            return c

        views.append(_view(tree, 0, f"{vt.type} ({vt.unit})", colors, color, min_fraction=min_fraction))
    return views, colors


# ----------------------------------------------------------------- html pieces
def _table(headers: list[tuple[str, str]], rows: list[list[tuple[str, object]]], cls: str = "sortable") -> str:
    """``headers``: (label, kind 'n'|'s'); ``rows``: cells of (text, sort value)."""
    head = "".join(f'<th data-kind="{kind}">{xml(label)}</th>' for label, kind in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td data-v="{xml(sv)}">{xml(visible(text))}</td>' for text, sv in row)
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _top_table(profile: Profile, vi: int) -> str:
    from perfkit.analysis.top import top

    unit = profile.sample_types[vi].unit
    rows = []
    for r in top(profile, vi, limit=TOP_ROWS):
        rows.append([(f"{r.self_pct:.2f}", r.self_pct), (f"{r.total_pct:.2f}", r.total_pct),
                     (fmt_value(r.self_value, unit), r.self_value), (fmt_value(r.total_value, unit), r.total_value),
                     (r.function, r.function), (f"{r.file}:{r.line}" if r.file else "", r.file)])
    return _table([("self %", "n"), ("total %", "n"), ("self", "n"), ("total", "n"), ("function", "s"),
                   ("file:line", "s")], rows)


def _thread_table(profile: Profile, vi: int) -> str:
    from perfkit.analysis.top import by_thread

    rows = by_thread(profile, vi)
    if len(rows) <= 1 and not any(r.tid for r in rows):
        return ""
    unit = profile.sample_types[vi].unit
    cells = [[(f"{r.pct:.2f}", r.pct), (fmt_value(r.value, unit), r.value), (str(r.pid or ""), r.pid or 0),
              (str(r.tid or ""), r.tid or 0), (r.thread or "", r.thread or "")] for r in rows]
    return "<h2>Threads</h2>" + _table([("%", "n"), ("value", "n"), ("pid", "n"), ("tid", "n"), ("thread", "s")], cells)


_QUALITY_KEYS = [("target", "target"), ("samples", "samples"), ("duration_s", "duration (s)"),
                 ("requested_rate", "requested rate (/s)"), ("achieved_rate", "achieved rate (/s)"),
                 ("sampling_errors", "sampling errors"), ("threads", "threads"), ("processes", "processes"),
                 ("tool", "tool"), ("tool_version", "tool version"), ("interrupted", "interrupted"),
                 ("target_exited", "target exited"), ("redacted", "secrets redacted from the command line")]


def _quality(rec: Recording) -> str:
    meta = rec.to_json()
    items = [(label, meta[k]) for k, label in _QUALITY_KEYS if meta.get(k) is not None]
    if not items:
        return ""
    req, got = meta.get("requested_rate"), meta.get("achieved_rate")
    summary = ""
    if isinstance(req, (int, float)) and isinstance(got, (int, float)) and req:
        pct = 100.0 * got / req
        summary = f'<p class="{"ok" if pct >= 90 else "warn"}">sampling reached {pct:.0f}% of the requested rate</p>'
    dl = "".join(f"<dt>{xml(label)}</dt><dd>{xml(visible(_meta_text(v)))}</dd>" for label, v in items)
    return f"<h2>Recording quality</h2>{summary}<dl>{dl}</dl>"


def _meta_text(v) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    return str(v)


def _metadata(rec: Recording, title: str = "Recording") -> str:
    meta = rec.to_json()
    if not meta:
        return ""
    rows = "".join(f"<tr><th>{xml(visible(k))}</th><td>{xml(visible(_meta_text(meta[k])))}</td></tr>"
                   for k in sorted(meta, key=str))
    return f'<details><summary>{xml(title)}</summary><table class="meta">{rows}</table></details>'


def _series_unit(name: str) -> str:
    low = name.lower()
    return "bytes" if any(w in low for w in ("byte", "rss", "heap", "mem", "space", "size")) else "count"


def series_chart(name: str, points: list, width: int = 560, height: int = 170) -> str:
    """One inline SVG line chart of ``[[t_seconds, value], ...]``."""
    pts = []
    for p in points or []:
        try:
            t, v = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError):
            continue
        if t == t and v == v:  # not NaN
            pts.append((t, v))
    if not pts:
        return ""
    pts.sort()
    unit = _series_unit(name)
    t0, t1 = pts[0][0], pts[-1][0]
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    lo = min(lo, 0.0)
    span_t = (t1 - t0) or 1.0
    span_v = (hi - lo) or 1.0
    L, R, T, B = 70, 10, 22, 24
    pw, ph = width - L - R, height - T - B
    coords = " ".join(f"{L + (t - t0) / span_t * pw:.1f},{T + ph - (v - lo) / span_v * ph:.1f}" for t, v in pts)
    last = pts[-1][1]
    return (f'<figure class="chart"><svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img"><title>{xml(visible(name))}</title>'
            f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>'
            f'<polyline fill="none" stroke="#c0392b" stroke-width="1.5" points="{coords}"/>'
            f'<text x="{L - 4}" y="{T + 4}" text-anchor="end">{xml(fmt_value(hi, unit))}</text>'
            f'<text x="{L - 4}" y="{T + ph}" text-anchor="end">{xml(fmt_value(lo, unit))}</text>'
            f'<text x="{L}" y="{height - 6}">{t0:.1f} s</text>'
            f'<text x="{L + pw}" y="{height - 6}" text-anchor="end">{t1:.1f} s</text>'
            f'<text x="{L}" y="14" font-weight="bold">{xml(visible(name))} (last {xml(fmt_value(last, unit))}, '
            f'{len(pts)} points)</text></svg></figure>')


def _series(series: dict) -> str:
    charts = "".join(series_chart(str(name), pts) for name, pts in sorted(series.items(), key=lambda kv: str(kv[0])))
    return f"<h2>Over time</h2>{charts}" if charts else ""


def _legend(items: list[tuple[str, str]]) -> str:
    return "".join(f'<span class="sw" style="background:{c}"></span>{xml(ft.CATEGORY_NAMES.get(n, n))} '
                   for n, c in items)


def _page(title: str, subtitle: str, data: dict, body: str, legend: str) -> bytes:
    html = (_TEMPLATE.replace("@TITLE@", xml(visible(title))).replace("@SUBTITLE@", xml(visible(subtitle)))
            .replace("@LEGEND@", legend).replace("@BODY@", body).replace("@CSS@", _CSS).replace("@JS@", _JS)
            .replace("@DATA@", json_for_script(data)))
    return encode(html)


def _subtitle(profile: Profile, vi: int) -> str:
    rec = profile.recording
    vt = profile.sample_types[vi]
    bits = [str(rec.target)] if rec.target else []
    bits.append(f"{vt.type}: {fmt_value(profile.total(vi), vt.unit)} total")
    if rec.duration_s:
        bits.append(f"{float(rec.duration_s):.1f} s")
    return " · ".join(bits)


def write(profile: Profile, value: str | None = None, *, title: str | None = None,
          min_fraction: float = MIN_FRACTION, **_options) -> bytes:
    """The report of one profile, flame graph weighted by ``value`` (default type) first."""
    vi = profile.value_index(value)
    views, colors = _plain_views(profile, value, min_fraction)
    data = {"diff": False, "views": views, "colors": colors}
    body = ("<h2>Top functions</h2>" + _top_table(profile, vi) + _thread_table(profile, vi) + _series(profile.series)
            + _quality(profile.recording) + _metadata(profile.recording))
    return _page(title or f"perfkit profile ({profile.sample_types[vi].type})", _subtitle(profile, vi), data, body,
                 _legend(LEGEND))


def write_diff(base: Profile, new: Profile, value: str | None = None, *, title: str | None = None,
               min_fraction: float = MIN_FRACTION, **_options) -> bytes:
    """Differential report: NEW's flame graph coloured by change of share vs BASE, and the table."""
    from perfkit.analysis.diff import diff

    result = diff(base, new, value)
    tree = ft.build([base, new], value, min_fraction=min_fraction, keep_small=False)
    tb, tn = tree.totals
    share = [100.0 / tb if tb else 0.0, 100.0 / tn if tn else 0.0]
    deltas: dict[int, float] = {}
    scale = 0.0
    stack = list(tree.root.children.values())
    while stack:
        n = stack.pop()
        d = n.values[1] * share[1] - n.values[0] * share[0]
        deltas[id(n)] = d
        if n.values[1] and abs(d) > scale:
            scale = abs(d)
        stack.extend(n.children.values())
    colors: list[str] = []
    view = _view(tree, 1, f"{result.value_type} (new, coloured by change)", colors,
                 lambda node, k: diff_color(deltas[id(node)], scale),
                 lambda node: [round(node.values[0] * share[0], 4), round(node.values[1] * share[1], 4)],
                 min_fraction=min_fraction)
    data = {"diff": True, "views": [view], "colors": colors}
    rows = [[(f"{r.delta_pp:+.2f}", r.delta_pp), (f"{r.base_pct:.2f}", r.base_pct), (f"{r.new_pct:.2f}", r.new_pct),
             (f"{r.total_delta_pp:+.2f}", r.total_delta_pp), (f"{r.base_total_pct:.2f}", r.base_total_pct),
             (f"{r.new_total_pct:.2f}", r.new_total_pct), (r.status, r.status), (r.function, r.function),
             (f"{r.file}:{r.line}" if r.file else "", r.file)] for r in result.rows[:TOP_ROWS]]
    table = _table([("Δ self pp", "n"), ("base self %", "n"), ("new self %", "n"), ("Δ total pp", "n"),
                    ("base total %", "n"), ("new total %", "n"), ("status", "s"), ("function", "s"),
                    ("file:line", "s")], rows)
    notes = "".join(f"<p>{xml(visible(n))}</p>" for n in result.notes)
    body = ("<h2>Functions whose share changed most</h2>" + notes + table
            + _metadata(base.recording, "Base recording") + _metadata(new.recording, "New recording"))
    subtitle = (f"base {fmt_value(tb, tree.units[0])} · new {fmt_value(tn, tree.units[1])} {result.value_type}; "
                f"widths: new profile; both normalised to their totals")
    legend = _legend([("grew", diff_color(1, 1)), ("shrank", diff_color(-1, 1))])
    return _page(title or f"perfkit diff ({result.value_type})", subtitle, data, body, legend)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:16px 24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:24px 0 8px}.sub{color:#666;margin:2px 0 10px}
#bar{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:6px 0}
#bar input{width:260px}#bar button,#bar select{font:inherit}#matched{color:#8e44ad;font-weight:bold}
#wrap{position:relative;border:1px solid #ddd;background:#fff}#flame{display:block;width:100%}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:4px 8px;border-radius:4px;
font-size:12px;white-space:pre;display:none;max-width:80vw;overflow:hidden;z-index:10}
#details{min-height:1.4em;color:#444;font-size:13px;white-space:pre-wrap;word-break:break-all}
.sw{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;border:1px solid #999}
table{border-collapse:collapse;font-size:13px;background:#fff}td,th{border:1px solid #e3e3e3;padding:2px 6px;
text-align:left;vertical-align:top}table.sortable th{cursor:pointer;background:#f0f0f0;user-select:none}
table.sortable td:nth-child(-n+4){text-align:right;font-variant-numeric:tabular-nums}
td{word-break:break-all}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#666}
dd{margin:0}.ok{color:#27773a}.warn{color:#b35900}.chart{display:inline-block;margin:4px 12px 4px 0}
.chart text{font-size:11px;fill:#444}table.meta th{background:#f6f6f6;font-weight:normal;color:#555}
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title><style>@CSS@</style></head><body>
<h1>@TITLE@</h1><p class="sub">@SUBTITLE@</p>
<div id="bar"><select id="view" aria-label="value type"></select>
<button id="reset" type="button">Reset zoom</button>
<button id="invert" type="button">Icicle</button>
<input id="search" type="search" placeholder="search frames (regex)" aria-label="search">
<span id="matched"></span><span class="legend">@LEGEND@</span></div>
<div id="wrap"><canvas id="flame"></canvas></div><div id="details"> </div><div id="tip"></div>
@BODY@
<script type="application/json" id="perfkit-data">@DATA@</script>
<script>@JS@</script>
</body></html>
"""

_JS = r"""
(function () {
  'use strict';
  var DATA = JSON.parse(document.getElementById('perfkit-data').textContent);
  var FH = 17, canvas = document.getElementById('flame'), ctx = canvas.getContext('2d');
  var tip = document.getElementById('tip'), details = document.getElementById('details');
  var matchedEl = document.getElementById('matched'), searchEl = document.getElementById('search');
  var viewSel = document.getElementById('view'), invertBtn = document.getElementById('invert');
  var view, zoomBox = null, inverted = false, re = null, hits = null, drawn = [];
  DATA.views.forEach(function (v, i) {
    var o = document.createElement('option'); o.value = i; o.textContent = v.name; viewSel.appendChild(o);
  });
  if (DATA.views.length < 2) viewSel.style.display = 'none';
  function fmt(v, unit) {
    if (unit === 'nanoseconds') { var s = v / 1e9; return s >= 1 ? s.toFixed(2) + ' s' : (s * 1e3).toFixed(1) + ' ms'; }
    if (unit === 'bytes') { var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0; while (Math.abs(v) >= 1024 && i < 4) { v /= 1024; i++; }
      return (i ? v.toFixed(1) : v.toFixed(0)) + ' ' + u[i]; }
    return Math.round(v).toLocaleString('en-US');
  }
  function vis(s) {  // control characters from the target shown as escapes, like the SVG/terminal
    return s.replace(/[\x00-\x1f\x7f]/g, function (c) {
      return c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\r' ? '\\r' : '\\x' + ('0' + c.charCodeAt(0).toString(16)).slice(-2);
    });
  }
  function depthOf(v) { var m = 0; v.boxes.forEach(function (b) { if (b[1] > m) m = b[1]; }); return m + 1; }
  function setView(i) { view = DATA.views[i]; view.depth = view.depth || depthOf(view); zoomBox = null; search(); }
  function size() {
    var dpr = window.devicePixelRatio || 1, w = canvas.parentNode.clientWidth, h = Math.max(view.depth, 1) * FH;
    canvas.width = Math.floor(w * dpr); canvas.height = Math.floor(h * dpr);
    canvas.style.height = h + 'px'; ctx.setTransform(dpr, 0, 0, dpr, 0, 0); return w;
  }
  function draw() {
    var W = size(), H = view.depth * FH, z = zoomBox, E = 1e-9;
    ctx.clearRect(0, 0, W, H); ctx.font = '12px Verdana, DejaVu Sans, sans-serif'; ctx.textBaseline = 'middle';
    drawn = [];
    var cw = ctx.measureText('m').width * 0.9;
    view.boxes.forEach(function (b, i) {
      var x = b[2], w = b[3], d = b[1], faded = false;
      if (z) {
        if (d >= z[1] && x >= z[2] - E && x + w <= z[2] + z[3] + E) { x = (x - z[2]) / z[3]; w = w / z[3]; }
        else if (d < z[1] && x <= z[2] + E && x + w >= z[2] + z[3] - E) { x = 0; w = 1; faded = true; }
        else return;
      }
      var px = x * W, pw = w * W;
      if (pw < 0.4) return;
      var y = inverted ? d * FH : H - (d + 1) * FH;
      ctx.globalAlpha = faded ? 0.55 : 1;
      ctx.fillStyle = hits && hits[i] ? 'rgb(230,0,230)' : DATA.colors[b[6]];
      ctx.fillRect(px, y, Math.max(pw - 0.5, 0.4), FH - 1);
      if (pw > 24) {
        var name = vis(view.keys[b[0]][0]), n = Math.floor((pw - 6) / cw);
        if (name.length > n) name = name.slice(0, Math.max(n - 2, 1)) + '..';
        ctx.fillStyle = '#000'; ctx.fillText(name, px + 3, y + FH / 2);
      }
      (drawn[d] = drawn[d] || []).push([px, pw, i]);
    });
    ctx.globalAlpha = 1;
  }
  function info(i) {
    var b = view.boxes[i], k = view.keys[b[0]], t = view.total || 1;
    var s = vis(k[0]) + (k[1] ? '\n' + vis(k[1]) : '') + '\n';
    if (DATA.diff) {
      var dd = b[8] - b[7];
      s += 'base ' + b[7].toFixed(2) + '% \u2192 new ' + b[8].toFixed(2) + '% (' + (dd >= 0 ? '+' : '') + dd.toFixed(2) + ' pp)';
    } else {
      s += fmt(b[4], view.unit) + ' (' + (100 * b[4] / t).toFixed(2) + '%) \u00b7 self ' + fmt(b[5], view.unit) +
        ' (' + (100 * b[5] / t).toFixed(2) + '%)';
    }
    return s + ' \u00b7 ' + k[2];
  }
  function hit(ev) {
    var r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    var d = Math.floor(y / FH); if (!inverted) d = view.depth - 1 - d;
    var row = drawn[d] || [];
    for (var j = 0; j < row.length; j++) if (x >= row[j][0] && x < row[j][0] + row[j][1]) return row[j][2];
    return -1;
  }
  canvas.addEventListener('mousemove', function (ev) {
    var i = hit(ev);
    if (i < 0) { tip.style.display = 'none'; canvas.style.cursor = ''; return; }
    canvas.style.cursor = 'pointer'; tip.textContent = info(i); details.textContent = info(i).replace(/\n/g, ' \u00b7 ');
    tip.style.display = 'block';
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - tip.offsetWidth - 4) + 'px';
    tip.style.top = (ev.clientY + 14) + 'px';
  });
  canvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  canvas.addEventListener('click', function (ev) { var i = hit(ev); if (i >= 0) { zoomBox = view.boxes[i]; draw(); } });
  document.getElementById('reset').addEventListener('click', function () { zoomBox = null; draw(); });
  invertBtn.addEventListener('click', function () { inverted = !inverted; invertBtn.textContent = inverted ? 'Flame' : 'Icicle'; draw(); });
  viewSel.addEventListener('change', function () { setView(+viewSel.value); });
  function search() {
    var term = searchEl.value; re = null; hits = null;
    if (term) { try { re = new RegExp(term); } catch (e) { matchedEl.textContent = 'bad regex'; draw(); return; } }
    if (re) {
      hits = []; var sum = 0, cover = Infinity;
      view.boxes.forEach(function (b, i) {
        var k = view.keys[b[0]], h = re.test(k[0] + ' ' + k[1]); hits.push(h);
        if (b[1] <= cover) { cover = Infinity; if (h) { sum += b[4]; cover = b[1]; } }
      });
      matchedEl.textContent = 'matched ' + (100 * sum / (view.total || 1)).toFixed(2) + '%';
    } else { matchedEl.textContent = ''; }
    draw();
  }
  searchEl.addEventListener('input', search);
  window.addEventListener('resize', draw);
  window.addEventListener('keydown', function (e) { if (e.key === 'Escape') { zoomBox = null; draw(); } });
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('th').forEach(function (th, col) {
      var asc = false;
      th.addEventListener('click', function () {
        asc = !asc; var num = th.getAttribute('data-kind') === 'n', body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
          var c = num ? (+x) - (+y) : (x < y ? -1 : x > y ? 1 : 0); return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  setView(0);
})();
"""
