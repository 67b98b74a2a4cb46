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

    The stacks (as key ids) are sorted once; then every node's stacks are one
    contiguous run, its children's runs are found by bisection and their values by
    prefix sums, so the cost grows with the nodes built, not with the frames of every
    stack (pure Python: importing numpy cost more than it saved).  A node whose value
    is at most ``min_fraction`` of the total in every slot is kept as an unexpanded
    leaf (what no view would draw is never built); with ``keep_small=False`` such
    nodes are dropped altogether (views that never draw them).  Values are exact.
    """
    from bisect import bisect_left
    from itertools import accumulate

    keys: list[Key] = []
    index: dict[Key, int] = {}
    nslots = len(profiles)
    root = Node(-1, nslots)
    totals: list[int] = []
    units: list[str] = []
    stacks: list[tuple[int, ...]] = []
    vals: list[int] = []
    slots: list[int] = []
    for slot, prof in enumerate(profiles):
        vi = prof.value_index(value)
        units.append(prof.sample_types[vi].unit if prof.sample_types else "count")
        km = _keymap(prof, keys, index, lines)
        remap = None if km == list(range(len(km))) else km.__getitem__
        n0 = len(stacks)
        samples = prof.samples
        pv = [s.values[vi] for s in samples]
        if 0 in pv:
            samples = [s for s, v in zip(samples, pv, strict=True) if v]
            pv = [v for v in pv if v]
        vals += pv
        stacks += [s.stack for s in samples] if remap is None else [tuple(map(remap, s.stack)) for s in samples]
        slots.extend([slot] * (len(stacks) - n0))
        total = sum(vals[n0:])
        totals.append(total)
        root.values[slot] = total
    order = sorted(range(len(stacks)), key=stacks.__getitem__)
    stacks = list(map(stacks.__getitem__, order))
    if nslots == 1:
        cums = [[0, *accumulate(map(vals.__getitem__, order))]]
    else:
        cums = [[0, *accumulate(vals[i] if slots[i] == s else 0 for i in order)] for s in range(nslots)]
    del vals, slots, order
    limits = [min_fraction * t for t in totals]
    limit0 = limits[0] if limits else 0.0
    n = len(stacks)
    lo = 0
    while lo < n and not stacks[lo]:
        lo += 1  # empty stacks (sorted first): the root's own value
    root.selfv = [c[lo] for c in cums]
    work = [(root, lo, n, 0)]
    while work:
        node, a, hi, d = work.pop()
        children = node.children
        nd = d + 1
        while a < hi:
            st = stacks[a]
            k = st[d]
            b = bisect_left(stacks, st[:d] + (k + 1,), a + 1, hi)
            e = a
            while e < b and len(stacks[e]) == nd:
                e += 1  # stacks ending in this child sort first in its run
            vs = [c[b] - c[a] for c in cums]
            big = any(vs[i] > limits[i] for i in range(nslots)) if nslots > 1 else vs[0] > limit0
            if big or keep_small:
                child = Node(k, nslots)
                child.values = vs
                child.selfv = [c[e] - c[a] for c in cums]
                children[k] = child
                if not big:
                    child.expanded = False
                elif e < b:
                    work.append((child, e, b, nd))
            a = b
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
