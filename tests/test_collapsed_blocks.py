"""The collapsed reader decodes block by block: block edges change nothing.

Known answers: the same Profile whatever the block size; errors name the file's own
line number, also in a later block; the line limit holds inside a block.
"""

from __future__ import annotations

import pytest

from perfkit.errors import InputFormatError
from perfkit.formats import collapsed, limits

TEXT = "".join(f"main (app.py:1);f{i % 7} (app.py:{i % 7 + 2});g{i % 3} (lib/é.py:9) {i + 1}\n" for i in range(200))
TEXT += "# comment\n\n 4\n[pid=7 tid=8 thread=\"Main\"];main (app.py:1) 5\nthread (0x1f): w;main (app.py:1) 6\r\n"


@pytest.mark.parametrize("block", [16, 64, 1000, 1 << 20])
def test_block_size_changes_nothing(monkeypatch, block):
    whole = collapsed.read(TEXT.encode())
    monkeypatch.setattr(collapsed, "_CHUNK", block)
    assert collapsed.read(TEXT.encode()) == whole
    assert sum(s.values[0] for s in whole.samples) == sum(range(1, 201)) + 4 + 5 + 6
    assert len(whole.samples) == 21 + 3  # 7 x 3 distinct stacks, the bare count, two labelled


@pytest.mark.parametrize("block", [16, 1 << 20])
def test_error_names_the_files_line(monkeypatch, block):
    monkeypatch.setattr(collapsed, "_CHUNK", block)
    data = (TEXT + "no count here\n").encode()
    with pytest.raises(InputFormatError, match=r"<collapsed>:206: not a collapsed-stack line"):
        collapsed.read(data)


def test_line_limit_inside_a_block(monkeypatch):
    monkeypatch.setattr(collapsed, "_CHUNK", 64)
    data = (TEXT + "a;" * 100 + "b 1\n").encode()
    monkeypatch.setenv("PERFKIT_MAX_LINE", "150")
    limits.configure()
    with pytest.raises(limits.InputTooLarge, match=r"<collapsed>:206: a line longer"):
        collapsed.read(data)


@pytest.mark.parametrize("name", ["\\ ", "a\\\t", "\\\\ ", " \\ ", "\\x ", "x\\ y",
                                  "\\;", "a\\;b", "\\\n", "\\\\;", "C:\\path"])
def test_backslash_before_an_escaped_edge_round_trips(name):
    # found by test_pprof's hypothesis round trip: '\\ ' came back as '\\x20', and in CI
    # '\\;' as '\\x3b' (a backslash before what becomes an escape must be doubled too)
    from perfkit.model import Frame

    assert collapsed.parse_frame(collapsed.frame_text(Frame(name))).function == name
