"""The central data model: every collector produces a ``Profile``, every analysis and
writer reads one.

* A ``Frame`` is (function, file, line); ``line`` 0 means unknown.
* Stacks are tuples of frame indices, **root first** (outermost call first, leaf last).
  Conversions to leaf-first orders happen only at format edges.
* A profile carries one or more ``ValueType``s (pprof naming: ``samples/count``,
  ``cpu/nanoseconds``, ``alloc_space/bytes``, ``inuse_objects/count`` ...); every
  sample has one value per type.
* Labels (pid, thread id, thread name) are real fields of a ``Labels`` record, never
  fake frames.
* Samples are aggregated: one ``Sample`` per distinct (stack, labels) with summed
  values.  This keeps profiles of 100k unique stacks small and makes writers stream.
* ``recording`` is a typed :class:`Recording`: what was recorded, how, and how well
  (tool, target, start, duration, rates, samples, errors, interrupted, notes; heap
  captures add :class:`HeapFacts`).  Anything a reader brings that has no field lands
  in ``Recording.extra``.  ``series`` holds named time series (e.g. heap/RSS over
  time) as lists of ``[t_seconds, value]``.
* ``timeline`` (optional) keeps *when* each sample was seen, in recording order: a
  compact :class:`Timeline` of (start, duration, sample index) events.  Aggregated
  views never touch it, so they stay as fast as without; timeline writers (time-ordered
  speedscope, Chrome trace) use it when it is there.

Profiles are treated as immutable: transforms return new profiles.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str = ""
    line: int = 0

    def short(self) -> str:
        """``function (file:line)`` with the file's base name, for display."""
        base = self.file.rsplit("/", 1)[-1] if self.file else ""
        if not base:
            return self.function
        return f"{self.function} ({base}:{self.line})" if self.line else f"{self.function} ({base})"

    @property
    def location(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class ValueType:
    type: str
    unit: str

    def __str__(self) -> str:
        return f"{self.type}/{self.unit}"


SAMPLES = ValueType("samples", "count")
CPU_NS = ValueType("cpu", "nanoseconds")
WALL_NS = ValueType("wall", "nanoseconds")
ALLOC_SPACE = ValueType("alloc_space", "bytes")
ALLOC_OBJECTS = ValueType("alloc_objects", "count")
INUSE_SPACE = ValueType("inuse_space", "bytes")
INUSE_OBJECTS = ValueType("inuse_objects", "count")


@dataclass(frozen=True, slots=True)
class Labels:
    pid: int | None = None
    tid: int | None = None
    thread: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in (("pid", self.pid), ("tid", self.tid), ("thread", self.thread)) if v is not None}


NO_LABELS = Labels()


@dataclass(frozen=True, slots=True)
class Sample:
    stack: tuple[int, ...]  # frame indices, root first
    values: tuple[int, ...]  # one per profile value type
    labels: Labels = NO_LABELS


