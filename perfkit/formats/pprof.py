"""pprof: gzipped ``profile.proto`` — the exchange format of go tool pprof, Pyroscope,
Parca and Grafana.

The message classes are built at run time from a descriptor equal to
github.com/google/pprof/proto/profile.proto (field names, numbers, types and labels;
a test compares it with the upstream file shipped by Debian's golang-github-google-
pprof-dev).  protobuf is imported on first use, never at CLI start-up.

Mapping from the model, written the way the ecosystem reads it:

* every ``ValueType`` becomes a ``sample_type``; ``default_sample_type`` is
  ``inuse_space`` for heap profiles (what Go's own heap profiles open on), else the
  profile's default type (``cpu`` for CPU);
* ``period_type``/``period``: ``cpu|wall/nanoseconds`` and the sampling period for CPU
  profiles (also for files converted from speedscope or a trace, so ``-diff_base``
  works across conversions), ``space/bytes`` and 1 for heap profiles (memray sees every
  allocation);
* a ``Frame`` is one ``Location`` (one ``Line``) of a ``Function`` whose ``name`` is the
  Python name and whose ``system_name`` is left empty — pprof demangles a function
  whose system name equals its name, turning ``<module>`` into ``<unknown>`` and
  ``<listcomp>`` into ``listcomp``; stacks are written leaf first;
* one ``Mapping`` (the interpreter or program, ``has_functions`` …) so pprof knows the
  symbols are already there and never asks for a "Main binary";
* labels: ``pid`` and ``thread_id`` numeric, ``thread_name`` a string;
* comments: the target, the tool and perfkit's version (go tool pprof prints them);
* the recording and series travel in one unreferenced string-table entry
  (``perfkit-metadata:{json}``) so perfkit → pprof → perfkit is lossless.

The reader accepts any pprof (gzipped or not; inflated within the input limit):
inlined frames are expanded, address-only locations become ``0x…`` frames, unknown
labels are dropped.
"""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import datetime, timezone

from perfkit.errors import InputFormatError
from perfkit.formats import limits
from perfkit.model import Frame, Labels, Profile, ProfileBuilder, Recording, ValueType

NAME = "pprof"
META_PREFIX = "perfkit-metadata:"
EXPECTED = "a pprof profile (gzipped profile.proto, e.g. .pb.gz)"

_classes = None


def _field(msg, name, number, ftype, label="optional", type_name=None):
    from google.protobuf import descriptor_pb2 as d

    f = msg.field.add()
    f.name, f.number = name, number
    f.type = getattr(d.FieldDescriptorProto, "TYPE_" + ftype.upper())
    f.label = getattr(d.FieldDescriptorProto, "LABEL_" + label.upper())
    if type_name:
        f.type_name = type_name


