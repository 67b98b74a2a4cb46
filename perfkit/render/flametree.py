"""The merged call tree behind every flame graph view (SVG, HTML, terminal tree).

Stacks are merged top-down into nodes keyed by frame (function + file by default, so
lines of one function share a box; ``lines=True`` keeps them apart).  A node holds one
value per *slot*: one slot for a plain profile, two (base, new) for a diff.  Children
are ordered by name, so layouts are deterministic.

Categories colour frames by where the code lives: ``own`` (your code), ``stdlib``,
``third`` (site-packages / dist-packages) and ``native`` (no Python file).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.model import Frame, Profile

OWN, STDLIB, THIRD, NATIVE = "own", "stdlib", "third", "native"
CATEGORY_NAMES = {OWN: "your code", STDLIB: "stdlib", THIRD: "third-party", NATIVE: "native"}


_KIND = {"user": OWN, "stdlib": STDLIB, "site": THIRD, "tool": THIRD, "native": NATIVE}


def category(frame_file: str, function: str = "") -> str:
    """Where the code lives, as ``perfkit.paths`` classifies it (one classification everywhere)."""
    from perfkit import paths

    return _KIND[paths.classify(frame_file, function)]


@dataclass(frozen=True)
class Key:
    function: str
    file: str
    line: int = 0

    @property
    def label(self) -> str:
        return self.function

    @property
    def location(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file


class Node:
    """``values[slot]``: inclusive value; ``selfv[slot]``: value of stacks ending here.

    Nodes below the build's ``min_fraction`` are kept as leaves without children
    (``expanded`` is False) so their parents' values stay exact.
    """

    __slots__ = ("key", "values", "selfv", "children", "expanded")

    def __init__(self, key: int, nslots: int) -> None:
        self.key = key
        self.values = [0] * nslots
        self.selfv = [0] * nslots
        self.children: dict[int, Node] = {}
        self.expanded = True

    def sorted_children(self, keys: list[Key]) -> list["Node"]:
        return sorted(self.children.values(), key=lambda n: (keys[n.key].function, keys[n.key].file, keys[n.key].line))


@dataclass
class FlameTree:
    root: Node
    keys: list[Key]
    totals: list[int]
    units: list[str]

    def self_value(self, node: Node, slot: int = 0) -> int:
        return node.selfv[slot] if node.expanded else node.values[slot]


def _keymap(profile: Profile, keys: list[Key], index: dict[Key, int], lines: bool) -> list[int]:
    out = []
    for f in profile.frames:
        k = Key(f.function, f.file, f.line if lines else 0)
        i = index.get(k)
        if i is None:
            i = index[k] = len(keys)
            keys.append(k)
        out.append(i)
    return out


def build(profiles: list[Profile], value: str | None = None, *, lines: bool = False,
          min_fraction: float = 0.0, keep_small: bool = True) -> FlameTree:
    """One tree over one or more profiles (slot i holds profile i's values).

    Built level by level with numpy (group by (parent, frame) per depth); a node whose
    value is at most ``min_fraction`` of the total in every slot is kept as an
    unexpanded leaf (what no view would draw is never built), which keeps 100k-stack
    profiles fast; with ``keep_small=False`` such nodes are dropped altogether (views
    that never draw them).  Values are exact: sums stay far below 2**53.
    """
    import numpy as np
    from itertools import chain

    keys: list[Key] = []
    index: dict[Key, int] = {}
    nslots = len(profiles)
    root = Node(-1, nslots)
    totals: list[int] = []
    units: list[str] = []
    parts = []
    for slot, prof in enumerate(profiles):
        vi = prof.value_index(value)
        units.append(prof.sample_types[vi].unit if prof.sample_types else "count")
        km = np.asarray(_keymap(prof, keys, index, lines) or [0], dtype=np.int64)
        samples = [s for s in prof.samples if s.values[vi]]
        n = len(samples)
        vals = np.fromiter((s.values[vi] for s in samples), np.int64, n)
        lens = np.fromiter((len(s.stack) for s in samples), np.int64, n)
        flat = np.fromiter(chain.from_iterable(s.stack for s in samples), np.int64, int(lens.sum()))
        parts.append((np.full(n, slot, np.int64), vals, lens, km[flat] if flat.size else flat))
        total = int(vals.sum())
        totals.append(total)
        root.values[slot] = total
        root.selfv[slot] = int(vals[lens == 0].sum())
    slots = np.concatenate([p[0] for p in parts])
    vals = np.concatenate([p[1] for p in parts])
    lens = np.concatenate([p[2] for p in parts])
    keyflat = np.concatenate([p[3] for p in parts])
    offsets = np.cumsum(lens) - lens
    limits = [min_fraction * t for t in totals]
    nodes: list[Node] = [root]
    group = np.zeros(len(vals), np.int64)
    active = np.nonzero(lens > 0)[0]
    K = max(len(keys), 1)
    d = 0
    while active.size:
        k = keyflat[offsets[active] + d]
        combo = group[active] * K + k
        uniq, inv = np.unique(combo, return_inverse=True)
        m = len(uniq)
        a_vals = vals[active].astype(np.float64)
        a_slots = slots[active]
        ends = lens[active] == d + 1
        sums = []
        selfs = []
        for slot in range(nslots):
            w = a_vals if nslots == 1 else np.where(a_slots == slot, a_vals, 0.0)
            sums.append(np.bincount(inv, weights=w, minlength=m))
            selfs.append(np.bincount(inv, weights=np.where(ends, w, 0.0), minlength=m))
        big = np.zeros(m, bool)
        for slot in range(nslots):
            big |= sums[slot] > limits[slot]
        new_ids = np.full(m, -1, np.int64)
        keep = np.arange(m) if keep_small else np.nonzero(big)[0]
        sums_l = [np.rint(x[keep]).astype(np.int64).tolist() for x in sums]
        selfs_l = [np.rint(x[keep]).astype(np.int64).tolist() for x in selfs]
        big_l = big[keep].tolist()
        uniq_l = uniq[keep].tolist()
        for j, g in enumerate(keep.tolist()):
            c = uniq_l[j]
            node = Node(c % K, nslots)
            for slot in range(nslots):
                node.values[slot] = sums_l[slot][j]
                node.selfv[slot] = selfs_l[slot][j]
            nodes[c // K].children[node.key] = node
            if big_l[j]:
                new_ids[g] = len(nodes)
                nodes.append(node)
            else:
                node.expanded = False
        ids = new_ids[inv]
        group[active] = np.maximum(ids, 0)
        active = active[(ids >= 0) & ~ends]
        d += 1
    return FlameTree(root, keys, totals, units)


@dataclass
class Box:
    """A laid-out frame: ``x``/``w`` as fractions of the full width, ``depth`` from the root."""

    node: Node
    depth: int
    x: float
    w: float


def layout(tree: FlameTree, slot: int = 0, min_fraction: float = 0.0, max_depth: int | None = None) -> list[Box]:
    """Pre-order boxes (parents before children, siblings by name), pruned below ``min_fraction``."""
    total = tree.totals[slot] if tree.totals else 0
    if total <= 0:
        return []
    keys = tree.keys
    out: list[Box] = []
    inv = 1.0 / total
    min_v = min_fraction * total
    stack = [(c, 0) for c in reversed(tree.root.sorted_children(keys))]
    # x positions: computed by walking children left to right under each parent
    xs: dict[int, float] = {}
    pos = 0.0
    for c, _ in reversed(stack):
        xs[id(c)] = pos
        pos += c.values[slot] * inv
    while stack:
        node, depth = stack.pop()
        v = node.values[slot]
        if v <= min_v or v <= 0:
            continue
        x = xs.pop(id(node))
        out.append(Box(node, depth, x, v * inv))
        if max_depth is not None and depth + 1 >= max_depth:
            continue
        kids = node.sorted_children(keys) if len(node.children) > 1 else list(node.children.values())
        cx = x
        for c in kids:
            xs[id(c)] = cx
            cx += c.values[slot] * inv
        for c in reversed(kids):
            stack.append((c, depth + 1))
    return out


def frame_key(frame: Frame) -> Key:
    return Key(frame.function, frame.file, 0)
