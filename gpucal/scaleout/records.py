"""Completion records: how a batch knows an exposure is done, so a rerun can skip it.

After a task's products are all in place (each renamed atomically over its final name),
the task writes a small JSON record, also atomically, into ``<output_dir>/.gpucal-batch/``:
the job, its options, the identity of the input as the task found it (size, modification
time, content digest: :mod:`gpucal.scaleout.identity`) and each product's name and identity.
An exposure is complete when its record exists, names the same job and options, its input
is unchanged, and every product it lists is there, unchanged. So a regenerated input, or a
product replaced, truncated or overwritten in place, is computed again. A task killed at
any point leaves either no record (the exposure runs again) or a record whose products are
all complete. Products without a record (written by another tool, or by a run killed
before its last product) are computed again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write, temporary_files
from .identity import file_identity, unchanged

log = logging.getLogger(__name__)

RECORD_DIR = ".gpucal-batch"


def record_path(output_dir: Path, stem: str, job: str) -> Path:
    return output_dir / RECORD_DIR / f"{stem}.{job}.json"


def normalise_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as JSON would give them back (paths as strings, tuples as lists), so a
    record's options compare equal to the next run's."""
    return json.loads(json.dumps(dict(options), default=str, sort_keys=True))


def write_record(output_dir: Path, stem: str, job: str, input_path: Path, options: Mapping[str, Any],
                 outputs: list[Path], input_identity: Mapping[str, Any] | None = None) -> Path:
    """Record that ``outputs`` of ``job`` on ``input_path`` are complete.

    ``input_identity`` is the input's :func:`~gpucal.scaleout.identity.file_identity` taken
    before the job read it (default: now), so that an input changed while the job ran
    counts as changed on the next run.
    """
    payload = {
        "job": job,
        "input": str(input_path),
        "input_identity": dict(input_identity) if input_identity is not None else file_identity(input_path),
        "options": normalise_options(options),
        "outputs": [{"name": p.name, **file_identity(p)} for p in outputs],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = record_path(output_dir, stem, job)
    with atomic_write(path) as fh:
        fh.write((json.dumps(payload, indent=1) + "\n").encode())
    return path


def completed_outputs(output_dir: Path, stem: str, job: str, options: Mapping[str, Any],
                      input_path: Path) -> list[Path] | None:
    """The products of a complete earlier run of ``job`` on the unchanged ``input_path`` with
    the same options, when every one of them is unchanged too; else None."""
    path = record_path(output_dir, stem, job)
    try:
        record = json.loads(path.read_text())
        outputs = [(output_dir / o["name"], o) for o in record["outputs"]]
        same = record["job"] == job and record["options"] == normalise_options(options)
        input_identity = record.get("input_identity")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable completion record %s (%s)", path, exc)
        return None
    if not same:
        log.info("%s: %s ran with other options before; running it again", stem, job)
        return None
    if not unchanged(input_identity, input_path):
        log.info("%s: the input %s changed since %s ran on it; running it again", stem, input_path, job)
        return None
    for product, recorded in outputs:
        if not unchanged(recorded, product):
            log.info("%s: the product %s is missing or changed; running %s again", stem, product.name, job)
            return None
    return [p for p, _ in outputs]


def forget(output_dir: Path, stem: str, job: str) -> None:
    """Drop the record (before products are replaced, so a killed rerun is not 'complete')."""
    record_path(output_dir, stem, job).unlink(missing_ok=True)


def remove_stale_temporaries(output_dir: Path, stem: str, job: str, names: list[str]) -> int:
    """Delete temporary files a killed earlier attempt left for these products (``names``,
    in ``output_dir``) and for the exposure's record. Batch runs one task per exposure, so
    none of them can still be in use."""
    targets = [output_dir / name for name in names] + [record_path(output_dir, stem, job)]
    removed = 0
    for target in targets:
        for tmp in temporary_files(target):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    if removed:
        log.info("%s: removed %d temporary file(s) of an interrupted attempt", stem, removed)
    return removed
