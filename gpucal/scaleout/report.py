"""What a batch did: each exposure done, skipped or failed, with timings and errors."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..io.atomic import atomic_write

Status = Literal["done", "skipped", "failed"]


@dataclass
class TaskRecord:
    """One exposure of a batch.

    Parameters
    ----------
    input
        The exposure's path.
    status
        ``"done"`` (processed now), ``"skipped"`` (complete from an earlier run) or ``"failed"``.
    outputs
        Product paths (done and skipped).
    seconds
        Wall time of the successful or last failed attempt on its worker (None when unknown,
        e.g. when the worker died).
    started
        Unix time the attempt started on its worker.
    worker, host, pid
        Where it ran.
    error
        ``"ExceptionType: message"`` of a failure.
    traceback
        The failure's traceback, when it came back.
    """

    input: str
    status: Status
    outputs: list[str] = field(default_factory=list)
    seconds: float | None = None
    started: float | None = None
    worker: str | None = None
    host: str | None = None
    pid: int | None = None
    error: str | None = None
    traceback: str | None = None


@dataclass
class BatchReport:
    """The result of :func:`gpucal.batch`; also written as JSON (:meth:`write_json`).

    Attributes
    ----------
    job, backend, output_dir
        What ran, on which backend setting, writing where.
    cluster_backend
        The backend the tasks ran with (``"gpu"`` or ``"cpu"``), decided once for the cluster
        from ``backend`` and its workers; None when nothing was submitted.
    done, skipped, failed
        One :class:`TaskRecord` per exposure, in input order.
    scheduler, dashboard
        The Dask scheduler's address and dashboard link (None when nothing was submitted).
    workers
        Number of Dask workers when the tasks were submitted.
    wall_s
        Wall time of the whole batch.
    options
        The job options.
    report_path
        Where the JSON report was written.
    """

    job: str
    backend: str
    output_dir: str
    done: list[TaskRecord] = field(default_factory=list)
    skipped: list[TaskRecord] = field(default_factory=list)
    failed: list[TaskRecord] = field(default_factory=list)
    cluster_backend: str | None = None
    scheduler: str | None = None
    dashboard: str | None = None
    workers: int = 0
    wall_s: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    report_path: str | None = None

    @property
    def ok(self) -> bool:
        """True when no exposure failed."""
        return not self.failed

    @property
    def total(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed)

    def add(self, record: TaskRecord) -> None:
        """File ``record`` under its status."""
        getattr(self, record.status).append(record)

    def sort(self, order: list[str]) -> None:
        """Put each list in the order of the inputs (``order``: input paths)."""
        rank = {name: i for i, name in enumerate(order)}
        for records in (self.done, self.skipped, self.failed):
            records.sort(key=lambda r: rank.get(r.input, len(rank)))

    def summary(self) -> str:
        """One line: counts, wall time and the mean time per processed exposure."""
        line = (f"batch {self.job}: {len(self.done)} done, {len(self.skipped)} skipped, "
                f"{len(self.failed)} failed of {self.total} in {self.wall_s:.1f} s")
        times = [r.seconds for r in self.done if r.seconds is not None]
        if times:
            line += f" ({sum(times) / len(times):.2f} s per exposure on {max(self.workers, 1)} worker(s))"
        if self.cluster_backend:
            line += f", on the {self.cluster_backend.upper()}"
        return line

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["summary"] = {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed)}
        return payload

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON, atomically; returns the path."""
        path = Path(path)
        self.report_path = str(path)
        text = json.dumps(self.to_dict(), indent=2, default=str) + "\n"
        with atomic_write(path) as fh:
            fh.write(text.encode())
        return path

    @classmethod
    def read_json(cls, path: str | os.PathLike[str]) -> BatchReport:
        """A report written by :meth:`write_json`."""
        payload = json.loads(Path(path).read_text())
        payload.pop("summary", None)
        for status in ("done", "skipped", "failed"):
            payload[status] = [TaskRecord(**r) for r in payload.get(status, [])]
        return cls(**payload)