@dataclass
class HeapFacts:
    """What a memray capture says beyond its samples."""

    peak_heap_bytes: int | None = None
    peak_rss_bytes: int | None = None
    start_rss_bytes: int | None = None
    end_rss_bytes: int | None = None
    end_heap_bytes: int | None = None
    totals: dict[str, int] = field(default_factory=dict)  # alloc_bytes, alloc_count, inuse_bytes, inuse_count
    peak_top: list[dict] = field(default_factory=list)  # sites alive at the peak: function, file, line, bytes, count
    capture_complete: bool = True
    records_read: int | None = None
    reader_errors: list[str] = field(default_factory=list)
    memray_total_allocations: int | None = None
    memray_main_thread_id: int | None = None
    memray_command_line: str | None = None
    python_allocator: str | None = None
    native: bool = False
    trace_python_allocators: bool = False
    attach_overhead: dict | None = None  # what memray attach's own threads allocated (removed)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Recording:
    """How a profile was recorded.  Every field is optional: a file from another tool
    knows less than a live recording."""

    kind: str | None = None  # "cpu" | "heap"
    tool: str | None = None  # "py-spy", "memray", or the reader of a foreign file
    tool_version: str | None = None
    perfkit_version: str | None = None
    source: str | None = None  # the file it was read from
    source_format: str | None = None
    name: str | None = None  # a profile name given by another tool (speedscope)
    target: str | None = None  # "pid 4242" or the launched command
    pid: int | None = None
    launched: bool = False  # perfkit started the program (-- CMD)
    attached: bool = False  # perfkit attached to a running pid (--pid)
    cmdline: list[str] = field(default_factory=list)
    python: str | None = None  # "3.11"
    start: float | None = None  # epoch seconds
    duration_s: float | None = None
    requested_rate: float | None = None  # samples per second asked for
    achieved_rate: float | None = None
    period_ns: int | None = None
    period_type: str | None = None
    samples: int | None = None
    sampling_errors: int | None = None
    sampling_lag: str | None = None
    threads: int | None = None
    processes: int | None = None
    interrupted: bool = False
    target_exited: bool = False
    program: dict | None = None  # a launched program's outcome (supervisor.Outcome.to_json)
    exit_code: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # free text from another tool's file
    redacted: bool = False  # secrets were taken out of target/cmdline
    heap: HeapFacts | None = None
    # per-thread CPU seconds from /proc over the sampling window (procs.ticks.TickWatch.to_json)
    thread_cpu: dict | None = None
    # what analysis.idle reclassified as idle (counts by reason, per thread)
    idle_correction: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        doc = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, [], {}, False) or k == "kind"}
        return json_safe(doc)

    @classmethod
    def from_json(cls, doc: Mapping | None) -> "Recording":
        """Known keys become fields (old free-form metadata included); the rest goes to ``extra``."""
        doc = dict(doc or {})
        names = {f.name for f in dataclasses.fields(cls)}
        heap_names = {f.name for f in dataclasses.fields(HeapFacts)}
        heap_doc = doc.pop("heap", None)
        heap_keys = {k: doc.pop(k) for k in list(doc) if k in heap_names and k not in names}
        if isinstance(heap_doc, dict):
            heap_keys.update({k: v for k, v in heap_doc.items() if k in heap_names})
        extra = dict(doc.pop("extra", None) or {})
        kw: dict[str, Any] = {}
        for k, v in doc.items():
            (kw if k in names else extra)[k] = v
        rec = cls(**kw, extra=extra)
        if heap_keys or (doc.get("kind") == "heap"):
            rec.heap = HeapFacts(**heap_keys)
        if isinstance(rec.start, str):  # an ISO date from an older file
            rec.start = _iso_to_epoch(rec.start)
        return rec

    def copy(self, **changes) -> "Recording":
        new = dataclasses.replace(self, **changes)
        new.cmdline, new.notes, new.comments = list(new.cmdline), list(new.notes), list(new.comments)
        new.options, new.extra = dict(new.options), dict(new.extra)
        if new.heap is not None and "heap" not in changes:
            new.heap = dataclasses.replace(new.heap)
        return new


