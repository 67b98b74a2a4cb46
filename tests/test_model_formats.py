"""The model, the top-N analysis, transforms and the basic formats, on small fixed profiles."""

from __future__ import annotations

import gzip
import json

import pytest

from perfkit.analysis import transforms
from perfkit.analysis.top import by_thread, top
from perfkit.errors import InputFormatError, UsageError
from perfkit.formats import collapsed, native, read_profile, speedscope, write_profile
from perfkit.model import CPU_NS, SAMPLES, Frame, Labels, ProfileBuilder

MAIN = Frame("main", "/app/main.py", 10)
A = Frame("a", "/app/main.py", 20)
B = Frame("b", "/app/lib.py", 5)
REC = Frame("rec", "/app/lib.py", 30)


def sample_profile():
    b = ProfileBuilder([SAMPLES, CPU_NS], {"kind": "cpu", "period_ns": 10_000_000}, default_index=1)
    t1 = Labels(pid=7, tid=70, thread="MainThread")
    t2 = Labels(pid=7, tid=71, thread="worker <1>")
    b.add([MAIN, A], (60, 600), t1)
    b.add([MAIN, A, B], (20, 200), t1)
    b.add([MAIN, REC, REC, REC], (15, 150), t2)
    b.add([MAIN], (5, 50), t2)
    b.add([MAIN, A], (0, 0), t2)  # zero-weight stacks are harmless
    return b.build()


def test_builder_merges_identical_stacks_and_labels():
    b = ProfileBuilder([SAMPLES])
    b.add([MAIN, A], (1,), Labels(1, 2, "t"))
    b.add([MAIN, A], (2,), Labels(1, 2, "t"))
    b.add([MAIN, A], (4,), Labels(1, 3, "u"))
    p = b.build()
    assert len(p.samples) == 2 and p.total() == 7 and len(p.frames) == 2


def test_top_self_total_and_recursion_counted_once():
    p = sample_profile()
    rows = {r.function: r for r in top(p)}
    assert rows["a"].self_value == 600 and rows["a"].total_value == 800
    assert rows["b"].self_pct == pytest.approx(20.0)
    assert rows["rec"].total_value == 150  # recursion not triple-counted
    assert rows["main"].total_pct == pytest.approx(100.0) and rows["main"].self_value == 50
    assert [r.function for r in top(p, limit=2)] == ["a", "b"]
    by_line = top(p, by_line=True)
    assert {(r.function, r.line) for r in by_line} >= {("a", 20), ("b", 5)}


def test_by_thread_shares():
    rows = by_thread(sample_profile())
    shares = {r.thread: r.pct for r in rows}
    assert shares == {"MainThread": pytest.approx(80.0), "worker <1>": pytest.approx(20.0)}


def test_transforms_are_pure():
    p = sample_profile()
    f = transforms.focus(p, r"^b ")
    assert f.total() == 200 and p.total() == 1000
    assert transforms.ignore(p, "lib.py").total() == 650
    assert transforms.only_threads(p, "worker").total() == 200
    assert transforms.only_threads(p, "70").total() == 800
    assert transforms.only_pids(p, {8}).total() == 0
    assert transforms.drop_labels(p).labels_seen() == {Labels()}
    with pytest.raises(UsageError):
        transforms.focus(p, "(")


def test_native_roundtrip_is_lossless(tmp_path):
    p = sample_profile()
    p.series["rss_bytes"] = [[0.0, 1.0], [1.0, 2.0]]
    path = tmp_path / "x.perfkit"
    write_profile(p, path)
    assert (path.stat().st_mode & 0o777) == 0o600
    q = read_profile(path)
    assert q.frames == p.frames and q.sample_types == p.sample_types and q.default_index == 1
    assert sorted(q.samples, key=repr) == sorted(p.samples, key=repr)
    assert q.recording == p.recording and q.series == p.series
    assert native.write(p) == native.write(q), "deterministic bytes"


def test_collapsed_roundtrip_and_escaping():
    b = ProfileBuilder([SAMPLES])
    nasty = Frame("f;g\nh\\i (weird)", "/x y/ä.py", 3)
    b.add([MAIN, nasty], (3,))
    b.add([MAIN, Frame("plain")], (2,))
    p = b.build()
    text = collapsed.write(p)
    assert text.count(b"\n") == 2, "one line per stack even with newlines in names"
    q = collapsed.read(text)
    stacks = {tuple(q.frames[i] for i in s.stack): s.values[0] for s in q.samples}
    assert stacks == {(MAIN, nasty): 3, (MAIN, Frame("plain")): 2}


