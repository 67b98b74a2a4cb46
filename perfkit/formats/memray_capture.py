"""memray capture files (``memray run -o`` / ``memray attach -o``, ``.bin``): the reader.

A capture is read through memray's Python API (``memray.FileReader``) into a heap
``Profile`` with four value types in pprof's naming: alloc_space / alloc_objects
(everything allocated while tracking) and inuse_space / inuse_objects (still alive when
tracking stopped).  memray's memory-over-time records become ``profile.series`` (heap
and RSS, ``[[t_seconds_since_start, bytes], ...]``, at most MAX_SERIES_POINTS, peaks
kept).  Metadata: kind="heap", tool="memray", tool_version, source, pid, start,
duration_s, peak_heap_bytes, peak_rss_bytes, start/end_rss_bytes, end_heap_bytes,
totals {alloc_bytes, alloc_count, inuse_bytes, inuse_count}, peak_top (sites alive at
the peak), capture_complete, records_read, threads.

This is a format like any other: ``flame``, ``convert``, ``diff`` and ``heap --from``
read captures through the registry (:func:`read_path`; content sniffed by
:func:`sniff`).  memray launcher frames (``memray run`` → runpy) are stripped from
stack roots.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import sys
import tempfile
from pathlib import Path

from perfkit import paths, redact
from perfkit.errors import InputFormatError, ToolMissing, UsageError
from perfkit.model import (
    ALLOC_OBJECTS,
    ALLOC_SPACE,
    INUSE_OBJECTS,
    INUSE_SPACE,
    Frame,
    HeapFacts,
    Labels,
    Profile,
    ProfileBuilder,
    Recording,
)

NAME = "memray"
SAMPLE_TYPES = [ALLOC_SPACE, ALLOC_OBJECTS, INUSE_SPACE, INUSE_OBJECTS]
INSTALL_HINT = "install it with: pip install memray"
NO_STACK = Frame("[no Python frame]")
MAX_SERIES_POINTS = 4000
_DEALLOCATORS = {1, 5, 15}  # PYMALLOC_FREE, FREE, MUNMAP (memray.AllocatorType)
_MEMRAY_PKG = "/memray/"
_RUNPY_FILES = ("<frozen runpy>", "/runpy.py")
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def sniff(data: bytes) -> bool:
    """An uncompressed capture starts with ``memray\\0``; a compressed one is an LZ4 frame holding it."""
    return data.startswith(b"memray\0") or (data.startswith(_LZ4_MAGIC) and b"memray" in data[:64])


def read_path(path: str | os.PathLike, source: str) -> Profile:
    return read_capture(path, source=source)


def read(data: bytes, source: str) -> Profile:
    """From bytes (memray reads files only: through a private temporary copy)."""
    fd, tmp = tempfile.mkstemp(prefix="perfkit-capture-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return read_capture(tmp, source=source)
    finally:
        os.unlink(tmp)


def _memray():
    try:
        import memray
    except ImportError:
        raise ToolMissing("memray is not installed in perfkit's environment", INSTALL_HINT) from None
    return memray


def memray_version() -> str:
    try:
        from memray._version import __version__

        return __version__
    except Exception:  # pragma: no cover - depends on the install
        return "unknown"


def strip_launcher(frames: list[Frame]) -> list[Frame]:
    """Drop memray's own launcher frames (``memray run`` → runpy) from the root of a stack.

    A launched program's stacks start in memray/commands/run.py and runpy; they are
    perfkit's plumbing, not the user's code, and would sit under every flame graph.
    """
    i = 0
    while i < len(frames) and _MEMRAY_PKG in frames[i].file:
        i += 1
    if i == 0:
        return frames
    while i < len(frames) and frames[i].file.endswith(_RUNPY_FILES):
        i += 1
    return frames[i:]


def read_capture(path: str | os.PathLike, *, source: str | None = None, peak_sites: int = 40) -> Profile:
    """A memray capture file as a heap ``Profile`` (raises InputFormatError if unreadable)."""
    memray = _memray()
    src = source or str(path)
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such file: {p}")
    if p.is_dir():
        raise UsageError(f"{p} is a directory, not a memray capture")
    with _MemrayLog(memray) as log:  # memray's C++ logger reports unreadable records on fd 2
        try:
            reader = memray.FileReader(str(p))
        except (OSError, ValueError, RuntimeError) as exc:
            if "incompatible with this version of memray" in str(exc):
                raise InputFormatError(f"{src} was written by another memray version than perfkit's "
                                       f"({memray_version()})",
                                       f"a capture is readable only by the memray version that wrote it: use memray "
                                       f"{memray_version()} in the target's interpreter") from None
            raise InputFormatError(f"{src} is not a readable memray capture ({_first_line(exc)})",
                                   "expected a file written by memray run / memray attach (-o FILE.bin)") from None
        try:
            with reader:
                profile = _read(reader, src, peak_sites)
        except InputFormatError:
            raise
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            raise InputFormatError(f"{src} is corrupt or truncated ({_first_line(exc)})") from None
    if log.errors:
        heap = profile.recording.heap
        if heap is not None:
            heap.capture_complete = False
            heap.reader_errors = log.errors[:5]
    return profile


class _MemrayLog:
    """Collects what memray's native logger writes to fd 2 while a capture is read."""

    def __init__(self, memray) -> None:
        self.memray = memray
        self.errors: list[str] = []
        self._saved = -1
        self._tmp = None

    def __enter__(self):
        try:
            sys.stderr.flush()
            self._tmp = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._tmp.fileno(), 2)
            self.memray.set_log_level(40)
        except OSError:
            self._restore()
            self.memray.set_log_level(100)
        return self

    def _restore(self) -> None:
        if self._saved >= 0:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = -1

    def __exit__(self, *exc) -> None:
        self.memray.set_log_level(100)
        self._restore()
        if self._tmp is not None:
            self._tmp.seek(0)
            text = self._tmp.read(65536).decode("utf-8", "replace")
            self._tmp.close()
            self.errors = [ln.strip() for ln in text.splitlines() if "memray" in ln.lower() and ln.strip()]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _read(reader, src: str, peak_sites: int) -> Profile:
    meta = reader.metadata
    native = bool(meta.has_native_traces)
    pid = int(meta.pid) if meta.pid else None
    b = ProfileBuilder(SAMPLE_TYPES)
    labels_cache: dict[tuple[int, str], Labels] = {}
    stack_cache: dict[tuple, tuple[int, ...]] = {}

    def labels_of(rec) -> Labels:
        key = (rec.tid, rec.thread_name)
        lab = labels_cache.get(key)
        if lab is None:
            lab = labels_cache[key] = Labels(pid, int(rec.tid), rec.thread_name or None)
        return lab

    def stack_of(rec) -> tuple[int, ...]:
        key = (rec.stack_id, rec.native_stack_id, rec.native_segment_generation) if native else rec.stack_id
        ids = stack_cache.get(key)
        if ids is None:
            raw = rec.hybrid_stack_trace() if native else rec.stack_trace()
            frames = strip_launcher([Frame(str(fn), str(fl), int(ln or 0)) for fn, fl, ln in reversed(raw)])
            ids = stack_cache[key] = tuple(b.frame_id(f) for f in frames or [NO_STACK])
        return ids

    # Everything allocated while tracking, aggregated per (stack, thread).
    acc, records = _allocated(reader, native, record_cap(meta), src)
    alloc_bytes = alloc_count = 0
    for size, n, rec in acc.values():
        b.add_ids(stack_of(rec), (size, n, 0, 0), labels_of(rec))
        alloc_bytes += size
        alloc_count += n
    del acc

    # Still alive when tracking stopped.
    inuse_bytes = inuse_count = 0
    for rec in reader.get_leaked_allocation_records(merge_threads=False):
        b.add_ids(stack_of(rec), (0, 0, rec.size, rec.n_allocations), labels_of(rec))
        inuse_bytes += rec.size
        inuse_count += rec.n_allocations

    # What was alive at the high-water mark.
    # What was alive at the high-water mark, per (leaf line, innermost line of the user's code).
    peak_acc: dict[tuple, list] = {}
    for rec in reader.get_high_watermark_allocation_records(merge_threads=True):
        raw = rec.hybrid_stack_trace() if native else rec.stack_trace()
        leaf = raw[0] if raw else (NO_STACK.function, "", 0)
        user = next((f for f in raw if paths.is_user(str(f[1]), str(f[0]))), None)
        k = (str(leaf[0]), str(leaf[1]), int(leaf[2] or 0),
             *((str(user[0]), str(user[1]), int(user[2] or 0)) if user else ("", "", 0)))
        slot = peak_acc.setdefault(k, [0, 0, False])
        slot[0] += rec.size
        slot[1] += rec.n_allocations
        slot[2] = slot[2] or any(paths.is_import_machinery(str(f[1]), str(f[0])) for f in raw)
    peak_top = sorted(peak_acc.items(), key=lambda kv: (-kv[1][0], kv[0]))[:peak_sites]

    start = meta.start_time.timestamp()
    end = meta.end_time.timestamp()
    snaps = list(reader.get_memory_snapshots())
    heap_series = _downsample([[round(s.time / 1000.0 - start, 3), int(s.heap)] for s in snaps])
    rss_series = _downsample([[round(s.time / 1000.0 - start, 3), int(s.rss)] for s in snaps])
    b.series = {"heap_bytes": heap_series, "rss_bytes": rss_series}
    profile = b.build()
    finished = _finished(meta, snaps)
    command_line, redacted = redact.text(meta.command_line)
    heap = HeapFacts(
        capture_complete=finished and records >= int(meta.total_allocations),
        records_read=records,
        peak_heap_bytes=int(meta.peak_memory),
        peak_rss_bytes=max((int(s.rss) for s in snaps), default=None),
        end_heap_bytes=int(snaps[-1].heap) if snaps else None,
        end_rss_bytes=int(snaps[-1].rss) if snaps else None,
        start_rss_bytes=int(snaps[0].rss) if snaps else None,
        totals={"alloc_bytes": alloc_bytes, "alloc_count": alloc_count,
                "inuse_bytes": inuse_bytes, "inuse_count": inuse_count},
        memray_total_allocations=int(meta.total_allocations),
        memray_main_thread_id=int(meta.main_thread_id),
        memray_command_line=command_line,
        python_allocator=str(meta.python_allocator),
        native=native,
        trace_python_allocators=bool(meta.trace_python_allocators),
        peak_top=[{"function": f, "file": fl, "line": ln, "bytes": v[0], "count": v[1], "user_function": uf,
                   "user_file": ufl, "user_line": uln, "import": v[2]}
                  for (f, fl, ln, uf, ufl, uln), v in peak_top],
    )
    duration = end - start if finished else ((snaps[-1].time / 1000.0 - start) if snaps else 0.0)
    profile.recording = Recording(kind="heap", tool="memray", tool_version=memray_version(),
                                  perfkit_version=_perfkit_version(), source=src, source_format=NAME, pid=pid,
                                  start=start, duration_s=round(max(0.0, duration), 3),
                                  threads=len({lab.tid for lab in labels_cache.values()}), heap=heap,
                                  redacted=redacted)
    return profile


