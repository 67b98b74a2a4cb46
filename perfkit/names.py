"""How a thread and a process are named: one style in every table, report and JSON.

A thread is shown by its Python name (``threading`` name, as py-spy reports it); its OS
name (``/proc/PID/task/TID/comm``, what ``top -H`` shows) is added when it says
something more: when it differs from the Python name and is not just the name every
thread inherits from the process (``python3``).  Without a Python name the OS name is
used, then ``thread TID``.  Wherever several processes appear, the pid is shown too.
"""

from __future__ import annotations


def thread_label(python_name: str | None, os_name: str | None = None, *, tid: int | None = None,
                 process_name: str | None = None, pid: int | None = None) -> str:
    name = (python_name or "").strip()
    os_name = (os_name or "").strip()
    if not name:
        name = os_name or (f"thread {tid}" if tid else "?")
        os_name = ""
    if os_name and os_name != name and os_name != (process_name or "") and not name.startswith(os_name):
        name = f"{name} (os: {os_name})"
    return f"{name} · pid {pid}" if pid is not None else name

