"""A standalone interactive flame graph (SVG), and its differential variant.

Open it in a browser: click a frame to zoom, click "Reset zoom" (or press Esc) to
reset, "Search" (or Ctrl-F) highlights frames matching a regex and shows the matched
share, hovering shows the frame's file, value and share.  Frame widths are exactly
proportional to the frame's value (frames narrower than ``min_width`` px are left
out, like flamegraph.pl).  Colours say where the code lives: your code (warm),
stdlib (aqua), third-party (green), native (grey).  In a diff, colour says how the
frame's share of the total changed (red grew, blue shrank).

Every name from the profile is escaped (``perfkit.render.escape``); output is
deterministic (children ordered by name, no timestamps, no random ids).
"""

from __future__ import annotations

import zlib

from perfkit.model import Profile
from perfkit.render import flametree as ft
from perfkit.render.escape import encode, markup, visible, xml
from perfkit.units import fmt_value

FONT = 12
CHAR_W = 0.59 * FONT  # average glyph width of the font below
PAD = 10
TOP = 66  # title, subtitle, then the legend on its own line
BOTTOM = 34
FONT_FAMILY = "Verdana, DejaVu Sans, sans-serif"


def _h(text: str) -> tuple[float, float, float]:
    h = zlib.crc32(text.encode("utf-8", "backslashreplace"))
    return (h & 0xFF) / 255.0, ((h >> 8) & 0xFF) / 255.0, ((h >> 16) & 0xFF) / 255.0


def category_color(cat: str, name: str) -> str:
    a, b, c = _h(name)
    if cat == ft.OWN:
        r, g, bl = 205 + 50 * c, 230 * a, 55 * b
    elif cat == ft.STDLIB:
        r, g, bl = 50 + 60 * a, 165 + 55 * a, 165 + 55 * a
    elif cat == ft.THIRD:
        r, g, bl = 60 + 60 * a, 175 + 55 * b, 60 + 40 * a
    else:
        v = 170 + 50 * a
        r, g, bl = v, v, v + 10 * b
    return f"rgb({int(r)},{int(g)},{int(min(bl, 255))})"


LEGEND = [(ft.OWN, "rgb(230,110,20)"), (ft.STDLIB, "rgb(80,195,195)"), (ft.THIRD, "rgb(90,200,80)"),
          (ft.NATIVE, "rgb(190,190,200)")]


def diff_color(delta: float, scale: float) -> str:
    """White for no change, red for a grown share, blue for a shrunk one."""
    if scale <= 0 or abs(delta) < 1e-12:
        return "rgb(250,250,250)"
    t = min(1.0, abs(delta) / scale)
    fade = int(250 - 200 * t)
    return f"rgb(250,{fade},{fade})" if delta > 0 else f"rgb({fade},{fade},250)"


def _label(name: str, width_px: float) -> str:
    n = int((width_px - 6) / CHAR_W)
    if n < 3:
        return ""
    return name if len(name) <= n else name[: n - 2] + ".."  # the same object when it fits