def _messages():
    """Message classes for profile.proto (``perftools.profiles``), built once."""
    global _classes
    if _classes is not None:
        return _classes
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fd = descriptor_pb2.FileDescriptorProto(name="perfkit_profile.proto", package="perftools.profiles",
                                            syntax="proto3")
    R = "repeated"
    spec = {
        "Profile": [("sample_type", 1, "message", R, ".perftools.profiles.ValueType"),
                    ("sample", 2, "message", R, ".perftools.profiles.Sample"),
                    ("mapping", 3, "message", R, ".perftools.profiles.Mapping"),
                    ("location", 4, "message", R, ".perftools.profiles.Location"),
                    ("function", 5, "message", R, ".perftools.profiles.Function"),
                    ("string_table", 6, "string", R, None),
                    ("drop_frames", 7, "int64", None, None), ("keep_frames", 8, "int64", None, None),
                    ("time_nanos", 9, "int64", None, None), ("duration_nanos", 10, "int64", None, None),
                    ("period_type", 11, "message", None, ".perftools.profiles.ValueType"),
                    ("period", 12, "int64", None, None),
                    ("comment", 13, "int64", R, None),
                    ("default_sample_type", 14, "int64", None, None),
                    ("doc_url", 15, "int64", None, None)],
        "ValueType": [("type", 1, "int64", None, None), ("unit", 2, "int64", None, None)],
        "Sample": [("location_id", 1, "uint64", R, None), ("value", 2, "int64", R, None),
                   ("label", 3, "message", R, ".perftools.profiles.Label")],
        "Label": [("key", 1, "int64", None, None), ("str", 2, "int64", None, None),
                  ("num", 3, "int64", None, None), ("num_unit", 4, "int64", None, None)],
        "Mapping": [("id", 1, "uint64", None, None), ("memory_start", 2, "uint64", None, None),
                    ("memory_limit", 3, "uint64", None, None), ("file_offset", 4, "uint64", None, None),
                    ("filename", 5, "int64", None, None), ("build_id", 6, "int64", None, None),
                    ("has_functions", 7, "bool", None, None), ("has_filenames", 8, "bool", None, None),
                    ("has_line_numbers", 9, "bool", None, None), ("has_inline_frames", 10, "bool", None, None)],
        "Location": [("id", 1, "uint64", None, None), ("mapping_id", 2, "uint64", None, None),
                     ("address", 3, "uint64", None, None),
                     ("line", 4, "message", R, ".perftools.profiles.Line"),
                     ("is_folded", 5, "bool", None, None)],
        "Line": [("function_id", 1, "uint64", None, None), ("line", 2, "int64", None, None),
                 ("column", 3, "int64", None, None)],
        "Function": [("id", 1, "uint64", None, None), ("name", 2, "int64", None, None),
                     ("system_name", 3, "int64", None, None), ("filename", 4, "int64", None, None),
                     ("start_line", 5, "int64", None, None)],
    }
    for mname, fields in spec.items():
        msg = fd.message_type.add(name=mname)
        for name, number, ftype, label, type_name in fields:
            _field(msg, name, number, ftype, label or "optional", type_name)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    _classes = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"perftools.profiles.{name}"))
                for name in spec}
    return _classes


# ----------------------------------------------------------------- writing
class _Strings:
    def __init__(self) -> None:
        self.table = [""]
        self.index = {"": 0}

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.table)
            self.table.append(s)
        return i


def _start_nanos(start) -> int:
    if isinstance(start, (int, float)):
        return int(start * 1e9)
    if isinstance(start, str):
        try:
            dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            return 0
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1e9)
    return 0


HEAP_DEFAULT = "inuse_space"


def default_type(profile: Profile) -> str | None:
    """What pprof should open on: inuse_space for heap profiles (Go's convention), else the default type."""
    types = [vt.type for vt in profile.sample_types]
    if profile.recording.kind == "heap" and HEAP_DEFAULT in types:
        return HEAP_DEFAULT
    return types[profile.default_index] if types else None


def period_of(profile: Profile) -> tuple[str, str, int] | None:
    """(period type, unit, period) for the profile, or None when nothing fits."""
    rec = profile.recording
    units = {vt.unit for vt in profile.sample_types}
    time_types = [vt.type for vt in profile.sample_types if vt.unit == "nanoseconds"]
    if rec.kind == "heap" or (not time_types and "bytes" in units):
        return ("space", "bytes", 1)
    if rec.period_ns or time_types:
        ptype = rec.period_type or (time_types[0] if time_types else "cpu")
        return (ptype, "nanoseconds", int(rec.period_ns or 0))
    return None


def _comments(rec: Recording) -> list[str]:
    out = []
    if rec.target:
        out.append(f"target: {rec.target}")
    if rec.tool:
        out.append(f"recorded with {rec.tool}" + (f" {rec.tool_version}" if rec.tool_version else ""))
    out.append(f"written by perfkit {_perfkit_version()}")
    return out


def _perfkit_version() -> str:
    from perfkit import __version__

    return __version__


def _main_binary(rec: Recording) -> str:
    if rec.cmdline:
        return str(rec.cmdline[0])
    return "python"


