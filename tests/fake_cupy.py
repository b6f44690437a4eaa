"""A CuPy stand-in as strict as CuPy, for running the GPU launchers on a machine without a GPU.

"Device" arrays are numpy arrays (:class:`DeviceArray`) and a kernel launch runs the host
build of the kernel source (``tests/host_build.py``). Everything around the arithmetic is
modelled on CuPy 13.6 / 14.2 (``cupy/_core/core.pyx``, ``cupy/cuda/function.pyx``,
``cupy/_core/_scalar.pyx``, ``cupy/cuda/compiler.py``) and refused where CuPy or CUDA would
go wrong, so that a defect real CuPy would show fails here first:

* memory order: ``asarray``/``array`` of an F-contiguous host array give an F-ordered
  device array (any other layout gives C order), ``*_like`` keep the prototype's order;
* kernel arguments are checked against the ``__global__`` signature parsed from the source
  that was compiled: argument count; arrays only for pointers, of the pointee's dtype and
  C-contiguous; scalars by CuPy's marshalling (a numpy scalar passes its own dtype, which
  must be the parameter's; a Python int is ``long long``, a float ``double``, a bool
  ``bool``); a kernel may not use ``long`` (32 bits under NVRTC on Windows);
* streams, events and host synchronisation are modelled with vector clocks: every copy,
  kernel and array operation is an :class:`Op` in ``Runtime.log`` with the buffers it reads
  and writes; an operation that touches device memory last written (or read, for a write)
  by an operation it is not ordered after (same stream, the legacy null stream's implicit
  ordering with blocking streams, an event waited on, or a host synchronisation before it
  was issued) raises :class:`StreamRace`;
* copies to and from pinned host memory are asynchronous: a device-to-host copy writes
  poison (0xff bytes) into the host buffer and delivers the data only when the host learns
  that the copy finished (``synchronize``, a blocking ``get``); a host-to-device copy from
  pinned memory fails if the host buffer changed before then; a second copy into a pinned
  range still in flight, or pinned memory freed while a copy uses it, fails too. Copies
  with pageable host memory are synchronous for the host, as in CUDA. ``get()`` blocks by
  default (CuPy 13 and 14) and ``blocking=False`` does not; ``set()`` never blocks;
* ``numpy.asarray`` of a device array and numpy arithmetic mixing host and device arrays
  raise TypeError (in the ``np`` of gpucal's modules, see :func:`install`);
* compiling: ``cupy.RawModule`` appends ``-ftz=true`` after the caller's options and keys
  its cache on the source string and options, as CuPy does; ``compile_using_nvrtc`` adds
  only ``-arch`` and ``--device-as-default-execution-space``. ``Runtime.compiles`` records
  what NVRTC would receive.

Not modelled: the device memory pool's per-stream reuse, several devices / NVML / free
memory (``tests/fake_devices.py``), timing.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
import types
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POISON = 0xFF
_RT: Runtime | None = None


class StreamRace(AssertionError):
    """Memory used across streams (or by the host) without the ordering CUDA needs."""


def _rt() -> Runtime:
    if _RT is None:
        raise RuntimeError("the CuPy stand-in is not installed (fake_cupy.install)")
    return _RT


# --------------------------------------------------------------------------- kernel signatures

_C_TYPES = {
    "bool": np.bool_, "char": np.int8, "signed char": np.int8, "unsigned char": np.uint8,
    "short": np.int16, "signed short": np.int16, "unsigned short": np.uint16,
    "int": np.int32, "signed int": np.int32, "signed": np.int32, "unsigned int": np.uint32, "unsigned": np.uint32,
    "long long": np.int64, "long long int": np.int64, "signed long long": np.int64,
    "unsigned long long": np.uint64, "unsigned long long int": np.uint64,
    "float": np.float32, "double": np.float64,
}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}


@dataclass(frozen=True)
class Param:
    name: str
    dtype: np.dtype
    pointer: bool
    const: bool  # of the pointee: a const pointer is only read


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.DOTALL)


def expand_includes(source: str, include_dirs: list[Path]) -> str:
    """``source`` with its ``#include "..."`` headers inlined from ``include_dirs`` (as NVRTC's -I)."""
    def inline(match):
        for d in include_dirs:
            path = Path(d) / match.group(1)
            if path.exists():
                return expand_includes(path.read_text(), include_dirs)
        raise FileNotFoundError(f"NVRTC: cannot open source file \"{match.group(1)}\"")

    return re.sub(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', inline, source, flags=re.MULTILINE)


def _c_dtype(ctype: str, typedefs: dict, where: str) -> np.dtype:
    words = ctype.split()
    while len(words) == 1 and words[0] in typedefs:
        words = typedefs[words[0]].split()
    name = " ".join(words)
    if name in ("long", "long int", "signed long", "unsigned long", "unsigned long int"):
        raise TypeError(f"{where}: `{name}` is 32 bits under NVRTC on Windows and 64 on Linux: use a fixed-width "
                        "type (long long)")
    if name not in _C_TYPES:
        raise TypeError(f"{where}: C type `{name}` is not one the stand-in can marshal")
    return np.dtype(_C_TYPES[name])


def parse_signatures(source: str) -> dict[str, list[Param]]:
    """The parameters of every ``__global__`` function of ``source`` (headers already inlined)."""
    text = _strip_comments(source)
    typedefs = {m.group(2): m.group(1) for m in re.finditer(r"\btypedef\s+([\w\s]+?)\s+(\w+)\s*;", text)}
    typedefs.update({m.group(1): m.group(2) for m in re.finditer(r"\busing\s+(\w+)\s*=\s*([\w\s]+?)\s*;", text)})
    kernels = {}
    for m in re.finditer(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)", text):
        params = []
        for raw in filter(None, (p.strip() for p in m.group(2).split(","))):
            pointer = "*" in raw
            head, _, tail = raw.partition("*")
            words = [w for w in re.findall(r"\w+", head + " " + tail)]
            const = "const" in head.split()
            name = words[-1]
            ctype = " ".join(w for w in words[:-1] if w not in _QUALIFIERS)
            params.append(Param(name, _c_dtype(ctype, typedefs, f"{m.group(1)}({name})"), pointer, const))
        kernels[m.group(1)] = params
    return kernels


def _scalar_dtype(value) -> np.dtype:
    """The dtype CuPy passes a scalar argument as (function.pyx ``_pointer``, _scalar.pyx ``CScalar``)."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise TypeError(f"You are trying to pass a numpy.ndarray of shape {value.shape} as a kernel parameter. "
                            "Only numpy.ndarrays of size one can be passed by value. (CuPy raises here)")
        return value.dtype
    if isinstance(value, np.generic):
        return value.dtype
    if type(value) is bool:
        return np.dtype(np.bool_)  # CuPy 14; CuPy 13 passes an int64 (a bool parameter reads its first byte)
    if type(value) is int:
        return np.dtype(np.uint64 if value >= 1 << 63 else np.int64)
    if type(value) is float:
        return np.dtype(np.float64)
    raise TypeError(f"Unsupported type {type(value)} (CuPy raises here)")


def check_arguments(kernel: str, params: list[Param], args) -> list:
    """``args`` checked against ``params`` as CuPy marshals them; returns the values to run the host build with."""
    if len(args) != len(params):
        raise TypeError(f"{kernel}: {len(args)} arguments for {len(params)} parameters")
    values = []
    for i, (p, a) in enumerate(zip(params, args)):
        where = f"{kernel} argument {i} ({p.name})"
        if p.pointer:
            if isinstance(a, DeviceArray):
                if a.dtype != p.dtype:
                    raise TypeError(f"{where}: a {a.dtype} array for a {p.dtype} pointer")
                if not a.flags.c_contiguous:
                    raise ValueError(f"{where}: the array is not C-contiguous (the kernel indexes in C order)")
                values.append(a.view(np.ndarray))
                continue
            if isinstance(a, np.ndarray) and a.size != 1:
                _scalar_dtype(a)  # raises CuPy's error
            raise TypeError(f"{where}: {type(a).__name__} passed for a pointer (needs a device array)")
        if isinstance(a, DeviceArray):
            raise TypeError(f"{where}: a device array passed for a {p.dtype} value")
        if a is None:
            raise TypeError(f"{where}: None passed for a {p.dtype} value")
        dtype = _scalar_dtype(a)
        if p.dtype == np.bool_ and type(a) is bool:
            values.append(np.bool_(a))
            continue
        if dtype != p.dtype:
            kind = "Python " + type(a).__name__ if type(a) in (int, float, bool) else f"numpy {dtype}"
            raise TypeError(f"{where}: a {kind} is passed as {dtype}, the parameter is {p.dtype} (no conversion: "
                            "the kernel reads the wrong bytes)")
        values.append(np.asarray(a).reshape(()).astype(dtype)[()])
    return values


def _check_dims(what: str, dims, limits: tuple) -> tuple:
    if not isinstance(dims, tuple):
        raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got {type(dims).__name__})")
    if not 1 <= len(dims) <= 3:
        raise ValueError(f"{what} needs 1 to 3 dimensions, got {dims}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    for d, limit in zip(dims, limits):
        if not 1 <= d <= limit:
            raise ValueError(f"{what} {dims}: each dimension must be in [1, {limit}]")
    return dims


# --------------------------------------------------------------------------- streams, events, the log

@dataclass
class Op:
    """One operation issued on a stream."""

    index: int
    kind: str  # "h2d", "d2h", "kernel", "op" (array operation), "event"
    name: str
    stream: Stream
    seq: int
    clock: dict
    reads: list = field(default_factory=list)  # device allocations
    writes: list = field(default_factory=list)

    def before(self, other: Op) -> bool:
        """Whether this operation is ordered before ``other`` (finished before it starts)."""
        return other.clock.get(self.stream.id, 0) >= self.seq

    def before_host(self) -> bool:
        """Whether the host knows that this operation finished."""
        return self.stream.runtime.host.get(self.stream.id, 0) >= self.seq

    def __repr__(self) -> str:
        return f"#{self.index} {self.kind} {self.name} on {self.stream.label}"


class _Alloc:
    """Bookkeeping of one device allocation: the last write and the reads since."""

    count = 0

    def __init__(self):
        _Alloc.count += 1
        self.id = _Alloc.count
        self.last_write: Op | None = None
        self.reads: list[Op] = []


def _join(clock: dict, other: dict) -> None:
    for k, v in other.items():
        if clock.get(k, 0) < v:
            clock[k] = v


class Stream:
    """``cupy.cuda.Stream``: ``with stream:`` makes it current; ``Stream.null`` is the legacy default stream."""

    null: Stream  # set per runtime

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False, priority=None):
        rt = _rt()
        self.runtime = rt
        self.is_null = null
        self.non_blocking = non_blocking
        self.id = len(rt.streams)
        self.label = "the null stream" if null else f"stream {self.id}" + (" (non-blocking)" if non_blocking else "")
        self.seq = 0
        self.clock: dict = {}
        rt.streams.append(self)

    @property
    def ptr(self) -> int:
        return 0 if self.is_null else 0x1000 + self.id

    def __enter__(self):
        self.runtime.stack.append(self)
        return self

    def __exit__(self, *exc):
        self.runtime.stack.pop()
        return False

    def use(self):
        self.runtime.stack[:] = [self]
        return self

    def synchronize(self) -> None:
        self.runtime.host_learns(self.clock)

    @property
    def done(self) -> bool:
        return self.runtime.host.get(self.id, 0) >= self.seq

    def record(self, event: Event | None = None) -> Event:
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event: Event) -> None:
        _join(self.clock, event.clock)


class Event:
    """``cupy.cuda.Event``: records a point of a stream; ``wait_event`` / ``synchronize`` order after it."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False):
        self.clock: dict = {}
        self.op: Op | None = None

    def record(self, stream: Stream | None = None) -> None:
        rt = _rt()
        self.op = rt.issue(stream or rt.current, "event", "record")
        self.clock = dict(self.op.clock)

    def synchronize(self) -> None:
        _rt().host_learns(self.clock)

    @property
    def done(self) -> bool:
        return self.op is None or self.op.before_host()


def get_elapsed_time(start: Event, end: Event) -> float:
    return 1e-3 * max(end.op.index - start.op.index, 1)


@dataclass
class _HostCopy:
    """A copy between a device array and pinned host memory, pending until the host learns it finished."""

    op: Op
    pinned: weakref.ref  # the PinnedMemory
    start: int
    nbytes: int
    to_host: bool
    data: bytes  # d2h: what lands; h2d: what was read


class PinnedMemory(bytearray):
    """``cupy.cuda.alloc_pinned_memory``: page-locked host memory (a buffer numpy can wrap)."""

    @property
    def ptr(self) -> int:
        return _address(self)

    def size(self) -> int:
        return len(self)


def _address(buffer) -> int:
    return np.frombuffer(buffer, np.uint8).ctypes.data if len(buffer) else 0


class Runtime:
    """The state of one installed stand-in: streams, the host's knowledge, the log."""

    def __init__(self, min_ndim: int = 4):
        self.streams: list[Stream] = []
        self.stack: list[Stream] = []
        self.host: dict = {}  # per stream, the last operation the host knows finished
        self.log: list[Op] = []
        self.pending: list[_HostCopy] = []
        self.pinned: dict[int, tuple[int, int, weakref.ref]] = {}
        self.allocs: dict[int, _Alloc] = {}  # by id of the memory's owner array
        self.compiles: list[dict] = []
        self.violations: list[str] = []
        self.transfers = Transfers(min_ndim)
        self.compute_capability = "90"

    # ---- streams and ordering
    @property
    def current(self) -> Stream:
        return self.stack[-1] if self.stack else Stream.null

    def issue(self, stream: Stream, kind: str, name: str, reads=(), writes=()) -> Op:
        """Issue an operation on ``stream`` touching device ``reads``/``writes`` (arrays); race-checked."""
        self.raise_violations()
        if stream.is_null:
            for s in self.streams:
                if not s.non_blocking and not s.is_null:
                    _join(stream.clock, s.clock)
        elif not stream.non_blocking:
            _join(stream.clock, Stream.null.clock)
        _join(stream.clock, self.host)  # what the host knows finished precedes what it issues now
        stream.seq += 1
        stream.clock[stream.id] = stream.seq
        op = Op(len(self.log), kind, name, stream, stream.seq, dict(stream.clock))
        read_allocs = [self.alloc(a) for a in reads]
        write_allocs = [self.alloc(a) for a in writes]
        for alloc in read_allocs + write_allocs:
            w = alloc.last_write
            if w is not None and not w.before(op):
                raise StreamRace(f"{op!r} uses device memory written by {w!r} with no synchronisation or event "
                                 "between them (the two may run in any order)")
        for alloc in write_allocs:
            for r in alloc.reads:
                if not r.before(op):
                    raise StreamRace(f"{op!r} overwrites device memory that {r!r} reads, with no synchronisation "
                                     "or event between them")
        for alloc in read_allocs:
            alloc.reads.append(op)
        for alloc in write_allocs:
            alloc.last_write, alloc.reads = op, []
        op.reads, op.writes = [a.id for a in read_allocs], [a.id for a in write_allocs]
        self.log.append(op)
        return op

    def host_learns(self, clock: dict) -> None:
        """The host waited for everything ``clock`` covers: pending copies to pinned memory complete."""
        _join(self.host, clock)
        still = []
        for copy in self.pending:
            if copy.op.before_host():
                self._complete(copy)
            else:
                still.append(copy)
        self.pending = still
        self.raise_violations()

    def synchronize_device(self) -> None:
        for s in self.streams:
            self.host_learns(s.clock)

    def finish(self) -> None:
        """End of a test: the host waits for the device; anything left wrong is raised."""
        self.synchronize_device()
        self.raise_violations()

    def concurrent(self, a: Op, b: Op) -> bool:
        """Whether ``a`` and ``b`` may overlap on the device (neither is ordered before the other)."""
        return not a.before(b) and not b.before(a)

    def ops(self, kind: str | None = None, name: str | None = None) -> list[Op]:
        return [op for op in self.log if (kind is None or op.kind == kind) and (name is None or op.name == name)]

    def alloc(self, array) -> _Alloc:
        owner = _owner(array)
        alloc = self.allocs.get(id(owner))
        if alloc is None:
            alloc = self.allocs[id(owner)] = _Alloc()
            weakref.finalize(owner, self.allocs.pop, id(owner), None)
        return alloc

    # ---- pinned host memory
    def alloc_pinned(self, nbytes: int) -> PinnedMemory:
        mem = PinnedMemory(max(int(nbytes), 1))
        start = _address(mem)
        key = id(mem)
        self.pinned[key] = (start, start + len(mem), weakref.ref(mem))
        weakref.finalize(mem, self._pinned_freed, key, start, start + len(mem))
        return mem

    def _pinned_freed(self, key: int, start: int, end: int) -> None:
        self.pinned.pop(key, None)
        for copy in self.pending:
            if copy.start < end and start < copy.start + copy.nbytes:
                self.violations.append(f"pinned memory freed (back to the pool, to be reused) while {copy.op!r} "
                                       "still copies it")

    def pinned_of(self, array: np.ndarray) -> PinnedMemory | None:
        start = array.__array_interface__["data"][0]
        end = start + array.nbytes
        for lo, hi, ref in self.pinned.values():
            if lo <= start and end <= hi:
                return ref()
        return None

    def raise_violations(self) -> None:
        if self.violations:
            message = "; ".join(self.violations)
            self.violations.clear()
            raise StreamRace(message)

    def _in_flight(self, start: int, nbytes: int, *, writes: bool):
        for copy in self.pending:
            if copy.start < start + nbytes and start < copy.start + copy.nbytes and (writes or copy.to_host):
                return copy
        return None

    def _complete(self, copy: _HostCopy) -> None:
        mem = copy.pinned()
        if mem is None:
            return  # reported when freed
        view = np.frombuffer(mem, np.uint8)[copy.start - _address(mem):][:copy.nbytes]
        if copy.to_host:
            if not np.all(view == POISON):
                self.violations.append(f"the host wrote into pinned memory while {copy.op!r} was copying into it")
            view[...] = np.frombuffer(copy.data, np.uint8)
        elif view.tobytes() != copy.data:
            self.violations.append(f"the host changed pinned memory before {copy.op!r}, which copies it to the "
                                   "device, had finished")

    # ---- copies
    def h2d(self, host: np.ndarray, device: DeviceArray, stream: Stream, name: str = "copy") -> Op:
        """Copy ``host`` (same shape and layout as ``device``) to the device on ``stream``."""
        self.transfers.note(self.transfers.uploads, host)
        op = self.issue(stream, "h2d", name, writes=[device])
        mem = self.pinned_of(host) if host.flags.c_contiguous or host.flags.f_contiguous else None
        if mem is not None:
            start = host.__array_interface__["data"][0]
            clash = self._in_flight(start, host.nbytes, writes=False)
            if clash is not None:
                raise StreamRace(f"{op!r} reads pinned memory that {clash.op!r} is still copying into")
            self.pending.append(_HostCopy(op, weakref.ref(mem), start, host.nbytes, False, host.tobytes(order="A")))
        device.view(np.ndarray)[...] = host
        return op

    def d2h(self, device: DeviceArray, host: np.ndarray, stream: Stream, name: str = "copy") -> Op:
        """Copy ``device`` into ``host`` (same shape and contiguity) on ``stream``."""
        self.transfers.note(self.transfers.downloads, device)
        op = self.issue(stream, "d2h", name, reads=[device])
        mem = self.pinned_of(host)
        if mem is None:  # pageable: cudaMemcpyAsync returns when the copy is done
            host[...] = device.view(np.ndarray)
            self.host_learns(op.clock)
            return op
        start = host.__array_interface__["data"][0]
        clash = self._in_flight(start, host.nbytes, writes=True)
        if clash is not None:
            raise StreamRace(f"{op!r} copies into pinned memory that {clash.op!r} still uses")
        data = np.ascontiguousarray(device.view(np.ndarray)) if host.flags.c_contiguous else \
            np.asfortranarray(device.view(np.ndarray))
        _raw(host)[...] = POISON
        self.pending.append(_HostCopy(op, weakref.ref(mem), start, host.nbytes, True, data.tobytes(order="A")))
        return op


class Transfers:
    """Host<->device copies of arrays with at least ``min_ndim`` dimensions (ramp blocks).

    ``uploads`` / ``downloads`` are lists of ``(dtype, shape)``.
    """

    def __init__(self, min_ndim: int = 4):
        self.min_ndim = min_ndim
        self.uploads: list[tuple[str, tuple]] = []
        self.downloads: list[tuple[str, tuple]] = []

    def note(self, kind: list, array) -> None:
        if np.ndim(array) >= self.min_ndim:
            kind.append((str(array.dtype), tuple(np.shape(array))))


# --------------------------------------------------------------------------- device arrays

def _raw(a: np.ndarray) -> np.ndarray:
    """The bytes of a C- or F-contiguous array, as a writable uint8 view."""
    return a.reshape(-1, order="A").view(np.uint8)


def _owner(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _is_host(x) -> bool:
    return isinstance(x, np.ndarray) and not isinstance(x, DeviceArray) and x.ndim > 0


def _plain(x):
    if isinstance(x, DeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, (tuple, list)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _flat(args) -> list:
    out = []
    for a in args:
        if isinstance(a, (tuple, list)):
            out.extend(_flat(a))
        else:
            out.append(a)
    return out


def _device_view(a: np.ndarray) -> DeviceArray:
    return a.view(DeviceArray)


def _new_arrays(result, inputs: list) -> tuple:
    """``result`` as device arrays and those of them that are new memory (not views of ``inputs``)."""
    owners = {id(_owner(a)) for a in inputs if isinstance(a, np.ndarray)}
    new = []

    def wrap(r):
        if isinstance(r, np.generic):  # CuPy returns 0-d device arrays, not host scalars
            r = np.asarray(r)
        if isinstance(r, np.ndarray):
            d = r if isinstance(r, DeviceArray) else r.view(DeviceArray)
            if id(_owner(r)) not in owners:
                new.append(d)
            return d
        if isinstance(r, (tuple, list)):
            return type(r)(wrap(v) for v in r)
        return r

    return wrap(result), new


def _device_op(name: str, func, args, kwargs, out=(), host_ok=()):
    """Run ``func`` on the plain arrays of ``args``: an array operation on the current stream
    (logged when it writes device memory; views and metadata are not operations)."""
    rt = _rt()
    flat = _flat(list(args) + list(kwargs.values()))
    if any(_is_host(x) and not any(x is h for h in host_ok) for x in flat):
        raise TypeError(f"{name}: a host numpy array mixed with device arrays (CuPy raises here)")
    inputs = [x for x in flat if isinstance(x, DeviceArray)]
    result = func(*_plain(args), **_plain(kwargs))
    wrapped, new = _new_arrays(result, inputs)
    if new or out:
        rt.issue(rt.current, "op", name, reads=inputs, writes=new + list(out))
    return wrapped


class DeviceArray(np.ndarray):
    """``cupy.ndarray``: numpy storage, CuPy's rules (see the module docstring)."""

    def __array_function__(self, func, types, args, kwargs):
        return _device_op(func.__name__, func, args, kwargs)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if out is not None:
            kwargs["out"] = out
        outs = [o for o in (out or ()) if isinstance(o, DeviceArray)]
        result = _device_op(f"{ufunc.__name__}.{method}", getattr(ufunc, method), inputs, kwargs, out=outs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, (np.ndarray, list)) for k in keys):  # a copy (numpy index arrays are uploaded)
            return _device_op("take", np.ndarray.__getitem__, (self, key), {}, host_ok=keys)
        result = np.ndarray.__getitem__(self, key)
        if not isinstance(result, np.ndarray):  # CuPy gives a 0-d device array, never a host scalar
            result = np.ndarray.__getitem__(self, (*(key if isinstance(key, tuple) else (key,)), Ellipsis))
        return result

    def __setitem__(self, key, value):
        rt = _rt()
        if _is_host(value):  # an implicit upload in CuPy
            staged = _device_view(np.empty_like(value))
            rt.h2d(np.asarray(value), staged, rt.current, "setitem upload")
            value = staged
        reads = [value] if isinstance(value, DeviceArray) else []
        rt.issue(rt.current, "op", "setitem", reads=reads, writes=[self])
        np.ndarray.__setitem__(self.view(np.ndarray), _plain(key), _plain(value))

    def fill(self, value):
        rt = _rt()
        rt.issue(rt.current, "op", "fill", writes=[self])
        self.view(np.ndarray).fill(value)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _device_op("astype", np.ndarray.astype, (self, dtype), {"order": order})

    def copy(self, order="C"):
        return _device_op("copy", np.ndarray.copy, (self,), {"order": order})

    # ---- host transfers (core.pyx ndarray.get / set)
    def get(self, stream=None, order="C", out=None, blocking=True):
        rt = _rt()
        stream = rt.current if stream is None else stream
        src = self
        if out is not None:
            if not isinstance(out, np.ndarray) or isinstance(out, DeviceArray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.dtype != self.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if out.shape != self.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
            if not (out.flags.c_contiguous and self.flags.c_contiguous
                    or out.flags.f_contiguous and self.flags.f_contiguous):
                if not (out.flags.c_contiguous or out.flags.f_contiguous):
                    raise RuntimeError("`out` cannot be specified when copying to non-contiguous ndarray")
                with stream:
                    src = _device_op("copy", np.array, (self,), {"order": "C" if out.flags.c_contiguous else "F"})
            host = out
        else:
            order = order.upper()
            if order == "A":
                order = "F" if self.flags.f_contiguous else "C"
            if not (order == "C" and self.flags.c_contiguous or order == "F" and self.flags.f_contiguous):
                with stream:
                    src = _device_op("copy", np.array, (self,), {"order": order})
            host = np.empty(self.shape, dtype=self.dtype, order=order)
        rt.d2h(src, host, stream, "get")
        if blocking:
            stream.synchronize()
        return host

    def set(self, arr, stream=None):
        rt = _rt()
        if not isinstance(arr, np.ndarray) or isinstance(arr, DeviceArray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if self.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        elif self.flags.f_contiguous:
            arr = np.asfortranarray(arr)
        else:
            raise RuntimeError("Cannot set to non-contiguous array")
        rt.h2d(arr, self, rt.current if stream is None else stream, "set")

    # ---- implicit device-to-host reads (CuPy: a blocking get on the current stream)
    def _host_value(self):
        return self.get()

    def item(self, *args):
        return self._host_value().item(*args)

    def tolist(self):
        return self._host_value().tolist()

    def __int__(self):
        return int(self._host_value())

    def __float__(self):
        return float(self._host_value())

    def __bool__(self):
        return bool(self._host_value())

    def __index__(self):
        if self.ndim or self.dtype.kind not in "iu":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._host_value())

    @property
    def device(self):
        return Device(0)

    def __repr__(self):  # for test reports: no device operation
        return "stand-in device " + repr(self.view(np.ndarray))

    __str__ = __repr__


# --------------------------------------------------------------------------- module functions

def _layout(obj, order) -> str:
    """The order CuPy's ``_array_default`` gives a copy of ``obj``: 'K'/'A'/None -> F only for F-contiguous."""
    order = "K" if order is None else order.upper()
    if order in ("K", "A"):
        return "F" if isinstance(obj, np.ndarray) and obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
    return order


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    rt = _rt()
    if isinstance(obj, DeviceArray):
        if not copy and (dtype is None or np.dtype(dtype) == obj.dtype) and order in ("K", "A", None):
            return obj
        return _device_op("array", np.array, (obj,), {"dtype": dtype, "order": order or "K", "ndmin": ndmin})
    layout = _layout(obj, order)
    host = np.array(obj, dtype=dtype, order=layout, ndmin=ndmin)
    dev = _device_view(np.empty(host.shape, host.dtype, order=layout))
    stream = rt.current
    pinned = isinstance(obj, np.ndarray) and host.__array_interface__["data"][0] == obj.__array_interface__["data"][0]
    rt.h2d(host if pinned else host.copy(order="A"), dev, stream, "asarray")
    if blocking:
        stream.synchronize()
    return dev


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, np.ndarray) and not isinstance(a, DeviceArray) and _rt().pinned_of(a) is not None:
        # a correctly ordered pinned array is copied from directly (asynchronously)
        view = np.asarray(a, dtype=dtype, order=_layout(a, order))
        if view.__array_interface__["data"][0] == a.__array_interface__["data"][0]:
            return array(view, copy=False, blocking=blocking)
    return array(a, dtype=dtype, copy=bool(copy), order=order, blocking=blocking)


def ascontiguousarray(a, dtype=None):
    if isinstance(a, DeviceArray):
        if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        return _device_op("ascontiguousarray", np.ascontiguousarray, (a,), {"dtype": dtype})
    return array(a, dtype=dtype, order="C")


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, DeviceArray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    if out is None:
        return np.asarray(a, order=order)
    out[...] = a
    return out


def _allocate(shape, dtype, order) -> DeviceArray:
    a = np.empty(shape, dtype=dtype, order=order)
    _raw(a)[...] = POISON  # device memory is not cleared
    return _device_view(a)


def empty(shape, dtype=float, order="C"):
    return _allocate(shape, dtype, order)


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    like = np.empty_like(_plain(prototype), dtype=dtype, order=order, shape=shape)
    return _allocate(like.shape, like.dtype, "F" if like.flags.f_contiguous and not like.flags.c_contiguous else "C")


def _filled(name, make):
    def create(*args, **kwargs):
        rt = _rt()
        dev = _device_view(make(*_plain(args), **kwargs))
        rt.issue(rt.current, "op", name, writes=[dev])
        return dev

    return create


class _Module(types.ModuleType):
    """``cupy``: what is not defined here is numpy's function run as a device operation."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr

        def call(*args, **kwargs):
            if any(isinstance(x, DeviceArray) for x in _flat(list(args) + list(kwargs.values()))):
                return attr(*args, **kwargs)  # dispatches to DeviceArray.__array_function__ / __array_ufunc__
            return _device_op(name, attr, args, kwargs)

        return call


# --------------------------------------------------------------------------- compiling and launching

@dataclass
class Binary:
    """What NVRTC would return: the source and the options it received."""

    source: str
    options: tuple


class Function:
    """A ``__global__`` function: ``f(grid, block, args, shared_mem=0, stream=None)`` (function.pyx)."""

    def __init__(self, binary: Binary, name: str):
        include_dirs = [o[2:] for o in binary.options if o.startswith("-I")]
        signatures = parse_signatures(expand_includes(binary.source, include_dirs))
        if name not in signatures:
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found ({name})")
        self.name = name
        self.params = signatures[name]
        self.module = _module_name(binary.source)

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        from host_build import host_library, launch_host

        grid = _check_dims("grid", grid, (2**31 - 1, 65535, 65535))
        block = _check_dims("block", block, (1024, 1024, 64))
        if block[0] * block[1] * block[2] > 1024:
            raise ValueError(f"block {block}: more than 1024 threads")
        if grid[1:] != (1, 1) or block[1:] != (1, 1):
            raise NotImplementedError("the host build runs 1-D grids only")
        values = check_arguments(self.name, self.params, tuple(args))
        rt = _rt()
        reads = [a for p, a in zip(self.params, args) if p.pointer]
        writes = [a for p, a in zip(self.params, args) if p.pointer and not p.const]
        rt.issue(rt.current if stream is None else stream, "kernel", self.name, reads=reads, writes=writes)
        launch_host(host_library(self.module), self.name, values, grid=grid[0], block=block[0])


def _module_name(source: str) -> str:
    from gpucal.gpu import compile as gpu_compile

    for path in sorted(gpu_compile.KERNEL_DIR.glob("*.cu")):
        if source in (gpu_compile.kernel_source(path.stem), gpu_compile.module_source(path.stem)):
            return path.stem
    raise RuntimeError("the stand-in runs only the kernel sources of gpucal/kernels")


class Module:
    """``cupy.cuda.function.Module``."""

    def load(self, binary: Binary) -> None:
        if not isinstance(binary, Binary):
            raise TypeError("Module.load takes the bytes NVRTC returned")
        self.binary = binary

    def get_function(self, name: str) -> Function:
        return Function(self.binary, name)


def compile_using_nvrtc(source, options=(), arch=None, filename="kern.cu", name_expressions=None, log_stream=None,
                        cache_in_memory=False, jitify=None):
    """``cupy.cuda.compiler.compile_using_nvrtc``: NVRTC gets ``options`` + ``-arch`` +
    ``--device-as-default-execution-space`` (no ``-ftz=true``, no cache)."""
    rt = _rt()
    options = tuple(options) + (f"-arch=sm_{arch or rt.compute_capability}", "--device-as-default-execution-space")
    rt.compiles.append(dict(api="compile_using_nvrtc", source=source, options=options, cache_key=None))
    return Binary(source, options), {}


class RawModule:
    """``cupy.RawModule(code=..., options=...)`` as CuPy 14.2 compiles it: ``--std=c++17`` when no
    standard is given, CuPy's include directory, then ``-ftz=true``, ``-arch``,
    ``--device-as-default-execution-space``; the kernel cache is keyed on the options and the
    source string (not on the files it includes)."""

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=None):
        rt = _rt()
        options = tuple(options)
        if not any("-std=" in o for o in options):
            options += ("--std=c++17",)
        options += ("-I/cupy/_core/include", "-ftz=true", f"-arch=sm_{rt.compute_capability}",
                    "--device-as-default-execution-space")
        key = hashlib.sha1(repr((options, code)).encode()).hexdigest()
        rt.compiles.append(dict(api="RawModule", source=code, options=options, cache_key=key))
        self.binary = Binary(code, options)

    def get_function(self, name: str) -> Function:
        return Function(self.binary, name)


class Device:
    """``cupy.cuda.Device`` (one device; several devices and free memory: tests/fake_devices.py)."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    @property
    def compute_capability(self) -> str:
        return _rt().compute_capability

    def synchronize(self) -> None:
        _rt().synchronize_device()

    def use(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def make_module(min_ndim: int = 4, devices=None) -> tuple[types.ModuleType, Runtime]:
    """A fresh stand-in ``cupy`` module and its runtime (made current: see :func:`install`);
    ``devices`` (tests/fake_devices.py, default one GPU with 8 GiB free) answers the device and
    memory queries, keeps the memory pools and counts the device and pinned allocations."""
    global _RT
    rt = _RT = Runtime(min_ndim)
    Stream.null = Stream(null=True)  # the legacy default stream
    cupy = _Module("cupy")
    cupy.ndarray = DeviceArray
    cupy.array, cupy.asarray, cupy.ascontiguousarray, cupy.asnumpy = array, asarray, ascontiguousarray, asnumpy
    cupy.empty, cupy.empty_like = empty, empty_like
    for name in ("zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "arange"):
        setattr(cupy, name, _filled(name, getattr(np, name)))
    cupy.RawModule = RawModule
    runtime = types.SimpleNamespace(
        getDevice=lambda: 0, setDevice=lambda i: None, getDeviceCount=lambda: 1,
        deviceSynchronize=rt.synchronize_device, memGetInfo=lambda: (8 * 1024**3, 16 * 1024**3),
        getDeviceProperties=lambda i: {"name": b"gpucal stand-in", "totalGlobalMem": 16 * 1024**3, "major": 9,
                                       "minor": 0, "multiProcessorCount": 132})
    cupy.cuda = types.SimpleNamespace(
        Stream=Stream, Event=Event, Device=Device, runtime=runtime, get_elapsed_time=get_elapsed_time,
        get_current_stream=lambda: rt.current, alloc_pinned_memory=rt.alloc_pinned,
        compiler=types.SimpleNamespace(compile_using_nvrtc=compile_using_nvrtc),
        function=types.SimpleNamespace(Module=Module),
        nvrtc=types.SimpleNamespace(getVersion=lambda: (12, 9)))
    import fake_devices

    (devices or fake_devices.default_devices()).attach(cupy)
    return cupy, rt


# --------------------------------------------------------------------------- installing

class _StrictNumpy(types.ModuleType):
    """numpy for gpucal's modules: ``np.asarray``/``np.array``/... of a device array raise TypeError,
    as CuPy's ``__array__`` does (an implicit device-to-host copy)."""

    def __getattr__(self, name):
        return getattr(np, name)


def _refusing(name):
    convert = getattr(np, name)

    def call(a, *args, **kwargs):
        if isinstance(a, DeviceArray):
            raise TypeError(f"numpy.{name} of a device array: an implicit device-to-host copy (CuPy raises here)")
        return convert(a, *args, **kwargs)

    return call


_GPUCAL_MODULES = ("gpucal.gpu.compile", "gpucal.gpu.transfer", "gpucal.gpu.ramp_fit", "gpucal.gpu.jump",
                   "gpucal.gpu.ipc", "gpucal.gpu.drizzle", "gpucal.gpu.cube", "gpucal.pipeline.detector1",
                   "gpucal.steps", "gpucal.jump_detection", "gpucal.ramp_fitting", "gpucal.refpix_stats",
                   "gpucal.resample.drizzle", "gpucal.cube.sums")


def install(monkeypatch, min_ndim: int = 4, devices=None) -> Runtime:
    """Put the stand-in in ``sys.modules["cupy"]`` with the GPU reported usable, the launchers'
    kernels compiled through it (``gpucal.gpu.compile``, fresh module cache) and run on the
    host build, and the ``np`` of every gpucal module refusing device arrays. Returns the
    :class:`Runtime` (log, transfers, compiles). Call ``runtime.finish()`` at the end of a test
    (the ``cupy_stand_in`` fixture does)."""
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "_RT", None)
    monkeypatch.setattr(Stream, "null", None, raising=False)
    cupy, rt = make_module(min_ndim, devices)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr("gpucal.gpu.compile._LOADED", {})
    monkeypatch.setattr("gpucal.backend.gpu_unavailable_reason", lambda: None)
    for name in _GPUCAL_MODULES:
        importlib.import_module(name)
    strict_np = _StrictNumpy("numpy")
    for name in ("array", "asarray", "asanyarray", "ascontiguousarray"):
        setattr(strict_np, name, _refusing(name))
    for name, module in list(sys.modules.items()):
        if name.startswith("gpucal") and getattr(module, "np", None) is np:
            monkeypatch.setattr(module, "np", strict_np)
    return rt