def _render(tree: ft.FlameTree, slot: int, *, title: str, subtitle: str, width: int, frame_height: int,
            min_width: float, color_of, info_of, legend: list[tuple[str, str]], inverted: bool = False) -> bytes:
    inner = width - 2 * PAD
    boxes = ft.layout(tree, slot, min_fraction=min_width / inner if inner > 0 else 0.0)
    depth = max((b.depth for b in boxes), default=0) + 1
    height = TOP + depth * frame_height + BOTTOM
    total = tree.totals[slot] if tree.totals else 0
    keys = tree.keys
    parts = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n',
        f'<svg version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" data-total="{total}" data-inverted="{1 if inverted else 0}">\n',
        "<style>text{font-family:" + FONT_FAMILY + f";font-size:{FONT}px;fill:#000}}"
        "g.f:hover rect{stroke:#000;stroke-width:0.5}g.f{cursor:pointer}"
        ".btn{cursor:pointer;fill:#1a5fb4}.btn:hover{text-decoration:underline}</style>\n",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8f8f8"/>\n',
        f'<text id="title" x="{width / 2:.0f}" y="20" text-anchor="middle" style="font-size:16px">'
        f'{xml(title)}</text>\n',
        f'<text id="subtitle" x="{width / 2:.0f}" y="38" text-anchor="middle" style="fill:#555">'
        f'{xml(subtitle)}</text>\n',
        f'<text id="unzoom" class="btn" x="{PAD}" y="20" style="display:none">Reset zoom</text>\n',
        f'<text id="search" class="btn" x="{width - PAD}" y="20" text-anchor="end">Search</text>\n',
        f'<text id="matched" x="{width - PAD}" y="{height - 12}" text-anchor="end"></text>\n',
        f'<text id="details" x="{PAD}" y="{height - 12}"> </text>\n',
    ]
    lx = PAD
    for cat, color in legend:
        label = ft.CATEGORY_NAMES.get(cat, cat)
        parts.append(f'<rect x="{lx}" y="44" width="10" height="10" fill="{color}"/>'
                     f'<text x="{lx + 14}" y="53" style="font-size:10px;fill:#555">{xml(label)}</text>\n')
        lx += 24 + len(label) * 6
    fh = frame_height
    base_y = TOP + (depth - 1) * fh
    per_key: dict[int, tuple[str, str, str, str]] = {}  # escaped once per frame, not per box
    for b in boxes:
        node = b.node
        k = keys[node.key]
        cached = per_key.get(node.key)
        if cached is None:  # the tooltip's first lines: the frame's name and location
            name = visible(k.function)
            head = f"{name}\n{visible(k.location)}\n" if k.location else f"{name}\n"
            cached = per_key[node.key] = (name, xml(name), f"{xml(k.function)} {xml(k.location)}", markup(head))
        name, name_xml, data_n, head_markup = cached
        x = PAD + b.x * inner
        w = b.w * inner
        y = TOP + b.depth * fh if inverted else base_y - b.depth * fh
        label = _label(name, w)
        parts.append(
            f'<g class="f" data-d="{b.depth}" data-v="{node.values[slot]}" data-n="{data_n}" '
            f'data-l="{name_xml}"><title>{head_markup}{markup(info_of(node, k))}</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{fh - 1}" rx="2" fill="{color_of(node, k)}"/>'
            f'<text x="{x + 3:.2f}" y="{y + fh - 4.5:.1f}">{name_xml if label is name else xml(label)}</text></g>\n')
    parts.append("<script><![CDATA[\n" + _JS.replace("@PAD@", str(PAD)).replace("@W@", str(inner))
                 .replace("@CW@", f"{CHAR_W:.3f}") + "\n]]></script>\n</svg>\n")
    return encode("".join(parts))


def _subtitle(profile: Profile, vi: int, total: int) -> str:
    vt = profile.sample_types[vi] if profile.sample_types else None
    rec = profile.recording
    bits = []
    if rec.target:
        bits.append(str(rec.target))
    if vt is not None:
        bits.append(f"{vt.type}: {fmt_value(total, vt.unit)} total")
    if rec.duration_s:
        bits.append(f"{float(rec.duration_s):.1f} s")
    return " · ".join(bits)


def write(profile: Profile, value: str | None = None, *, title: str | None = None, width: int = 1200,
          frame_height: int = 16, min_width: float = 0.1, lines: bool = False, inverted: bool = False,
          **_options) -> bytes:
    """An interactive flame graph of ``profile`` weighted by ``value`` (default type)."""
    vi = profile.value_index(value)
    tree = ft.build([profile], value, lines=lines, min_fraction=min_width / max(width - 2 * PAD, 1),
                    keep_small=False)
    total = tree.totals[0]
    unit = tree.units[0]
    pct = 100.0 / total if total else 0.0

    cats: dict[int, tuple[str, str]] = {}  # key -> (category name, colour)

    def cat(node: ft.Node, k: ft.Key) -> tuple[str, str]:
        c = cats.get(node.key)
        if c is None:
            kind = ft.category(k.file, k.function)
            c = cats[node.key] = (ft.CATEGORY_NAMES[kind], category_color(kind, k.function))
        return c

    def info(node: ft.Node, k: ft.Key) -> str:  # the tooltip below the frame's name and location
        v = node.values[0]
        sv = tree.self_value(node)
        return (f"{fmt_value(v, unit)} ({v * pct:.2f}%) · self {fmt_value(sv, unit)} "
                f"({sv * pct:.2f}%) · {cat(node, k)[0]}")

    def color(node: ft.Node, k: ft.Key) -> str:
        return cat(node, k)[1]

    vt = profile.sample_types[vi]
    return _render(tree, 0, title=title or f"Flame graph ({vt.type})", subtitle=_subtitle(profile, vi, total),
                   width=width, frame_height=frame_height, min_width=min_width, color_of=color, info_of=info,
                   legend=LEGEND, inverted=inverted)