def write(profile: Profile, *, extra_labels: dict[str, str] | None = None) -> bytes:
    """The whole profile (every value type, every label) as gzipped profile.proto.

    ``extra_labels`` (string key -> string value) are added to every sample, after the
    pid/thread labels (``perfkit serve --label k=v``).
    """
    M = _messages()
    out = M["Profile"]()
    s = _Strings()
    s_pid, s_tid, s_tname = s("pid"), s("thread_id"), s("thread_name")
    extra = [(s(k), s(v)) for k, v in sorted((extra_labels or {}).items())]
    for vt in profile.sample_types:
        out.sample_type.add(type=s(vt.type), unit=s(vt.unit))
    default = default_type(profile)
    out.default_sample_type = s(default) if default else 0
    rec = profile.recording
    out.mapping.add(id=1, filename=s(_main_binary(rec)), has_functions=True, has_filenames=True,
                    has_line_numbers=True)

    func_ids: dict[tuple[str, str], int] = {}
    loc_of_frame: list[int] = []
    for f in profile.frames:
        key = (f.function, f.file)
        fid = func_ids.get(key)
        if fid is None:
            fid = func_ids[key] = len(func_ids) + 1
            out.function.add(id=fid, name=s(f.function), filename=s(f.file))
        lid = len(loc_of_frame) + 1
        loc = out.location.add(id=lid, mapping_id=1)
        loc.line.add(function_id=fid, line=f.line)
        loc_of_frame.append(lid)

    Sample, Label = M["Sample"], M["Label"]
    samples = []
    label_cache: dict[Labels, list] = {}
    for smp in profile.samples:  # the model's order: deterministic for a given profile
        labels = label_cache.get(smp.labels)
        if labels is None:
            labels = []
            lb = smp.labels
            if lb.pid is not None:
                labels.append(Label(key=s_pid, num=lb.pid))
            if lb.tid is not None:
                labels.append(Label(key=s_tid, num=lb.tid))
            if lb.thread is not None:
                labels.append(Label(key=s_tname, str=s(lb.thread)))
            labels.extend(Label(key=k, str=v) for k, v in extra)
            label_cache[smp.labels] = labels
        samples.append(Sample(location_id=[loc_of_frame[i] for i in reversed(smp.stack)],
                              value=list(smp.values), label=labels))
    out.sample.extend(samples)

    period = period_of(profile)
    if period is not None:
        out.period_type.type = s(period[0])
        out.period_type.unit = s(period[1])
        if period[2]:
            out.period = period[2]
    if rec.start is not None:
        out.time_nanos = _start_nanos(rec.start)
    if rec.duration_s:
        out.duration_nanos = int(float(rec.duration_s) * 1e9)
    out.comment.extend(s(c) for c in _comments(rec))
    meta_doc = {"recording": rec.to_json(), "series": profile.series, "default_index": profile.default_index}
    # An unreferenced string: pprof readers ignore it; perfkit's reader picks it up.
    s(META_PREFIX + json.dumps(meta_doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str))
    out.string_table.extend(s.table)
    return gzip.compress(out.SerializeToString(deterministic=True), compresslevel=6, mtime=0)


# ----------------------------------------------------------------- reading
def _decompress(data: bytes, source: str) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return limits.gunzip(data, source)
    limits.check_size(data, source)
    return data


def _looks_like_profile(raw: bytes) -> bool:
    # field 1 (sample_type), 2 (sample), 3..6, all length-delimited: tag bytes 0x0a..0x32
    return bool(raw) and raw[0] in (0x0a, 0x12, 0x1a, 0x22, 0x2a, 0x32)


