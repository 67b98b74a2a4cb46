"""Bounded readers: a bomb in every compressed format (gzip pprof, gzipped .perfkit),
deeply nested JSON (speedscope, Chrome trace, .perfkit), an over-long text line and a
memray capture holding more than it should fail with exit 2 and one line, in memory
bounded by the documented limit (measured as the child's peak RSS through wait4);
the limits are adjustable by environment variable."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import PY, ROOT, SCENARIOS, one_error, perfkit_cmd
from perfkit.formats import limits, native

FIX = Path(__file__).parent / "fixtures"
GIB = 1 << 30
MIB = 1 << 20
PYTHON_BASE_MB = 200  # perfkit's own RSS reading a small profile is well under this


def perfkit_rss(*args, env: dict | None = None, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI; returns (result, peak RSS of that one process in MiB, from wait4)."""
    import signal
    import tempfile

    e = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    e.update(env or {})
    cmd = perfkit_cmd() + [str(a) for a in args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=e, cwd=ROOT)
        signal.signal(signal.SIGALRM, lambda *_: proc.kill())
        signal.alarm(int(timeout))
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            signal.alarm(0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(), err.read().decode())
    return res, usage.ru_maxrss / 1024


def gzip_zeros(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes (1 GiB → ~1 MB), built in chunks."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * MIB
    parts = [c.compress(chunk) for _ in range(size // MIB)]
    parts.append(c.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip_zeros(GIB)


@pytest.mark.parametrize("name", ["bomb.pb.gz", "bomb.perfkit"])
def test_gzip_bomb_fails_fast_in_bounded_memory(tmp_path, gzip_bomb, name):
    path = tmp_path / name
    path.write_bytes(gzip_bomb)
    assert len(gzip_bomb) < 2 * MIB
    for env, bound_mb in (({}, limits.DEFAULT_MAX_INPUT / MIB), ({"PERFKIT_MAX_INPUT": "64M"}, 64)):
        res, rss = perfkit_rss("convert", path, "-o", tmp_path / "out.collapsed", env=env)
        one_error(res, 2, "larger than perfkit reads", "PERFKIT_MAX_INPUT")
        assert rss < bound_mb + PYTHON_BASE_MB, (env, rss)
        assert not (tmp_path / "out.collapsed").exists()


def test_input_limit_is_adjustable_both_ways(tmp_path):
    src = FIX / "cpu_split_75_25.perfkit"
    raw_size = len(gzip.decompress(src.read_bytes()))
    small = f"{raw_size // 2}"
    res, _ = perfkit_rss("flame", src, "--tree", env={"PERFKIT_MAX_INPUT": small})
    one_error(res, 2, "larger than perfkit reads")
    res, _ = perfkit_rss("flame", src, "--tree", env={"PERFKIT_MAX_INPUT": str(raw_size + 1)})
    assert res.returncode == 0, res.stderr
    res, _ = perfkit_rss("flame", src, "--tree", env={"PERFKIT_MAX_INPUT": "lots"})
    one_error(res, 2, "PERFKIT_MAX_INPUT")
    res, _ = perfkit_rss("flame", src, "--tree", "--max-input", small)  # the flag, for one run
    one_error(res, 2, "larger than perfkit reads")
    res, _ = perfkit_rss("convert", src, "-o", "/dev/null", "--format", "collapsed", "--max-input", "1G",
                         env={"PERFKIT_MAX_INPUT": small})
    assert res.returncode == 0, res.stderr
    res, _ = perfkit_rss("diff", src, src, "--max-input", "0")
    one_error(res, 2, "--max-input")


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("name,doc", [
    ("deep.speedscope.json", lambda d: '{"$schema":"https://www.speedscope.app/file-format-schema.json",'
                                       '"shared":{"frames":' + d + '},"profiles":[]}'),
    ("deep.trace.json", lambda d: '[{"ph":"B","name":"f","pid":1,"tid":1,"ts":0,"args":' + d + '}]'),
    ("deep.perfkit", lambda d: '{"perfkit_profile":2,"frames":' + d + '}'),
])
def test_deeply_nested_json_is_refused_before_parsing(tmp_path, name, doc):
    path = tmp_path / name
    text = doc(deep(1_000_000)).encode()
    path.write_bytes(gzip.compress(text, mtime=0) if name.endswith(".perfkit") else text)
    res, rss = perfkit_rss("convert", path, "-o", tmp_path / "o.collapsed")
    one_error(res, 2, "nests JSON deeper than 64 levels", "PERFKIT_MAX_DEPTH")
    assert rss < 64 + PYTHON_BASE_MB
    ok = tmp_path / f"ok{name}"
    shallow = doc(deep(5)).encode()
    ok.write_bytes(gzip.compress(shallow, mtime=0) if name.endswith(".perfkit") else shallow)
    res, _ = perfkit_rss("convert", ok, "-o", tmp_path / "o.collapsed")
    assert "nests JSON deeper" not in res.stderr  # shallow: past the check (then a shape error, or read)


def test_json_depth_check_counts_levels_exactly():
    for n in (63, 64):
        limits.check_json_depth(deep(n).encode() + b" " * 70_000, "x")
    with pytest.raises(limits.InputTooLarge):
        limits.check_json_depth(deep(65).encode() + b" " * 70_000, "x")
    limits.check_json_depth(b'["' + b"[" * 100_000 + b'"]' + b" " * 10, "x")  # brackets inside strings do not count
    limits.check_json_depth(b'["\\"' + b"[" * 100_000 + b'"]', "x")


def test_overlong_text_line_is_refused(tmp_path):
    path = tmp_path / "long.collapsed"
    path.write_text("main;" + "f;" * 2000 + "leaf 1\n")
    res, _ = perfkit_rss("convert", path, "-o", tmp_path / "o.pb.gz", env={"PERFKIT_MAX_LINE": "1K"})
    one_error(res, 2, "a line longer than 1K", "PERFKIT_MAX_LINE")
    res, _ = perfkit_rss("convert", path, "-o", tmp_path / "o.pb.gz")
    assert res.returncode == 0, res.stderr


@pytest.mark.live  # memray runs a scenario
def test_memray_capture_with_more_records_than_allowed_is_refused(tmp_path):
    cap = tmp_path / "m.bin"
    subprocess.run([PY, "-m", "memray", "run", "-q", "-o", str(cap), str(SCENARIOS / "mem_churn.py"),
                    "--duration", "1"],
                   check=True, timeout=120, capture_output=True)
    res, _ = perfkit_rss("flame", cap, "--tree", env={"PERFKIT_MAX_INPUT": "1K"})
    one_error(res, 2, "more allocation records than", "PERFKIT_MAX_INPUT")
    res, _ = perfkit_rss("flame", cap, "--tree")
    assert res.returncode == 0, res.stderr


@pytest.mark.live  # memray runs a scenario
def test_memray_lz4_bomb_of_zeros_ends_at_once_in_bounded_memory(tmp_path):
    """An LZ4 frame holding a real capture's header and then 256 MiB of zeros: memray
    streams it and stops at the first invalid record, so perfkit reports a damaged
    capture without inflating the rest."""
    raw = tmp_path / "raw.bin"
    subprocess.run([PY, "-m", "memray", "run", "-q", "--no-compress", "-o", str(raw), str(SCENARIOS / "mem_churn.py"),
                    "--duration", "1"], check=True, timeout=120, capture_output=True)
    bomb = tmp_path / "bomb.bin"
    bomb.write_bytes(lz4_frame(raw.read_bytes()[:4096], zero_blocks=64))
    assert bomb.stat().st_size < 2 * MIB
    res, rss = perfkit_rss("flame", bomb, "--tree", "--json")
    assert res.returncode in (0, 2), res.stderr
    assert "Traceback" not in res.stderr
    assert rss < 64 + PYTHON_BASE_MB
    if res.returncode == 0:
        doc = json.loads(res.stdout)
        assert doc["total"] >= 0


# ------------------------------------------------------------------ a tiny LZ4 frame writer
_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def _xxh32_short(data: bytes) -> int:
    """xxHash32 (seed 0) of fewer than 16 bytes: the LZ4 frame header checksum."""
    h = (_P5 + len(data)) & _M
    i = 0
    while i + 4 <= len(data):
        h = (_rotl((h + int.from_bytes(data[i:i + 4], "little") * _P3) & _M, 17) * _P4) & _M
        i += 4
    for b in data[i:]:
        h = (_rotl((h + b * _P5) & _M, 11) * _P1) & _M
    h ^= h >> 15
    h = (h * _P2) & _M
    h ^= h >> 13
    h = (h * _P3) & _M
    return h ^ (h >> 16)


def _zero_block(size: int) -> bytes:
    """An LZ4 block that inflates to ``size`` zeros: one literal, one long offset-1 match, 5 literals."""
    rest = size - 1 - 5 - 4 - 15
    ext = b"\xff" * (rest // 255) + bytes([rest % 255])
    return bytes([(1 << 4) | 15]) + b"\0" + (1).to_bytes(2, "little") + ext + bytes([5 << 4]) + b"\0" * 5


def lz4_frame(prefix: bytes, zero_blocks: int) -> bytes:
    flg, bd = 0x60, 0x70  # version 1, independent blocks; 4 MiB blocks
    out = b"\x04\x22\x4d\x18" + bytes([flg, bd, (_xxh32_short(bytes([flg, bd])) >> 8) & 0xFF])
    out += (len(prefix) | 0x80000000).to_bytes(4, "little") + prefix  # a stored block: the real header
    blk = _zero_block(4 * MIB)
    for _ in range(zero_blocks):
        out += len(blk).to_bytes(4, "little") + blk
    return out + b"\0\0\0\0"


def test_lz4_writer_matches_the_frame_magic_memray_sniffs():
    from perfkit.formats import memray_capture

    frame = lz4_frame(b"memray\0" + b"x" * 64, 1)
    assert memray_capture.sniff(frame)
    assert native.sniff(gzip.compress(b'{"perfkit_profile":2}')) is True
