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
* ``metadata`` is a JSON-able dict (target, cmdline, python, start, duration, rates,
  errors, tool versions ...); ``series`` holds named time series (e.g. heap/RSS over
  time) as lists of ``[t_seconds, value]``.

Profiles are treated as immutable: transforms return new profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence


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
class Profile:
    frames: list[Frame]
    sample_types: list[ValueType]
    samples: list[Sample]
    metadata: dict = field(default_factory=dict)
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    # The value type shown by default (index into sample_types).
    default_index: int = 0

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

    def __init__(self, sample_types: Sequence[ValueType], metadata: Mapping | None = None,
                 default_index: int = 0) -> None:
        self.sample_types = list(sample_types)
        self.metadata = dict(metadata or {})
        self.series: dict[str, list[list[float]]] = {}
        self.default_index = default_index
        self._frame_index: dict[Frame, int] = {}
        self._frames: list[Frame] = []
        self._acc: dict[tuple[tuple[int, ...], Labels], list[int]] = {}

    def frame_id(self, frame: Frame) -> int:
        idx = self._frame_index.get(frame)
        if idx is None:
            idx = len(self._frames)
            self._frame_index[frame] = idx
            self._frames.append(frame)
        return idx

    def add(self, frames: Iterable[Frame], values: Sequence[int], labels: Labels = NO_LABELS) -> None:
        stack = tuple(self.frame_id(f) for f in frames)
        self.add_ids(stack, values, labels)

    def add_ids(self, stack: tuple[int, ...], values: Sequence[int], labels: Labels = NO_LABELS) -> None:
        if len(values) != len(self.sample_types):
            raise ValueError(f"expected {len(self.sample_types)} values, got {len(values)}")
        key = (stack, labels)
        acc = self._acc.get(key)
        if acc is None:
            self._acc[key] = list(values)
        else:
            for i, v in enumerate(values):
                acc[i] += v

    def build(self) -> Profile:
        samples = [Sample(stack, tuple(vals), labels) for (stack, labels), vals in self._acc.items()]
        return Profile(frames=list(self._frames), sample_types=list(self.sample_types), samples=samples,
                       metadata=dict(self.metadata), series=dict(self.series), default_index=self.default_index)


def rebuild(profile: Profile, samples: Iterable[tuple[Sequence[Frame], Sequence[int], Labels]],
            metadata: Mapping | None = None) -> Profile:
    """A new profile with the same value types from (frames, values, labels) triples."""
    b = ProfileBuilder(profile.sample_types, metadata if metadata is not None else profile.metadata,
                       profile.default_index)
    b.series = dict(profile.series)
    for frames, values, labels in samples:
        b.add(frames, values, labels)
    return b.build()


def iter_stacks(profile: Profile) -> Iterator[tuple[list[Frame], Sample]]:
    for s in profile.samples:
        yield [profile.frames[i] for i in s.stack], s