def sniff(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b":
        head = limits.gzip_head(data, 64)
        return head is not None and _looks_like_profile(head) and b"perfkit_profile" not in head
    if not _looks_like_profile(data) or data[:1] == b"\n" and data[1:2].isspace():
        return False
    try:  # an uncompressed profile.proto: cheap enough to just try parsing
        msg = _parse(data)
    except Exception:
        return False
    return len(msg.string_table) > 0 and msg.string_table[0] == "" and len(msg.sample_type) > 0


def _parse(raw: bytes):
    msg = _messages()["Profile"]()
    msg.ParseFromString(raw)
    return msg


def read(data: bytes, source: str = "<pprof>") -> Profile:
    try:
        raw = _decompress(data, source)
    except InputFormatError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise InputFormatError(f"{source} is corrupt or truncated ({type(exc).__name__})", f"expected "
                                                                                           f"{EXPECTED}") from None
    if not raw:
        raise InputFormatError(f"{source} holds no profile data", f"expected {EXPECTED}")
    from google.protobuf.message import DecodeError

    try:
        msg = _parse(raw)
    except (DecodeError, RuntimeError, ValueError, RecursionError) as exc:
        raise InputFormatError(f"{source} is not a valid profile.proto ({type(exc).__name__})", f"expected "
                                                                                                f"{EXPECTED}") from None
    try:
        return _to_model(msg)
    except (IndexError, KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise InputFormatError(f"{source} is a damaged pprof profile ({exc})", f"expected {EXPECTED}") from None


def _to_model(msg) -> Profile:
    st = list(msg.string_table)
    if not st or st[0] != "":
        raise ValueError("string table must start with the empty string")

    def S(i: int) -> str:
        if i < 0 or i >= len(st):
            raise IndexError(f"string index {i} out of range")
        return st[i]

    if not msg.sample_type:
        raise ValueError("no sample types")
    types = [ValueType(S(vt.type), S(vt.unit)) for vt in msg.sample_type]
    default_index = 0
    if msg.default_sample_type:
        name = S(msg.default_sample_type)
        default_index = next((i for i, vt in enumerate(types) if vt.type == name), len(types) - 1)
    else:
        default_index = len(types) - 1  # pprof's convention: the last type is the default

    meta: dict = {}
    series: dict = {}
    comments: list[str] = []
    ours = False
    for text in reversed(st):
        if text.startswith(META_PREFIX):
            try:
                extra = json.loads(text[len(META_PREFIX):])
            except (ValueError, RecursionError):
                extra = None
            if isinstance(extra, dict):
                for key in ("recording", "metadata"):  # "metadata": files from before Recording
                    if isinstance(extra.get(key), dict):
                        meta.update(extra[key])
                if isinstance(extra.get("series"), dict):
                    series = extra["series"]
                di = extra.get("default_index")
                if isinstance(di, int) and 0 <= di < len(types):
                    default_index = di
                ours = True
            break
    for c in msg.comment:
        comments.append(S(c))
    rec = Recording.from_json(meta)
    if not ours:  # perfkit's own comments are derived from the recording it carries
        rec.comments = list(rec.comments) + [c for c in comments if c not in rec.comments]
    rec.source_format = NAME
    if msg.period and not ours:
        if S(msg.period_type.unit) == "nanoseconds":
            rec.period_ns = rec.period_ns or msg.period
        else:
            rec.extra.setdefault("period", msg.period)
        rec.period_type = rec.period_type or S(msg.period_type.type)
    if msg.time_nanos and rec.start is None:
        rec.start = msg.time_nanos / 1e9
    if msg.duration_nanos and rec.duration_s is None:
        rec.duration_s = msg.duration_nanos / 1e9

    b = ProfileBuilder(types, rec, default_index)
    b.series = {str(k): v for k, v in dict(series).items()} if isinstance(series, dict) else {}
    functions = {f.id: (S(f.name) or S(f.system_name), S(f.filename)) for f in msg.function}
    mappings = {m.id: S(m.filename) for m in msg.mapping}
    loc_frames: dict[int, tuple[int, ...]] = {}
    for loc in msg.location:
        ids = []
        if loc.line:
            for ln in reversed(loc.line):  # line[0] is the innermost (inlined) frame
                name, file = functions[ln.function_id]
                ids.append(b.frame_id(Frame(name, file, int(ln.line))))
        else:
            ids.append(b.frame_id(Frame(f"0x{loc.address:x}", mappings.get(loc.mapping_id, ""), 0)))
        loc_frames[loc.id] = tuple(ids)

    keys = {i: s for i, s in enumerate(st)}
    ntypes = len(types)
    for smp in msg.sample:
        if len(smp.value) != ntypes:
            raise ValueError(f"a sample has {len(smp.value)} values for {ntypes} sample types")
        stack: list[int] = []
        for lid in reversed(smp.location_id):
            stack.extend(loc_frames[lid])
        pid = tid = thread = None
        for lab in smp.label:
            label_key = keys.get(lab.key)
            if label_key == "pid":
                pid = int(lab.num)
            elif label_key in ("thread_id", "tid", "thread"):
                if lab.str:
                    thread = S(lab.str)
                else:
                    tid = int(lab.num)
            elif label_key == "thread_name":
                thread = S(lab.str)
        b.add_ids(tuple(stack), tuple(int(v) for v in smp.value), Labels(pid, tid, thread))
    return b.build()
