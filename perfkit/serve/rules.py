"""Prometheus alerting rules for the metrics of `perfkit serve` (``--print-rules``).

The rules are data (``alerts.json`` beside this module); each rule's summary names the
perfkit command to run next on the alerting pid.  The
output is YAML (every string JSON-quoted, which YAML reads as-is) that ``promtool check
rules`` accepts; ``tests/test_serve_prometheus.py`` proves with ``promtool test rules``
that each fires on series that should and stays quiet on series that should not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

WHO = "{{ $labels.cmd }} (pid {{ $labels.pid }} on {{ $labels.instance }})"


@dataclass
class Rule:
    alert: str
    expr: str
    for_: str | None
    severity: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)


_DATA = Path(__file__).with_name("alerts.json")  # the rules themselves: data, not code


def _fill(text: str, **values: str) -> str:
    for k, v in values.items():  # plain replacement: Prometheus' own {{ templates }} stay as they are
        text = text.replace("{" + k + "}", v)
    return text


def rules(leak_for: str = "10m") -> list[Rule]:
    doc = json.loads(_DATA.read_text(encoding="utf-8"))
    leak = doc["leak"]
    out = [Rule(alert=_fill(leak["alert"], Resource=res.capitalize()), expr=_fill(leak["expr"], resource=res),
                for_=leak_for, severity=leak["severity"],
                summary=_fill(leak["summary"], who=WHO, what=v["what"], next=v["next"]),
                description=_fill(leak["description"], what=v["what"]))
           for res, v in doc["leaks"].items()]
    out += [Rule(alert=r["alert"], expr=r["expr"], for_=r.get("for"), severity=r["severity"],
                 summary=_fill(r["summary"], who=WHO), description=r["description"]) for r in doc["rules"]]
    return out


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def to_yaml(items: list[Rule] | None = None, group: str = "perfkit") -> str:
    items = rules() if items is None else items
    lines = ["# Prometheus alerting rules for perfkit serve (perfkit serve --print-rules).",
             "# Load them with rule_files: in prometheus.yml; check with promtool check rules.",
             "groups:", f"  - name: {_q(group)}", "    rules:"]
    for r in items:
        lines.append(f"      - alert: {r.alert}")
        lines.append(f"        expr: {_q(r.expr)}")
        if r.for_:
            lines.append(f"        for: {r.for_}")
        lines.append("        labels:")
        lines.append(f"          severity: {_q(r.severity)}")
        for k, v in sorted(r.labels.items()):
            lines.append(f"          {k}: {_q(v)}")
        lines.append("        annotations:")
        lines.append(f"          summary: {_q(r.summary)}")
        lines.append(f"          description: {_q(r.description)}")
    return "\n".join(lines) + "\n"
