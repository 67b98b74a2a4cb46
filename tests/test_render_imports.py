"""The collapsed → SVG / HTML / call-tree path imports nothing heavy (no numpy): its
import would cost more than the whole render of a small profile."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from perfkit.formats import read_profile
from perfkit.render import flamegraph_svg, html_report
from perfkit.render.tree import CallTree
p = read_profile(sys.argv[1])
flamegraph_svg.write(p); html_report.write(p); CallTree.of(p).to_json()
print(sorted(m for m in ("numpy", "scipy", "pandas") if m in sys.modules))
"""


def test_flame_path_imports_no_numpy(tmp_path):
    src = tmp_path / "p.collapsed"
    src.write_text("main (app.py:1);work (app.py:5) 3\n"
                   "main (app.py:1);loads (/usr/lib/python3.11/json/__init__.py:9) 1\n")
    out = subprocess.run([sys.executable, "-c", CODE, str(src)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
