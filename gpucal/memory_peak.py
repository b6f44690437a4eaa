"""Measure the peak host memory of a run: anonymous resident memory, sampled from ``/proc``.

What ``max_memory`` bounds is anonymous memory (heap and numpy arrays: ``RssAnon`` plus
``RssShmem`` in ``/proc/<pid>/status``), the memory the system cannot get back without swap.
Pages of memory-mapped files (the input exposure, the scratch files a run writes when its
buffers do not fit the budget) are page cache that the kernel writes back and evicts under
pressure; ``ru_maxrss`` counts them too, so it is reported alongside, never as the bound.

:class:`PeakMemory` samples this process every 10 ms in a thread (one small ``/proc`` read,
under 0.1 ms). A forked worker process (ramp fitting) starts with its parent's pages mapped
and shared, so its own memory is its private dirty pages (pages it wrote: its arrays and the
copies of shared pages it touched, from ``/proc/self/smaps_rollup``, read once a block) plus
what a block adds (a PeakMemory of its own); it reports that (:func:`note_worker_growth`), and
at each report the parent's current memory plus the largest figure of every worker so far is
a candidate peak. The result is an estimate (sampling can miss a peak shorter than 10 ms; a
worker's heap kept from an earlier block counts again), within about 10% of an outside
measurement of the whole process tree in the tests' runs. Off Linux nothing is sampled and
the figures are None.
"""

from __future__ import annotations

import resource
import sys
import threading
from types import TracebackType

_SAMPLE_SECONDS = 0.01
_active: list[PeakMemory] = []
_lock = threading.Lock()


def _status_kib(keys: tuple[str, ...], pid: str = "self") -> int | None:
    """Sum of the ``/proc/<pid>/status`` fields ``keys`` in bytes, or None off Linux."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        name, _, value = line.partition(b":")
        if name.decode() in keys:
            total += int(value.split()[0]) * 1024
    return total


def anonymous_bytes() -> int | None:
    """This process's anonymous resident memory (RssAnon + RssShmem) in bytes; None off Linux."""
    return _status_kib(("RssAnon", "RssShmem"))


def private_dirty_bytes() -> int | None:
    """Pages this process wrote and shares with no other (``Private_Dirty``), in bytes; None off Linux."""
    try:
        with open("/proc/self/smaps_rollup", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(b"Private_Dirty:"):
            return int(line.split()[1]) * 1024
    return None


def max_rss_bytes() -> int:
    """Peak resident set of this process so far (``ru_maxrss``, memory-mapped file pages included)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def note_worker_growth(pid: int, nbytes: int | None) -> None:
    """Record that worker process ``pid`` held ``nbytes`` of its own memory at most (measured
    in the worker) in every active measurement of this process."""
    if nbytes is None:
        return
    now = anonymous_bytes()
    with _lock:
        for meter in _active:
            meter.workers[pid] = max(meter.workers.get(pid, 0), int(nbytes))
            if now is not None:
                meter.combined = max(meter.combined or 0, now + sum(meter.workers.values()))


class PeakMemory:
    """Context manager measuring the peak anonymous memory of the code it wraps.

    Attributes (bytes, None off Linux): ``start`` (anonymous memory on entry), ``peak``
    (the largest sample, or of this process plus its workers at a report), ``peak_above_start``;
    ``max_rss`` is ``ru_maxrss`` on exit. ``register=False`` (in a worker) takes no reports.
    """

    def __init__(self, interval: float = _SAMPLE_SECONDS, *, register: bool = True) -> None:
        self.interval = interval
        self.register = register
        self.start: int | None = None
        self.sampled: int | None = None
        self.combined: int | None = None
        self.workers: dict[int, int] = {}
        self.max_rss: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.start = anonymous_bytes()
        self.sampled = self.start
        if self.register:
            with _lock:
                _active.append(self)
        if self.start is not None:
            self._thread = threading.Thread(target=self._run, name="gpucal-peak-memory", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        now = anonymous_bytes()
        if now is not None and self.sampled is not None and now > self.sampled:
            self.sampled = now

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.max_rss = max_rss_bytes()
        if self.register:
            with _lock:
                _active.remove(self)

    @property
    def peak(self) -> int | None:
        return None if self.sampled is None else max(self.sampled, self.combined or 0)

    @property
    def peak_above_start(self) -> int | None:
        return None if self.peak is None or self.start is None else self.peak - self.start

    def summary(self) -> str:
        """``"peak memory 812.0 MiB (+650.3 MiB during the run; ru_maxrss 1.9 GiB)"``, or a note off Linux."""
        if self.peak is None:
            return f"peak memory not measured here (ru_maxrss {format_bytes(self.max_rss or max_rss_bytes())})"
        return (f"peak memory {format_bytes(self.peak)} anonymous (+{format_bytes(self.peak_above_start)} "
                f"during the run; ru_maxrss with mapped files {format_bytes(self.max_rss or max_rss_bytes())})")


def format_bytes(n: float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GiB"  # pragma: no cover