def test_collapsed_defaults_to_sample_counts():
    text = collapsed.write(sample_profile()).decode()
    assert "main (/app/main.py:10);a (/app/main.py:20) 60" in text.splitlines()


def test_collapsed_reads_other_tools_output():
    q = collapsed.read(b"main;foo;bar 10\nmain;foo 5\n\n")
    assert q.total() == 15 and {f.function for f in q.frames} == {"main", "foo", "bar"}


def test_speedscope_roundtrip_keeps_labels(speedscope_schema):
    import jsonschema

    p = sample_profile()
    doc = json.loads(speedscope.write(p))
    jsonschema.validate(doc, speedscope_schema)
    assert doc["activeProfileIndex"] == 0
    q = speedscope.read(speedscope.write(p))
    assert q.total() == p.total(1)
    assert {l.thread for l in q.labels_seen()} == {"MainThread", "worker <1>"}
    assert {l.tid for l in q.labels_seen()} == {70, 71}


@pytest.mark.parametrize("data,needle", [
    (b"", "empty"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt or truncated"),  # named .perfkit: read as one
    (b"{\"perfkit_profile\": 1, \"frames\": [[\"a\"", "corrupt or truncated"),
    (b"\x00\x01\x02binary", "corrupt or truncated"),
])
def test_corrupt_inputs_are_clear_errors(tmp_path, data, needle):
    path = tmp_path / "bad.perfkit"
    path.write_bytes(data)
    with pytest.raises(InputFormatError) as exc:
        read_profile(path)
    assert needle in exc.value.message and str(path) in exc.value.message


def test_unrecognised_content_without_known_suffix(tmp_path):
    path = tmp_path / "mystery.bin"
    path.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputFormatError) as exc:
        read_profile(path)
    assert "not a profile perfkit can read" in exc.value.message and "pprof" in exc.value.hint


def test_truncated_native_file(tmp_path):
    good = native.write(sample_profile())
    with pytest.raises(InputFormatError) as exc:
        native.read(good[: len(good) // 2], "half.perfkit")
    assert "corrupt or truncated" in exc.value.message


def test_native_rejects_dangling_frame_index():
    doc = json.loads(gzip.decompress(native.write(sample_profile())))
    doc["samples"][0][0] = [999]
    with pytest.raises(InputFormatError):
        native.read(json.dumps(doc).encode(), "bad.perfkit")


def test_speedscope_damaged():
    with pytest.raises(InputFormatError):
        speedscope.read(b'{"$schema": "https://www.speedscope.app/file-format-schema.json", "shared": {"frames": []},'
                        b' "profiles": [{"type": "sampled", "samples": [[5]], "weights": [1]}]}', "x.json")


def test_missing_file_is_usage_error(tmp_path):
    with pytest.raises(UsageError):
        read_profile(tmp_path / "nope.perfkit")


def test_writing_to_dev_null_leaves_the_device_alone():
    """-o /dev/null must write through, never rename a 0600 file over the device."""
    import os
    import stat

    from perfkit.fileio import atomic_write, check_writable

    before = os.stat("/dev/null")
    check_writable("/dev/null")
    atomic_write("/dev/null", b"x")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode)


def test_private_mkdir_never_tightens_an_existing_directory(tmp_path):
    import os
    import stat

    from perfkit.fileio import private_mkdir

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    private_mkdir(shared)
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    new = private_mkdir(shared / "a" / "b")
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o700


def test_collapsed_frames_whose_parentheses_would_read_back_another_way_are_escaped():
    # found by test_pprof's round trip: file "0 (" wrote "0 (0 (:0)", which read back as
    # function "0 (0" in no file; a file-less name shaped like a frame read back with a file
    from perfkit.formats.collapsed import frame_text, parse_frame

    cases = [Frame("0", "0 (", 0), Frame("a (b:1)", "", 0), Frame("f", "a) (b", 3), Frame("x (y", "z)", 4),
             Frame("f", "\\\\(", 1), Frame("f", "a\\(", 2)]
    for frame in cases:
        assert parse_frame(frame_text(frame)) == frame, frame
    # nothing is escaped where the text is unambiguous: names stay readable to other tools
    assert frame_text(Frame("g", "C:\\dir (x86)\\a.py", 5)) == "g (C:\\dir (x86)\\a.py:5)"
    assert frame_text(Frame("thread (123)", "", 0)) == "thread (123)"
    assert frame_text(Frame("0", "0 (", 0)) == "0 (0 \\x28:0)"