def _allocated(reader, native: bool, cap: int, src: str) -> tuple[dict[tuple, list], int]:
    """Every allocation record summed per (stack, thread): ``{key: [bytes, count, first record]}``.

    memray has no aggregated reader for *everything allocated* (its aggregators give what
    is alive at the peak or at the end, and its temporal records skip what is freed
    within one snapshot), so this is the one pass over every record: the loop is kept
    to the fewest Python operations per record (it is most of ``heap --from``'s time).
    """
    acc: dict[tuple, list] = {}
    get = acc.get
    dealloc = _DEALLOCATORS
    records = 0
    # islice bounds the pass (one record past the cap says "too many"), enumerate counts
    # and one attrgetter call reads the key, all in C: native and Python-only captures
    # share the loop without a branch of perfkit's own per record
    key_of = operator.attrgetter(*(("stack_id", "native_stack_id", "native_segment_generation", "tid") if native
                                   else ("stack_id", "tid")))
    for records, rec in enumerate(itertools.islice(reader.get_allocation_records(), cap + 1), 1):  # noqa: B007
        if rec.allocator in dealloc:
            continue
        key = key_of(rec)
        slot = get(key)
        if slot is None:
            acc[key] = [rec.size, rec.n_allocations, rec]
        else:
            slot[0] += rec.size
            slot[1] += rec.n_allocations
    if records > cap:
        raise too_many_records(src, cap)
    return acc, records


