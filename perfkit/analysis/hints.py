"""What to do next: short hints where a person reading a table would ask "and now?".

Each function returns a list of one-line hints (most useful first, at most three) for
one command's result.  The compiled-code hint: when one Python frame holds most of the
self time and its module is compiled (a C extension, Cython or mypyc ``.so`` next to
it) or the frame is not the user's code, the time is most likely spent in native code
that py-spy only shows with ``--native``.
"""

from __future__ import annotations

import glob
import os

from perfkit import paths

DOMINANT_SELF_PCT = 40.0  # one frame holding this much of the self time "dominates"


def compiled_module(file: str) -> str | None:
    """The compiled extension that replaces or accompanies a module's .py file, if any."""
    if not file or not file.endswith(".py"):
        return None
    stem = file[:-3]
    try:
        found = glob.glob(glob.escape(stem) + ".*.so") + glob.glob(glob.escape(stem) + ".so")
        if found:
            return found[0]
        pkg = paths.display(file).split("/", 1)[0] if paths.classify(file) == paths.SITE else ""
        if pkg:
            site = file[: file.rfind("/" + pkg + "/")] if ("/" + pkg + "/") in file else ""
            mypyc = glob.glob(os.path.join(glob.escape(site), "*__mypyc*.so")) if site else []
            if mypyc:
                return mypyc[0]
        if glob.glob(glob.escape(stem) + ".pyx"):
            return stem + ".pyx"
    except OSError:
        return None
    return None


def for_cpu(profile, rows, *, native: bool, idle: bool, by_line: bool) -> list[str]:
    out: list[str] = []
    if rows and not native:
        top = max(rows, key=lambda r: r.self_pct)
        if top.self_pct >= DOMINANT_SELF_PCT:
            so = compiled_module(top.file)
            where = paths.frame_text(top.function, top.file, top.line)
            if so:
                out.append(f"{top.self_pct:.0f}% of the self time is in one frame, {where}, of a compiled module "
                           f"({os.path.basename(so)}): py-spy sees only the Python frame that called into it — "
                           f"rerun with --native to see where the time goes inside")
            elif not paths.is_user(top.file, top.function):
                out.append(f"{top.self_pct:.0f}% of the self time is in one library frame, {where}: if it calls "
                           f"C code (an extension, mypyc or Cython), --native shows where inside")
            elif not by_line:
                out.append(f"{top.self_pct:.0f}% of the self time is in {top.function}: --by-line shows which of "
                           f"its lines")
    corr = (profile.recording.idle_correction or {})
    total = (profile.recording.samples or 0) + int(corr.get("reclassified") or 0)
    if not idle and total and corr.get("blocking_calls", 0) >= 0.25 * total:
        out.append("many samples were of threads waiting in blocking calls: --idle shows where they wait (wall "
                   "time), perfkit threads --pid N what each one waits on")
    if not idle and total and corr.get("by_cpu_ticks", 0) >= 0.25 * total:
        out.append("many samples were of threads py-spy saw as running but the kernel did not give a CPU "
                   "(runnable, waiting for a core): is the machine oversubscribed? perfkit affinity show --pid N "
                   "shows run-queue wait")
    if rows and not any(paths.is_user(r.file, r.function) for r in rows):
        out.append("no row is your code: if your code is an installed package, say so with --user-code 'pkg/*'")
    return out[:3]


def for_heap(summary, *, native: bool, show_imports: bool) -> list[str]:
    out: list[str] = []
    sites = summary.top_alive or summary.top_allocated
    if sites and not native:
        top = sites[0]
        if not top.file.endswith(".py") and top.pct >= DOMINANT_SELF_PCT:
            out.append(f"{top.pct:.0f}% is allocated in native code ({top.function}): --native shows the C "
                       f"stack under your line")
    if sites and not any(s.user_function for s in sites[:3]):
        out.append("no frame of your code on the top stacks: if your code is an installed package, say so "
                   "with --user-code 'pkg/*'")
    hidden = summary.hidden_alive
    if not show_imports and hidden is not None and hidden.pct >= 50:
        out.append(f"{hidden.pct:.0f}% of what is alive was allocated by imports: attach later (--pid) or "
                   f"track longer to see what the program itself keeps")
    return out[:3]
