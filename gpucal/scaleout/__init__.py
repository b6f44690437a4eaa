"""Many exposures at once on Dask: :func:`batch` (also ``gpucal.batch``) and its parts.

- :mod:`.jobs`: what can run on one exposure (detector1, ramp-fit, jump, extract) and the
  registry (:func:`register_job`) that new jobs join.
- :mod:`.inputs`: paths, glob patterns and jwst associations -> exposures.
- :mod:`.records`: completion records, so a rerun skips what is done.
- :mod:`.task`: the function each Dask task runs.
- :mod:`.cluster`: the local cluster and the resources each task asks for.
- :mod:`.report`: :class:`BatchReport`, also written as JSON.

The package is not named ``batch`` so that ``gpucal.batch`` stays the function.
Dask (``pip install gpucal[dask]``) is imported only when a batch runs.
"""

from __future__ import annotations

from .jobs import JOBS, Job, get_job, register_job
from .report import BatchReport, TaskRecord
from .run import batch

__all__ = ["JOBS", "BatchReport", "Job", "TaskRecord", "batch", "get_job", "register_job"]