def _iso_to_epoch(text: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def json_safe(obj):
    """Plain JSON types (tuples → lists, NaN/inf → None, unknown → str)."""
    import math

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


class Timeline:
    """When each sample was seen, in recording order: one event per tick (or interval).

    Event ``k`` says: the stack of ``profile.samples[index[k]]`` was seen from
    ``start_ns[k]`` (nanoseconds after ``Recording.start``) for ``dur_ns[k]`` (or the
    profile's period when ``dur_ns`` is None: one sampling tick).  Events are sorted by
    start; events of one thread never overlap.

    ``clock`` says what the start times are:

    * ``"wall"``: real offsets from the recording's start (Chrome traces, austin);
    * ``"ticks"``: the k-th sample of a thread at k x period (py-spy's speedscope output
      keeps each thread's samples in order but not their times; speedscope's own Time
      Order view uses the same clock).  With ``--idle`` every thread is sampled on every
      tick, so this is wall time; without it a thread's idle stretches are skipped.

    The aggregated sample values stay the truth for totals; a timeline only orders them.
    A timeline belongs to one sample list: a profile whose samples were replaced (a
    filter) drops it (see :meth:`Profile.live_timeline`).
    """

    __slots__ = ("start_ns", "dur_ns", "index", "clock", "_owner")

    def __init__(self, start_ns: Iterable[int], index: Iterable[int], dur_ns: Iterable[int] | None = None,
                 clock: str = "wall") -> None:
        from array import array

        self.start_ns = array("q", start_ns)
        self.index = array("q", index)
        self.dur_ns = array("q", dur_ns) if dur_ns is not None else None
        if len(self.index) != len(self.start_ns) or (self.dur_ns is not None and len(self.dur_ns) != len(self.index)):
            raise ValueError("timeline arrays differ in length")
        if clock not in ("wall", "ticks"):
            raise ValueError(f"unknown timeline clock {clock!r}")
        self.clock = clock
        self._owner: list | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __eq__(self, other) -> bool:
        return (isinstance(other, Timeline) and self.clock == other.clock and self.start_ns == other.start_ns
                and self.index == other.index and self.dur_ns == other.dur_ns)

    def __repr__(self) -> str:
        return f"Timeline({len(self)} events, clock={self.clock})"

    def durations(self, period_ns: int | None) -> list[int]:
        """Every event's duration (the period for tick events; 1 ns if nothing is known)."""
        if self.dur_ns is not None:
            return list(self.dur_ns)
        return [int(period_ns or 1)] * len(self.index)

    def covers(self, samples: Sequence[Sample], vi: int) -> bool:
        """Every sample with a value in type ``vi`` has at least one event (writers that lay
        out the timeline instead of the aggregate lose nothing)."""
        seen = set(self.index)
        return all(i in seen for i, s in enumerate(samples) if s.values[vi])

    def check(self, n_samples: int, ordered: bool = False) -> None:
        """Every event names an existing sample; events are in time order (``ordered``: known)."""
        if self.index and (min(self.index) < 0 or max(self.index) >= n_samples):
            raise ValueError("timeline refers to a missing sample")
        if not ordered and any(b < a for a, b in zip(self.start_ns, self.start_ns[1:])):
            raise ValueError("timeline events are not in time order")

    def remap(self, new_index: Sequence[int | None]) -> "Timeline | None":
        """The same events for a new sample list (``new_index[old] -> new``; None drops the event)."""
        keep = [k for k, i in enumerate(self.index) if new_index[i] is not None]
        if not keep:
            return None
        return Timeline([self.start_ns[k] for k in keep], [int(new_index[self.index[k]] or 0) for k in keep],
                        [self.dur_ns[k] for k in keep] if self.dur_ns is not None else None, self.clock)


@dataclass
class Profile:
    frames: list[Frame]
    sample_types: list[ValueType]
    samples: list[Sample]
    recording: Recording = field(default_factory=Recording)
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    # The value type shown by default (index into sample_types).
    default_index: int = 0
    # When each sample was seen (optional; see Timeline).  Read it with live_timeline().
    timeline: Timeline | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.timeline is not None and self.timeline._owner is None:
            self.timeline._owner = self.samples

    def live_timeline(self) -> Timeline | None:
        """The timeline if it still describes ``samples`` (a filter that replaced the sample
        list, e.g. ``dataclasses.replace(p, samples=...)``, leaves it stale: None then)."""
        t = self.timeline
        if t is None or t._owner is not self.samples:
            return None
        return t

    def with_timeline(self, timeline: Timeline | None) -> "Profile":
        """Attach ``timeline`` to this profile's sample list (returns self)."""
        if timeline is not None:
            timeline.check(len(self.samples))
            timeline._owner = self.samples
        self.timeline = timeline
        return self

    # ----- derived facts -------------------------------------------------
    def value_index(self, name: str | None) -> int:
        """Index of a value type by its type name (``None`` → default)."""
        if name is None:
            return self.default_index
        for i, vt in enumerate(self.sample_types):
            if vt.type == name or str(vt) == name:
                return i
        known = ", ".join(vt.type for vt in self.sample_types)
        from perfkit.errors import UsageError

        raise UsageError(f"this profile has no value type {name!r}", f"it has: {known}")

    def total(self, index: int | None = None) -> int:
        i = self.default_index if index is None else index
        return sum(s.values[i] for s in self.samples)

    def stack_frames(self, sample: Sample) -> list[Frame]:
        return [self.frames[i] for i in sample.stack]

    def labels_seen(self) -> set[Labels]:
        return {s.labels for s in self.samples}

    def pids(self) -> set[int]:
        return {s.labels.pid for s in self.samples if s.labels.pid is not None}

    def threads(self) -> set[tuple[int | None, int | None, str | None]]:
        return {(s.labels.pid, s.labels.tid, s.labels.thread) for s in self.samples if s.labels.tid is not None}

    def __len__(self) -> int:
        return len(self.samples)


class ProfileBuilder:
    """Accumulates stacks into an aggregated ``Profile``.

    ``add(frames, values, labels)`` takes root-first ``Frame`` sequences; identical
    frames are interned, identical (stack, labels) merged by summing values.
    """

    def __init__(self, sample_types: Sequence[ValueType], recording: Recording | Mapping | None = None,
                 default_index: int = 0) -> None:
        self.sample_types = list(sample_types)
        if isinstance(recording, Recording):
            self.recording = recording.copy()
        else:  # a plain mapping (tests, old free-form metadata)
            self.recording = Recording.from_json(recording)
        self.series: dict[str, list[list[float]]] = {}
        self.default_index = default_index
        self._frame_index: dict[Frame, int] = {}
        self._frames: list[Frame] = []
        self._acc: dict[tuple[tuple[int, ...], Labels], list[int]] = {}
        self._t_start: list[int] = []
        self._t_dur: list[int] | None = None
        self._t_index: list[int] = []
        self.timeline_clock = "wall"

    def frame_id(self, frame: Frame) -> int:
        idx = self._frame_index.get(frame)
        if idx is None:
            idx = len(self._frames)
            self._frame_index[frame] = idx
            self._frames.append(frame)
        return idx

    def add(self, frames: Iterable[Frame], values: Sequence[int], labels: Labels = NO_LABELS) -> int:
        stack = tuple(self.frame_id(f) for f in frames)
        return self.add_ids(stack, values, labels)

    def add_ids(self, stack: tuple[int, ...], values: Sequence[int], labels: Labels = NO_LABELS) -> int:
        """Add values to the (stack, labels) sample; returns that sample's index in the built profile."""
        if len(values) != len(self.sample_types):
            raise ValueError(f"expected {len(self.sample_types)} values, got {len(values)}")
        key = (stack, labels)
        acc = self._acc.get(key)
        if acc is None:  # the sample's index rides at the end of its accumulator
            idx = len(self._acc)
            self._acc[key] = [*values, idx]
            return idx
        for i, v in enumerate(values):
            acc[i] += v
        return acc[-1]

    def seen(self, index: int, start_ns: int, dur_ns: int | None = None) -> None:
        """A timeline event: sample ``index`` (from ``add``) was seen at ``start_ns`` for ``dur_ns``
        (None: one tick of the period).  Events may come in any order; ``build`` sorts them."""
        if dur_ns is not None and self._t_dur is None:
            self._t_dur = [-1] * len(self._t_index)  # earlier tick events: the period, at build
        self._t_start.append(int(start_ns))
        self._t_index.append(index)
        if self._t_dur is not None:
            self._t_dur.append(-1 if dur_ns is None else int(dur_ns))

    def seen_many(self, indices: Sequence[int], starts: Sequence[int], durs: Sequence[int | None]) -> None:
        """Many timeline events at once (``seen`` for each, without a call per event)."""
        if self._t_dur is None and any(d is not None for d in durs):
            self._t_dur = [-1] * len(self._t_index)
        self._t_index.extend(indices)
        self._t_start.extend(starts)
        if self._t_dur is not None:
            self._t_dur.extend(-1 if d is None else d for d in durs)

    def build(self) -> Profile:
        samples = [Sample(stack, tuple(vals[:-1]), labels) for (stack, labels), vals in self._acc.items()]
        prof = Profile(frames=list(self._frames), sample_types=list(self.sample_types), samples=samples,
                       recording=self.recording.copy(), series=dict(self.series), default_index=self.default_index)
        if self._t_index:
            order = sorted(range(len(self._t_index)), key=self._t_start.__getitem__)
            dur = None
            if self._t_dur is not None:
                period = int(self.recording.period_ns or 1)
                dur = [self._t_dur[k] if self._t_dur[k] >= 0 else period for k in order]
            timeline = Timeline([self._t_start[k] for k in order], [self._t_index[k] for k in order], dur,
                                self.timeline_clock)
            timeline.check(len(samples), ordered=True)
            timeline._owner = samples
            prof.timeline = timeline
        return prof


def rebuild(profile: Profile, samples: Iterable[tuple[Sequence[Frame], Sequence[int], Labels]],
            recording: Recording | None = None) -> Profile:
    """A new profile with the same value types from (frames, values, labels) triples."""
    b = ProfileBuilder(profile.sample_types, recording if recording is not None else profile.recording,
                       profile.default_index)
    b.series = dict(profile.series)
    for frames, values, labels in samples:
        b.add(frames, values, labels)
    return b.build()


def iter_stacks(profile: Profile) -> Iterator[tuple[list[Frame], Sample]]:
    for s in profile.samples:
        yield [profile.frames[i] for i in s.stack], s
