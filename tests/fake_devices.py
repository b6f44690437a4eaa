"""A model of CUDA devices for the CuPy stand-in (tests/fake_cupy.py): what CUDA, CuPy's memory
pools and NVML report, as strictly as they report it.

- :class:`Gpu`: one physical GPU (or MIG instance) with its total memory and the memory other
  processes hold on it.
- :class:`Devices`: a machine of GPUs and one process's view of them. ``CUDA_VISIBLE_DEVICES``
  is read once, when the process starts (:meth:`Devices.start_process`), as CUDA does: entries
  are indices or ``GPU-``/``MIG-`` UUIDs, and the list ends at the first invalid one. Device ids
  are indices into that list; the current device is a stack (``Device(i)`` as a context manager).
- Each visible device has CuPy's device memory pool (:class:`DevicePool`): allocations are
  rounded up to 512 bytes, a freed array's bytes stay cached in the pool (so CUDA's free memory
  does not grow back, and ``pool.free_bytes()`` says how much is reusable), an allocation that
  does not fit raises ``OutOfMemoryError`` after the pool released its cache, and the live and
  peak bytes are recorded (``used``, ``peak``).
- The pinned host pool (:class:`PinnedPool`) caches freed buffers by size until
  ``free_all_blocks()``; ``held`` (live + cached) and its peak are recorded.
- :meth:`Devices.nvml` is a ``pynvml`` stand-in: physical GPUs by NVML index (which knows
  nothing of ``CUDA_VISIBLE_DEVICES``), by UUID or PCI bus id, with their memory.

:meth:`Devices.attach` puts all this into a CuPy stand-in module (tests/fake_cupy.py's modules get
:func:`default_devices` unless given a model): ``cupy.cuda.Device``,
``cupy.cuda.runtime``, the pools, and device and pinned allocations counted through the
module's allocating functions (``empty``, ``zeros``, ``asarray``...). Device arrays that array
operations create (ufuncs, other numpy functions run on the device) are not counted: the
two-stream launchers allocate every block array through those functions.
"""

from __future__ import annotations

import contextlib
import os
import types
import weakref
from dataclasses import dataclass

import numpy as np

#: CuPy rounds every device allocation up to a multiple of this many bytes.
ALLOCATION_UNIT = 512
#: Functions of a CuPy (stand-in) module that return a newly allocated device array.
ALLOCATORS = ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like", "asarray",
              "array", "ascontiguousarray", "arange", "concatenate", "stack", "cumsum", "sort", "argsort")


class OutOfMemoryError(MemoryError):
    """What ``cupy.cuda.memory.OutOfMemoryError`` is: a device allocation that did not fit."""


class CUDARuntimeError(RuntimeError):
    """What ``cupy.cuda.runtime.CUDARuntimeError`` is (e.g. an invalid device ordinal)."""


@dataclass
class Gpu:
    """One physical GPU, or one MIG instance of a physical GPU (``mig_of``: its parent's index)."""

    uuid: str
    pci_bus_id: str
    total: int
    other_used: int = 0
    name: str = "NVIDIA H100 80GB HBM3"
    compute_capability: str = "90"
    mig_of: int | None = None


