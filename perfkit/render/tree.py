"""A top-down call tree for the terminal (``perfkit flame IN --tree``).

Pruned to the heaviest paths: children under ``min_pct`` of the total are folded into
one "… N more" line, at most ``max_children`` per node, down to ``max_depth``; runs of
4+ single-child frames with the same value (library call chains) are shown as
``first ⋯ N frames ⋯ last`` on one line.
Built from ``rich.text.Text`` only (names from the target are never markup).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.model import Profile
from perfkit.render import flametree as ft


@dataclass
class CallTree:
    tree: ft.FlameTree
    title: str = "Call tree"
    min_pct: float = 1.0
    max_depth: int = 40
    max_children: int = 8

    @classmethod
    def of(cls, profile: Profile, value: str | None = None, *, min_pct: float = 1.0, max_depth: int = 40,
           max_children: int = 8, lines: bool = False) -> "CallTree":
        vi = profile.value_index(value)
        tree = ft.build([profile], value, lines=lines, min_fraction=min_pct / 100.0)
        vt = profile.sample_types[vi]
        return cls(tree, f"Call tree ({vt.type}, frames ≥ {min_pct:g}% of the total)", min_pct, max_depth, max_children)

    def _kids(self, node: ft.Node) -> tuple[list[ft.Node], int, int]:
        total = self.tree.totals[0]
        limit = self.min_pct / 100.0 * total
        kids = sorted(node.children.values(), key=lambda n: (-n.values[0], self.tree.keys[n.key].function))
        shown = [k for k in kids if k.values[0] >= limit and k.values[0] > 0][: self.max_children]
        hidden = len(kids) - len(shown)
        hidden_v = sum(k.values[0] for k in kids) - sum(k.values[0] for k in shown)
        return shown, hidden, hidden_v

    def _chain(self, node: ft.Node) -> tuple[ft.Node, int]:
        """Follow a run of single children with the same value (deep library call
        chains): returns its last node and how many frames lie between."""
        chain = [node]
        while len(chain[-1].children) == 1:
            only = next(iter(chain[-1].children.values()))
            if only.values[0] != node.values[0]:
                break
            chain.append(only)
        if len(chain) < 4:
            return node, 0
        return chain[-1], len(chain) - 2

    def _label(self, node: ft.Node):
        from rich.text import Text

        from perfkit.console import plain
        from perfkit.paths import short_path as _short_path

        total = self.tree.totals[0] or 1
        k = self.tree.keys[node.key]
        pct = 100.0 * node.values[0] / total
        selfp = 100.0 * self.tree.self_value(node) / total
        t = Text(f"{pct:5.1f}% ", style="bold" if pct >= 10 else "")
        t.append(plain(k.function), style="cyan")
        if k.file:
            t.append("  " + plain(_short_path(k.file) + (f":{k.line}" if k.line else "")), style="dim")
        if selfp >= 0.05:
            t.append(f"  self {selfp:.1f}%", style="yellow" if selfp >= 10 else "dim")
        return t

    def __rich_console__(self, console, options):
        from rich.text import Text
        from rich.tree import Tree

        total = self.tree.totals[0]
        top = Tree(Text(self.title, style="bold"), guide_style="dim")
        if not total:
            top.add(Text("(empty profile)", style="dim"))
            yield top
            return
        work = [(self.tree.root, top, 0)]
        while work:
            node, branch, depth = work.pop()
            shown, hidden, hidden_v = self._kids(node)
            pairs = []
            for child in shown:
                last, skipped = self._chain(child)
                label = self._label(child)
                if last is not child:
                    label.append(f"  ⋯ {skipped} frame{'s' if skipped != 1 else ''} ⋯  ", style="dim")
                    label.append_text(self._label(last))
                sub = branch.add(label)
                pairs.append((last, sub, depth + 1))
            if hidden and hidden_v:
                branch.add(Text(f"… {hidden} more ({100.0 * hidden_v / total:.1f}%)", style="dim"))
            if depth + 1 < self.max_depth:
                work.extend(reversed(pairs))
        yield top

    def to_json(self) -> dict:
        total = self.tree.totals[0] or 1

        def node_json(node: ft.Node, depth: int) -> dict:
            k = self.tree.keys[node.key]
            shown, _, _ = self._kids(node)
            out = {"function": k.function, "file": k.file, "value": node.values[0],
                   "pct": round(100.0 * node.values[0] / total, 3),
                   "self_pct": round(100.0 * self.tree.self_value(node) / total, 3)}
            if depth + 1 < self.max_depth and shown:
                out["children"] = [node_json(c, depth + 1) for c in shown]
            return out

        shown, _, _ = self._kids(self.tree.root)
        return {"total": self.tree.totals[0], "unit": self.tree.units[0],
                "children": [node_json(c, 0) for c in shown]}
