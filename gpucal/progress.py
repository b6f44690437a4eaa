"""Progress reporting for long fits: a callable that takes ``(done, total)``.

:class:`ProgressReporter` is what the CLI hands to ``ramp_fit(..., progress=...)``. It
draws a tqdm bar when tqdm is installed (``pip install gpucal[progress]``) and stderr is
a terminal, and otherwise logs a line at INFO level about every 10 % of the work. It never
prints on its own.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

#: A progress callback: ``progress(done, total)``, e.g. pixels fitted so far and in all.
ProgressCallback = Callable[[int, int], None]

log = logging.getLogger(__name__)


def _tqdm_class() -> Any | None:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _stderr_is_tty() -> bool:
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class ProgressReporter:
    """Report ``done`` out of ``total`` units of work; call it as ``reporter(done, total)``.

    Parameters
    ----------
    total
        Expected number of units (pixels for ramp fitting). A different ``total`` passed
        to a call replaces it.
    desc
        Label for the bar or the log lines.
    unit
        Unit name shown with the counts.
    enabled
        False turns the reporter into a no-op (``-q`` on the command line).
    use_tqdm
        True/False forces the choice; None (default) uses tqdm when it imports and
        stderr is a terminal.
    step
        Fraction of ``total`` between two log lines in logging mode.
    logger
        Logger for logging mode (default: this module's).
    """

    def __init__(
        self,
        total: int | None = None,
        desc: str = "progress",
        unit: str = "it",
        *,
        enabled: bool = True,
        use_tqdm: bool | None = None,
        step: float = 0.1,
        logger: logging.Logger | None = None,
    ) -> None:
        if not 0.0 < step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {step}")
        self.total = int(total) if total else None
        self.desc = desc
        self.label = desc
        self.unit = unit
        self.enabled = enabled
        self.done = 0
        self._log = logger or log
        self._nsteps = max(1, round(1.0 / step))
        self._last_bucket = 0
        self._start = time.perf_counter()
        self._bar = None
        self._redirect = None
        if enabled:
            tqdm = _tqdm_class() if use_tqdm is not False else None
            if tqdm is not None and (use_tqdm or _stderr_is_tty()):
                self._bar = tqdm(
                    total=self.total, desc=desc, unit=unit, unit_scale=True,
                    dynamic_ncols=True, leave=False, file=sys.stderr,
                )
                # Log lines written while the bar is shown go above it, not through it.
                from tqdm.contrib.logging import logging_redirect_tqdm

                self._redirect = logging_redirect_tqdm(tqdm_class=tqdm)
                self._redirect.__enter__()

    @property
    def uses_tqdm(self) -> bool:
        """True when a tqdm bar is drawn (rather than log lines)."""
        return self._bar is not None

    def __call__(self, done: int, total: int | None = None) -> None:
        """Record that ``done`` units (cumulative) out of ``total`` are finished."""
        if total:
            total = int(total)
            if total != self.total:
                self.total = total
                if self._bar is not None:
                    self._bar.total = total
                    self._bar.refresh()
        done = int(done)
        advance = done - self.done
        self.done = done
        if not self.enabled:
            return
        if self._bar is not None:
            if advance:
                self._bar.update(advance)
            return
        if not self.total:
            return
        percent = 100 * min(done, self.total) // self.total  # floored: a line never shows the next bucket
        # Integer buckets of `step` of the total: one log line each time a new one is reached.
        bucket = min(done, self.total) * self._nsteps // self.total
        if bucket > self._last_bucket:
            self._last_bucket = bucket
            elapsed = time.perf_counter() - self._start
            self._log.info(
                "%s: %3d%% (%d/%d %s, %.1f s)",
                self.label, percent, done, self.total, self.unit, elapsed,
            )

    def stage(self, name: str) -> None:
        """Say which stage of the work runs now: bars and log lines read ``"<desc> <name>"``."""
        self.label = f"{self.desc} {name}"
        if self._bar is not None:
            self._bar.set_description(self.label)

    def close(self) -> None:
        """Remove the bar (if any); further calls only count."""
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StagedProgress:
    """Consecutive stages of one run reported through one ``progress(done, total)`` callback.

    Each stage fills an equal share (``size`` units) of ``size * len(stages)``:
    :meth:`stage` returns a callback that takes the stage's own ``(done, total)`` and
    rescales it into that share, so a bar or the log lines keep moving through every stage
    (e.g. detector1's group-level steps, then jump, then ramp fitting). A callback with a
    ``stage(name)`` method (:class:`ProgressReporter`) is told each stage's name.
    """

    def __init__(self, progress: ProgressCallback | None, stages: Sequence[str], size: int) -> None:
        self._progress = progress
        self._stages = list(stages)
        self._size = max(1, int(size))

    def stage(self, name: str) -> ProgressCallback | None:
        """The callback of stage ``name`` (None when there is no overall callback)."""
        progress = self._progress
        if progress is None:
            return None
        offset = self._stages.index(name) * self._size
        total = len(self._stages) * self._size
        if callable(getattr(progress, "stage", None)):
            progress.stage(name)

        def report(done: int, stage_total: int | None = None) -> None:
            fraction = min(done, stage_total) / stage_total if stage_total else 1.0
            progress(offset + int(fraction * self._size), total)

        report(0, 1)
        return report