def record_cap(meta) -> int:
    """Records perfkit reads from one capture before calling it a bomb.

    memray streams records from the (LZ4) file, so memory stays bounded by the distinct
    stacks; time grows with the record count.  A finished capture states its count in
    its header (every record, frees included): a file with more than twice that is
    forged or damaged.  An unfinished one is bounded through the input limit.
    """
    from perfkit.formats import limits

    total = int(getattr(meta, "total_allocations", 0) or 0)
    by_size = max(1, limits.current().max_input // 8)
    return min(by_size, total * 2 + 100_000) if total > 0 else by_size


def too_many_records(src: str, cap: int):
    from perfkit.formats.limits import ENV, InputTooLarge

    return InputTooLarge(f"{src} holds more allocation records than its header allows (over {cap:,}): "
                         "damaged or forged", f"if it is genuine, raise {ENV['max_input']}")


def _downsample(points: list[list[float]]) -> list[list[float]]:
    """At most MAX_SERIES_POINTS points, keeping each bucket's maximum (peaks survive)."""
    if len(points) <= MAX_SERIES_POINTS:
        return points
    step = math.ceil(len(points) / MAX_SERIES_POINTS)
    return [max(points[i:i + step], key=lambda p: p[1]) for i in range(0, len(points), step)]


def capture_complete(path: str) -> bool:
    """True once the tracker in the target has stopped and finished the file's header."""
    try:
        if os.path.getsize(path) == 0:
            return False
        memray = _memray()
        memray.set_log_level(100)  # a file still being written may end mid-record
        with memray.FileReader(path) as r:
            return _finished(r.metadata, list(r.get_memory_snapshots()))
    except Exception:
        return False


def _finished(meta, snaps) -> bool:
    """The tracker stopped and wrote its final header: the end time covers every snapshot.

    (An unfinished file's header carries an end time within a millisecond or so of its
    start, while its memory snapshots run on.)
    """
    start, end = meta.start_time.timestamp(), meta.end_time.timestamp()
    if end <= start:
        return False
    return not snaps or end >= snaps[-1].time / 1000.0 - 0.1


def incomplete_note(heap: HeapFacts | None) -> str:
    total = (heap.memray_total_allocations if heap else 0) or 0
    read = (heap.records_read if heap else 0) or 0
    if total > read:
        return f"the capture file is incomplete (truncated: {read:,} of {total:,} records); totals cover what was read"
    return "the capture file is incomplete (the tracker did not finish it); totals cover what was written"


def _perfkit_version() -> str:
    from perfkit import __version__

    return __version__