def write_diff(base: Profile, new: Profile, value: str | None = None, *, title: str | None = None,
               width: int = 1200, frame_height: int = 16, min_width: float = 0.1, lines: bool = False,
               **_options) -> bytes:
    """A differential flame graph: the NEW profile's shape, coloured by each frame's change
    in share of the total (new% - base%, both normalised to their own totals)."""
    tree = ft.build([base, new], value, lines=lines, min_fraction=min_width / max(width - 2 * PAD, 1),
                    keep_small=False)
    tb, tn = tree.totals
    deltas: dict[int, float] = {}
    scale = 0.0

    def share(node: ft.Node, slot: int) -> float:
        t = tree.totals[slot]
        return 100.0 * node.values[slot] / t if t else 0.0

    def walk(node: ft.Node) -> None:
        nonlocal scale
        stack = [node]
        while stack:
            n = stack.pop()
            d = share(n, 1) - share(n, 0)
            deltas[id(n)] = d
            if n.values[1] and abs(d) > scale:
                scale = abs(d)
            stack.extend(n.children.values())

    for c in tree.root.children.values():
        walk(c)

    def info(node: ft.Node, k: ft.Key) -> str:
        return (f"base {share(node, 0):.2f}% → new {share(node, 1):.2f}% "
                f"({deltas[id(node)]:+.2f} pp) · new {fmt_value(node.values[1], tree.units[1])}")

    def color(node: ft.Node, k: ft.Key) -> str:
        return diff_color(deltas[id(node)], scale)

    vi = new.value_index(value)
    vt = new.sample_types[vi]
    subtitle = (f"width: new profile ({fmt_value(tn, tree.units[1])} {vt.type}); colour: change of share vs base "
                f"({fmt_value(tb, tree.units[0])}) · red grew, blue shrank")
    legend = [("grew", diff_color(1, 1)), ("shrank", diff_color(-1, 1))]
    return _render(tree, 1, title=title or f"Differential flame graph ({vt.type})", subtitle=subtitle, width=width,
                   frame_height=frame_height, min_width=min_width, color_of=color, info_of=info, legend=legend)


_JS = r"""
(function () {
  var PAD = @PAD@, W = @W@, CW = @CW@;
  var svg = document.documentElement;
  var total = +svg.getAttribute('data-total') || 1;
  var frames = Array.prototype.slice.call(document.querySelectorAll('g.f'));
  var details = document.getElementById('details'), matched = document.getElementById('matched');
  var unzoom = document.getElementById('unzoom'), searchBtn = document.getElementById('search');
  frames.forEach(function (g) {
    var r = g.querySelector('rect');
    g._x = +r.getAttribute('x'); g._w = +r.getAttribute('width'); g._d = +g.getAttribute('data-d');
    g._fill = r.getAttribute('fill');
    g.addEventListener('click', function () { zoom(g); });
    g.addEventListener('mouseover', function () {
      details.textContent = g.querySelector('title').textContent.replace(/\n/g, ' \u00b7 ');
    });
    g.addEventListener('mouseout', function () { details.textContent = ' '; });
  });
  function fit(g, x, w) {
    var r = g.querySelector('rect'), t = g.querySelector('text'), name = g.getAttribute('data-l');
    r.setAttribute('x', x.toFixed(2)); r.setAttribute('width', w.toFixed(2));
    t.setAttribute('x', (x + 3).toFixed(2));
    var n = Math.floor((w - 6) / CW);
    t.textContent = n < 3 ? '' : (name.length <= n ? name : name.slice(0, n - 2) + '..');
  }
  var E = 0.02;
  function zoom(z) {
    var x0 = z._x, w0 = z._w, d = z._d, s = W / w0;
    frames.forEach(function (g) {
      var inside = g._x >= x0 - E && g._x + g._w <= x0 + w0 + E;
      if (g._d >= d && inside) { g.style.display = ''; g.style.opacity = ''; fit(g, PAD + (g._x - x0) * s, g._w * s); }
      else if (g._d < d && g._x <= x0 + E && g._x + g._w >= x0 + w0 - E) {
        g.style.display = ''; g.style.opacity = '0.6'; fit(g, PAD, W);
      } else { g.style.display = 'none'; }
    });
    unzoom.style.display = '';
  }
  function reset() {
    frames.forEach(function (g) { g.style.display = ''; g.style.opacity = ''; fit(g, g._x, g._w); });
    unzoom.style.display = 'none';
  }
  function search(term) {
    var re = null;
    if (term) { try { re = new RegExp(term); } catch (e) { matched.textContent = 'bad regex'; return; } }
    var sum = 0, cover = Infinity;
    frames.forEach(function (g) {
      var hit = re && re.test(g.getAttribute('data-n'));
      g.querySelector('rect').setAttribute('fill', hit ? 'rgb(230,0,230)' : g._fill);
      if (g._d <= cover) { cover = Infinity; if (hit) { sum += +g.getAttribute('data-v'); cover = g._d; } }
    });
    matched.textContent = re ? 'Matched: ' + (100 * sum / total).toFixed(2) + '%' : '';
    searchBtn.textContent = re ? 'Clear search' : 'Search';
  }
  var searching = false;
  searchBtn.addEventListener('click', function () {
    if (searching) { searching = false; search(null); return; }
    var term = window.prompt('Search frames (regular expression):', '');
    if (term) { searching = true; search(term); }
  });
  unzoom.addEventListener('click', reset);
  window.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') { reset(); }
    if ((e.ctrlKey || e.metaKey) && e.key === 'f') { e.preventDefault(); searchBtn.dispatchEvent(new Event('click')); }
  });
})();
"""