def _round(nbytes: int) -> int:
    return -(-max(int(nbytes), 1) // ALLOCATION_UNIT) * ALLOCATION_UNIT


class DevicePool:
    """CuPy's memory pool of one device in one process."""

    def __init__(self, gpu: Gpu, devices: Devices):
        self.gpu, self.devices = gpu, devices
        self.used = 0  # bytes of live arrays
        self.cached = 0  # bytes freed by arrays and kept by the pool
        self.peak = 0
        self.limit = 0  # 0: no limit, as CuPy
        self.allocations = 0

    def capacity(self) -> int:
        """Bytes this process's pool could hold at most: what the others leave of the device."""
        return self.devices.capacity(self.gpu)

    def malloc(self, nbytes: int) -> int:
        size = _round(nbytes)
        if self.limit and self.used + size > self.limit:
            raise OutOfMemoryError(f"out of memory allocating {size} bytes (pool limit {self.limit} bytes)")
        if self.cached >= size:
            self.cached -= size
        elif self.capacity() - self.used - self.cached < size:
            self.cached = 0  # CuPy frees its cached blocks and retries once
            if self.capacity() - self.used < size:
                raise OutOfMemoryError(
                    f"out of memory allocating {size:,} bytes on {self.gpu.uuid} ({self.used:,} in use by this "
                    f"process, {self.capacity():,} available to it)")
        self.used += size
        self.allocations += 1
        self.peak = max(self.peak, self.used)
        return size

    def free(self, size: int) -> None:
        self.used -= size
        self.cached += size

    # CuPy's MemoryPool API (per device; the facade picks the current one)
    def free_bytes(self) -> int:
        return self.cached

    def used_bytes(self) -> int:
        return self.used

    def total_bytes(self) -> int:
        return self.used + self.cached

    def free_all_blocks(self, stream=None) -> None:
        self.cached = 0

    def get_limit(self) -> int:
        return self.limit

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        if fraction is not None:
            size = int(fraction * self.gpu.total)
        self.limit = int(size or 0)


class MemoryPool:
    """``cupy.get_default_memory_pool()``: one object, each call on the current device's pool."""

    def __init__(self, devices: Devices):
        self._devices = devices

    def __getattr__(self, name):
        return getattr(self._devices.pool(), name)


class PinnedMemory(bytearray):
    """Page-locked host memory (a bytearray that can be weakly referenced)."""


class PinnedPool:
    """CuPy's pinned memory pool: a freed buffer is kept for reuse by a request of its size."""

    def __init__(self):
        self.live = 0
        self.cached: dict[int, int] = {}
        self.peak_held = 0

    @property
    def held(self) -> int:
        """Pinned bytes this process holds: live buffers and the pool's cached ones."""
        return self.live + sum(size * count for size, count in self.cached.items())

    def malloc(self, size: int) -> None:
        if self.cached.get(size):
            self.cached[size] -= 1
        self.live += size
        self.peak_held = max(self.peak_held, self.held)

    def free(self, size: int) -> None:
        self.live -= size
        self.cached[size] = self.cached.get(size, 0) + 1

    def free_all_blocks(self) -> None:
        self.cached.clear()

    def n_free_blocks(self) -> int:
        return sum(self.cached.values())


class Devices:
    """GPUs of a machine and one process's view of them (see the module docstring)."""

    def __init__(self, gpus: list[Gpu]):
        self.gpus = list(gpus)
        self._tracked: dict[int, weakref.finalize] = {}
        self.start_process()

    # ------------------------------------------------------------------ process
    def start_process(self, environ=None) -> None:
        """A new process: read ``CUDA_VISIBLE_DEVICES``, fresh pools, current device 0."""
        value = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
        self.visible = self._parse_visible(value)
        self.pools = [DevicePool(self.gpus[i], self) for i in self.visible]
        self.pinned = PinnedPool()
        self._current = [0]

    def _parse_visible(self, value: str | None) -> list[int]:
        physical = [i for i, g in enumerate(self.gpus) if g.mig_of is None]
        if value is None:
            return physical
        chosen: list[int] = []
        for entry in (e.strip() for e in value.split(",")):
            if entry.isdigit() and int(entry) < len(physical):
                index = physical[int(entry)]
            else:
                matches = [i for i, g in enumerate(self.gpus) if entry and g.uuid.startswith(entry)]
                if len(matches) != 1:
                    break  # CUDA ignores this entry and every one after it
                index = matches[0]
            if index in chosen:
                break
            chosen.append(index)
        return chosen

    # ------------------------------------------------------------------ memory
    def capacity(self, gpu: Gpu) -> int:
        """What other processes (and MIG siblings' reservations) leave of ``gpu``."""
        return gpu.total - gpu.other_used

    def pool(self, device: int | None = None) -> DevicePool:
        if not self.pools:
            raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return self.pools[self.current() if device is None else self._check(device)]

    def used_on(self, gpu: Gpu) -> int:
        """Bytes this process's pool holds on ``gpu`` (live and cached)."""
        return sum(p.total_bytes() for p in self.pools if p.gpu is gpu)

    def free_memory(self, device: int | None = None) -> int:
        """``cudaMemGetInfo``'s free bytes of a visible device."""
        pool = self.pool(device)
        return pool.capacity() - pool.total_bytes()

    @property
    def peak(self) -> int:
        """Largest number of live device bytes any device of this process had."""
        return max((p.peak for p in self.pools), default=0)

    def track_device(self, array) -> None:
        """Count ``array``'s buffer as one allocation on the current device, freed when it dies."""
        if not isinstance(array, np.ndarray):
            return
        owner = array
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        if id(owner) in self._tracked:
            return
        pool = self.pool()
        size = pool.malloc(owner.nbytes)
        self._tracked[id(owner)] = weakref.finalize(owner, self._release, id(owner), pool, size)

    def _release(self, key: int, pool: DevicePool, size: int) -> None:
        self._tracked.pop(key, None)
        pool.free(size)

    def track_pinned(self, memory) -> None:
        size = len(memory)
        self.pinned.malloc(size)
        weakref.finalize(memory, self.pinned.free, size)

    # ------------------------------------------------------------------ CUDA runtime
    def current(self) -> int:
        if not self.visible:
            raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return self._current[-1]

    def _check(self, device: int) -> int:
        if not 0 <= int(device) < len(self.visible):
            raise CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {device}")
        return int(device)

    def gpu(self, device: int | None = None) -> Gpu:
        return self.gpus[self.visible[self.current() if device is None else self._check(device)]]

    def runtime(self, base=None) -> types.SimpleNamespace:
        """``cupy.cuda.runtime``: ``base``'s functions (a stand-in's own), with the device and memory
        queries answered by this model."""
        def get_device_properties(device: int) -> dict:
            gpu = self.gpu(device)
            bus = gpu.pci_bus_id.split(":")
            props = dict(base.getDeviceProperties(0)) if hasattr(base, "getDeviceProperties") else {}
            return {**props, "name": gpu.name.encode(), "totalGlobalMem": gpu.total,
                    "major": int(gpu.compute_capability[:-1]), "minor": int(gpu.compute_capability[-1]),
                    "pciBusID": int(bus[1], 16), "pciDeviceID": int(bus[2].split(".")[0], 16),
                    "pciDomainID": int(bus[0], 16)}

        def set_device(device: int) -> None:
            self._current[-1] = self._check(device)

        ours = dict(getDeviceCount=lambda: len(self.visible), getDevice=self.current, setDevice=set_device,
                    memGetInfo=lambda: (self.free_memory(), self.gpu().total),
                    getDeviceProperties=get_device_properties,
                    deviceGetPCIBusId=lambda device: self.gpu(device).pci_bus_id, CUDARuntimeError=CUDARuntimeError)
        return types.SimpleNamespace(**{**(vars(base) if base is not None else {}), **ours})

    def device_class(self, base: type | None = None) -> type:
        """``cupy.cuda.Device``: ``Device()`` is the current device; ``with Device(i):`` makes ``i``
        current until the block ends; ``synchronize`` is ``base``'s (a stand-in's own) when given."""
        devices = self

        class Device:
            def __init__(self, device: int | None = None):
                self.id = devices.current() if device is None else devices._check(device)

            @property
            def compute_capability(self) -> str:
                return devices.gpu(self.id).compute_capability

            @property
            def pci_bus_id(self) -> str:
                return devices.gpu(self.id).pci_bus_id

            @property
            def mem_info(self) -> tuple[int, int]:
                return devices.free_memory(self.id), devices.gpu(self.id).total

            def use(self) -> None:
                devices._current[-1] = self.id

            def synchronize(self) -> None:
                if base is not None:
                    base(0).synchronize()

            def __enter__(self):
                devices._current.append(self.id)
                return self

            def __exit__(self, *exc):
                devices._current.pop()
                return False

            def __eq__(self, other):
                return isinstance(other, Device) and other.id == self.id

            def __hash__(self):
                return hash(self.id)

        return Device

    # ------------------------------------------------------------------ NVML
    def nvml(self) -> types.ModuleType:
        """A ``pynvml`` stand-in over the physical GPUs (NVML's numbering ignores
        ``CUDA_VISIBLE_DEVICES``); a MIG instance is found by its UUID only."""
        devices = self
        nvml = types.ModuleType("pynvml")
        state = {"init": 0}

        class NVMLError(Exception):
            pass

        class Handle:
            def __init__(self, index: int):
                self.index = index

        def need_init():
            if not state["init"]:
                raise NVMLError("Uninitialized")

        def physical() -> list[int]:
            return [i for i, g in enumerate(devices.gpus) if g.mig_of is None]

        def by_index(index: int) -> Handle:
            need_init()
            if not 0 <= index < len(physical()):
                raise NVMLError("Invalid Argument")
            return Handle(physical()[index])

        def by_key(attribute: str):
            def find(value) -> Handle:
                need_init()
                value = value.decode() if isinstance(value, bytes) else str(value)
                for i, gpu in enumerate(devices.gpus):
                    if getattr(gpu, attribute).lower() == value.lower():
                        return Handle(i)
                raise NVMLError("Not Found")
            return find

        def memory(handle: Handle) -> types.SimpleNamespace:
            need_init()
            gpu = devices.gpus[handle.index]
            parts = [gpu] + [g for g in devices.gpus if g.mig_of == handle.index]
            used = sum(g.other_used + devices.used_on(g) for g in parts)
            return types.SimpleNamespace(total=gpu.total, used=used, free=gpu.total - used)

        def init():
            state["init"] += 1

        def shutdown():
            need_init()
            state["init"] -= 1

        nvml.NVMLError = NVMLError
        nvml.nvmlInit, nvml.nvmlShutdown = init, shutdown
        nvml.nvmlDeviceGetCount = lambda: (need_init(), len(physical()))[1]
        nvml.nvmlDeviceGetHandleByIndex = by_index
        nvml.nvmlDeviceGetHandleByUUID = by_key("uuid")
        nvml.nvmlDeviceGetHandleByPciBusId = by_key("pci_bus_id")
        nvml.nvmlDeviceGetMemoryInfo = memory
        nvml.nvmlDeviceGetUUID = lambda handle: (need_init(), devices.gpus[handle.index].uuid)[1]
        nvml.nvmlDeviceGetName = lambda handle: (need_init(), devices.gpus[handle.index].name)[1]
        return nvml

    # ------------------------------------------------------------------ installation
    def attach(self, cupy) -> types.ModuleType:
        """Give the CuPy stand-in module ``cupy`` these devices: ``cuda.Device``, ``cuda.runtime``,
        ``cuda.memory.OutOfMemoryError``, the default pools, and allocations counted through its
        allocating functions and ``cuda.alloc_pinned_memory``. Attaching again (this model, or
        another in place of the one attached) counts functions replaced since. Returns ``cupy``."""
        for name in ALLOCATORS:
            make = cupy.__dict__.get(name)
            if make is not None and getattr(make, "counted_by", None) is not self:
                setattr(cupy, name, self._counted(getattr(make, "uncounted", make)))
        cuda = cupy.cuda
        alloc_pinned = getattr(cuda, "alloc_pinned_memory", None)
        if getattr(alloc_pinned, "counted_by", None) is not self:
            cuda.alloc_pinned_memory = self._counted_pinned(getattr(alloc_pinned, "uncounted", alloc_pinned)
                                                            or PinnedMemory)
        if not hasattr(cuda, "_base_device"):  # the stand-in's own, before the first attach
            cuda._base_device, cuda._base_runtime = getattr(cuda, "Device", None), getattr(cuda, "runtime", None)
        cuda.Device = self.device_class(cuda._base_device)
        cuda.runtime = self.runtime(cuda._base_runtime)
        cuda.memory = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError)
        pool = MemoryPool(self)
        cupy.get_default_memory_pool = lambda: pool
        cupy.get_default_pinned_memory_pool = lambda: self.pinned
        return cupy

    def _counted(self, make):
        def allocate(*args, **kwargs):
            array = make(*args, **kwargs)
            self.track_device(array)
            return array

        allocate.counted_by, allocate.uncounted = self, make
        return allocate

    def _counted_pinned(self, alloc):
        def alloc_pinned_memory(nbytes: int):
            memory = alloc(nbytes)
            if type(memory) is bytearray:  # cannot be weakly referenced: the same bytes in a subclass that can
                memory = PinnedMemory(memory)
            self.track_pinned(memory)
            return memory

        alloc_pinned_memory.counted_by, alloc_pinned_memory.uncounted = self, alloc
        return alloc_pinned_memory


def default_devices() -> Devices:
    """One GPU with 8 GiB free: what tests/fake_cupy.py's modules get unless given others."""
    return Devices(h100s([8 * 2**30]))


def h100s(free: list[int], total: int = 80 * 2**30) -> list[Gpu]:
    """Physical GPUs with ``free[i]`` bytes left by other processes on GPU ``i``."""
    return [Gpu(uuid=f"GPU-{i:08x}-0000-0000-0000-00000000000{i}", pci_bus_id=f"00000000:{0x19 + 0x20 * i:02X}:00.0",
                total=total, other_used=total - f) for i, f in enumerate(free)]


@contextlib.contextmanager
def visible(monkeypatch, devices: Devices, value: str | None):
    """Run a block as a new process that sees ``CUDA_VISIBLE_DEVICES=value`` (unset for None)."""
    if value is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    devices.start_process()
    yield devices
