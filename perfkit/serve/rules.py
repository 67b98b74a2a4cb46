"""Prometheus alerting rules for the metrics of `perfkit serve` (``--print-rules``).

Each rule's summary names the perfkit command to run next on the alerting pid.  The
output is YAML (every string JSON-quoted, which YAML reads as-is) that ``promtool check
rules`` accepts; ``tests/test_serve_prometheus.py`` proves with ``promtool test rules``
that each fires on series that should and stays quiet on series that should not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

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


_LEAK_NEXT = {
    "memory": ("memory", "perfkit leaks --pid {{ $labels.pid }} -d 300 --attribute-memory"),
    "threads": ("threads", "perfkit threads --pid {{ $labels.pid }}"),
    "fds": ("open file descriptors", "perfkit leaks --pid {{ $labels.pid }} -d 120"),
    "sockets": ("sockets", "perfkit leaks --pid {{ $labels.pid }} -d 120"),
    "children": ("child processes", "perfkit leaks --pid {{ $labels.pid }} -d 120"),
}


def rules(leak_for: str = "10m") -> list[Rule]:
    out: list[Rule] = []
    for res, (what, cmd) in _LEAK_NEXT.items():
        out.append(Rule(
            alert=f"Perfkit{res.capitalize()}Leak",
            expr=f'perfkit_leak_detected{{resource="{res}"}} == 1',
            for_=leak_for, severity="warning",
            summary=f"{WHO} leaks {what}; next: {cmd}",
            description=(f"perfkit's leak analysis of its sliding window (Mann-Kendall trend, Theil-Sen slope, "
                         f"rising high-water marks) says {what} leak; perfkit_leak_slope_per_second has the "
                         "rate. Run the command in the summary on the host.")))
    out.append(Rule(
        alert="PerfkitFdExhaustionPredicted",
        expr="predict_linear(perfkit_process_open_fds[1h], 4 * 3600) > perfkit_process_max_fds"
             " and perfkit_process_max_fds > 0",
        for_="15m", severity="warning",
        summary=f"{WHO} will run out of file descriptors within 4 h; next: perfkit leaks --pid {{{{ $labels.pid }}}} "
                f"-d 120",
        description="The linear trend of the last hour of open fds crosses RLIMIT_NOFILE within 4 hours."))
    out.append(Rule(
        alert="PerfkitFdsNearLimit",
        expr="perfkit_process_open_fds / perfkit_process_max_fds > 0.9",
        for_="5m", severity="critical",
        summary=f"{WHO} uses over 90 % of its file descriptors; next: perfkit leaks --pid {{{{ $labels.pid }}}} -d 60",
        description="Open fds are above 90 % of the soft RLIMIT_NOFILE: the next accept() or open() may fail "
                    "with EMFILE."))
    out.append(Rule(
        alert="PerfkitMemoryLimitPredicted",
        expr="predict_linear(perfkit_process_resident_memory_bytes[1h], 4 * 3600) > perfkit_process_memory_limit_bytes",
        for_="15m", severity="warning",
        summary=f"{WHO} will reach its memory limit within 4 h; next: perfkit heap --pid {{{{ $labels.pid }}}} -d 30 "
                f"--leaks",
        description="The linear trend of the last hour of RSS crosses the cgroup memory limit (or MemTotal) within 4 "
                    "hours."))
    out.append(Rule(
        alert="PerfkitCPUThrottled",
        expr="rate(perfkit_cgroup_cpu_throttled_periods_total[5m]) / rate(perfkit_cgroup_cpu_periods_total[5m]) > 0.25",
        for_="15m", severity="warning",
        summary=f"The cgroup of {WHO} is CPU-throttled in over 25 % of periods; next: perfkit affinity show --pid {{{{ "
                f"$labels.pid }}}}",
        description="CFS throttling in over a quarter of the periods: the quota is below what the "
                    "workload uses. perfkit affinity show explains the CPU budget; perfkit cpu shows where it goes."))
    out.append(Rule(
        alert="PerfkitTargetGone",
        expr="max_over_time(perfkit_target_info[10m]) unless perfkit_target_info unless on(job, instance) (up == 0)",
        for_=None, severity="warning",
        summary=f"{WHO} is gone (exited or was killed in the last 10 min); next: perfkit triage",
        description="A process perfkit served has disappeared while perfkit serve is still up: look for an OOM "
                    "kill or a crash (perfkit triage snapshots the host and the remaining processes)."))
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
