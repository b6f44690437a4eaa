"""The jobs :func:`gpucal.batch` can run on one exposure, and the registry that names them.

A :class:`Job` says how to process one input file into ``output_dir`` (``run``), which
options it accepts, and how much host memory a task needs (``memory``), which batch turns
into a Dask resource request. The built-in jobs reuse the command line's reading and
writing (reference files from the flags or the exposure's header, atomic writes):

=========  =================================  ==========================================
job        calls                              writes (``<stem>`` = exposure base name)
=========  =================================  ==========================================
detector1  :func:`gpucal.detector1`           ``<stem>_rate.fits``, ``<stem>_rateints.fits``
ramp-fit   :func:`gpucal.ramp_fit`            ``<stem>_rate.fits``, ``<stem>_rateints.fits``
                                              (``_fitopt.fits`` with ``save_opt``)
jump       :func:`gpucal.detect_jumps`        ``<stem>_jump.fits``
extract    :func:`gpucal.extract_ramp`        ``<stem>_profile.ecsv`` (or ``.fits``)
resample   :func:`gpucal.resample_images`     ``<stem>_i2d.fits`` (one exposure on its own grid)
cube       :func:`gpucal.build_cube`          ``<stem>_<band>_s3d.fits`` (one exposure's cubes)
=========  =================================  ==========================================

resample and cube run on one exposure each, as calwebb_image2 and calwebb_spec2 do; a mosaic
or cube of many exposures is one job, not a batch. More jobs plug in with
:func:`register_job`; a job's functions must be importable on the workers (module-level
functions of an installed module).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GpucalError, InputError

#: ``run(input_path, output_dir, backend, options) -> written files``.
RunFunction = Callable[[Path, Path, str, dict[str, Any]], list[Path]]
#: ``memory(input_path, backend, options) -> host bytes`` (None: unknown).
MemoryFunction = Callable[[Path, str, Mapping[str, Any]], "int | None"]
#: ``outputs(stem, options) -> file names`` that ``run`` may write into the output directory.
OutputsFunction = Callable[[str, Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Job:
    """One kind of per-exposure work.

    Parameters
    ----------
    name
        The name users pass (``job="ramp-fit"``, ``--job ramp-fit``).
    run
        Processes one input into the output directory and returns the files it wrote.
        Every file must be written atomically (temporary file, then rename).
        :class:`~gpucal.errors.GpucalError` means a problem with this input (not retried).
    description
        One line for ``gpucal batch --help``.
    options
        Option names ``run`` accepts, or a callable giving them (evaluated when checked);
        None accepts any.
    memory
        Host memory one task needs, from the input's shape and the job's chunk plan.
    outputs
        Names of the files ``run`` may write: temporary files that a killed attempt left
        for them are removed before the exposure runs again.
    """

    name: str
    run: RunFunction
    description: str = ""
    options: Collection[str] | Callable[[], Iterable[str]] | None = None
    memory: MemoryFunction | None = None
    outputs: OutputsFunction | None = None

    def option_names(self) -> frozenset[str] | None:
        """The accepted option names, or None when any is accepted."""
        if self.options is None:
            return None
        names = self.options() if callable(self.options) else self.options
        return frozenset(names)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise :class:`InputError` naming any option this job does not take."""
        accepted = self.option_names()
        unknown = sorted(set(options) - accepted) if accepted is not None else []
        if unknown:
            raise InputError(
                f"job {self.name!r} does not take option(s) {', '.join(unknown)}; "
                f"it takes: {', '.join(sorted(accepted)) or 'none'}"
            )

    def output_names(self, stem: str, options: Mapping[str, Any]) -> list[str]:
        """The files ``run`` may write for the exposure ``stem`` (empty when not declared)."""
        return [] if self.outputs is None else list(self.outputs(stem, options))

    def memory_bytes(self, path: Path, backend: str, options: Mapping[str, Any]) -> int | None:
        """Host bytes one task needs (None when unknown or the input cannot be read)."""
        if self.memory is None:
            return None
        try:
            return self.memory(path, backend, options)
        except (GpucalError, OSError):  # unreadable input: its task reports the error
            return None


JOBS: dict[str, Job] = {}


def register_job(job: Job, *, replace: bool = False) -> Job:
    """Add ``job`` to the registry (``replace=True`` to redefine a name); returns it."""
    if job.name in JOBS and not replace:
        raise InputError(f"a job named {job.name!r} is already registered")
    JOBS[job.name] = job
    return job


def get_job(job: str | Job) -> Job:
    """The registered job of that name (a :class:`Job` passes through)."""
    if isinstance(job, Job):
        return job
    try:
        return JOBS[job]
    except KeyError:
        raise InputError(f"unknown job {job!r}; jobs: {', '.join(sorted(JOBS))}") from None


# --------------------------------------------------------------------------- helpers


def stem(path: str | os.PathLike[str]) -> str:
    """The exposure base name products are named after (``x_uncal.fits`` -> ``x``)."""
    from ..io.paths import strip_product_suffix

    return strip_product_suffix(Path(path).name)


def _ramp_shape(path: Path) -> tuple[int, int, int, int]:
    from ..io.read_ramp import read_ramp

    return read_ramp(path).shape


def _references(path: Path, ramp: Any, options: dict[str, Any], required: bool) -> tuple[Any, Any]:
    """Gain and read-noise files: the options, else R_GAIN/R_READNO next to the exposure."""
    from ..cli import _optional_reference, _reference_path

    find = _reference_path if required else _optional_reference
    found = []
    for kind, keyword in (("gain", "R_GAIN"), ("readnoise", "R_READNO")):
        explicit = options.pop(kind, None)
        found.append(find(kind, None if explicit is None else Path(explicit), keyword, ramp, path))
    return found[0], found[1]


def _keywords(module: str, function: str, *, exclude: Iterable[str], extra: Iterable[str] = ()) -> Callable[[], list[str]]:
    """Option names from a function's keyword parameters (read when first checked)."""
    def names() -> list[str]:
        import importlib

        signature = inspect.signature(getattr(importlib.import_module(module), function))
        return [n for n in signature.parameters if n not in set(exclude)] + list(extra)

    return names


def _task_memory(path: Path, backend: str, options: Mapping[str, Any], *, held_per_pixel: int,
                 held_per_sample: int, cpu_bytes_per_sample: int) -> int:
    """Host bytes of a task: the arrays it holds for the whole exposure (``held_per_pixel``
    counts per pixel and per integration plane), plus the host working set of its row blocks:
    the host budget (``max_memory``), or less for a small exposure. On a GPU that working set is
    the blocks' host copies and pinned staging buffers (fewer bytes a sample than the CPU's
    working set, and bounded by the same budget); the device memory is reserved by ``GPU=1``."""
    from ..chunking import DEFAULT_CPU_MEMORY, parse_memory

    nints, ngroups, ny, nx = _ramp_shape(path)
    samples = nints * ngroups * ny * nx
    held = ny * nx * (1 + nints) * held_per_pixel + samples * held_per_sample
    budget = parse_memory(options.get("max_memory")) or DEFAULT_CPU_MEMORY
    return held + min(budget, samples * cpu_bytes_per_sample)


#: Per pixel of rate and of each rateints plane: four float32 arrays and a uint32 DQ (this
#: also covers the gain, read-noise, sigma, dark and pixel-DQ arrays of the exposure).
_RATE_PIXEL_BYTES = 5 * 4


def _ramp_fit_memory(path: Path, backend: str, options: Mapping[str, Any]) -> int:
    from ..ramp_fitting import CPU_BYTES_PER_SAMPLE

    return _task_memory(path, backend, options, held_per_pixel=_RATE_PIXEL_BYTES, held_per_sample=0,
                        cpu_bytes_per_sample=CPU_BYTES_PER_SAMPLE)


def _jump_memory(path: Path, backend: str, options: Mapping[str, Any]) -> int:
    from ..jump_detection import CPU_BYTES_PER_SAMPLE

    # The new group DQ and the jump marks: one byte a sample each.
    return _task_memory(path, backend, options, held_per_pixel=_RATE_PIXEL_BYTES, held_per_sample=2,
                        cpu_bytes_per_sample=CPU_BYTES_PER_SAMPLE)


def _detector1_memory(path: Path, backend: str, options: Mapping[str, Any]) -> int:
    from ..jump_detection import CPU_BYTES_PER_SAMPLE as JUMP
    from ..ramp_fitting import CPU_BYTES_PER_SAMPLE as FIT

    # An estimate: the calibrated ramp (float32), its group DQ and jump marks, the rate
    # products, and the larger of the jump and ramp-fit working sets.
    return _task_memory(path, backend, options, held_per_pixel=_RATE_PIXEL_BYTES, held_per_sample=6,
                        cpu_bytes_per_sample=max(JUMP, FIT))


def _written_since(before: dict[str, tuple[int, int]], directory: Path, prefix: str) -> list[Path]:
    """Files named ``prefix*`` in ``directory`` that are new or replaced since ``before``."""
    now = _snapshot(directory, prefix)
    return sorted(directory / name for name, ident in now.items() if before.get(name) != ident)


def _snapshot(directory: Path, prefix: str) -> dict[str, tuple[int, int]]:
    # (inode, mtime): an atomic rename gives a new inode, so no clock comparison is needed.
    found = {}
    for path in directory.glob(f"{prefix}*"):
        if path.is_file() and not path.name.startswith("."):
            info = path.stat()
            found[path.name] = (info.st_ino, info.st_mtime_ns)
    return found


# --------------------------------------------------------------------------- jobs


def run_ramp_fit(path: Path, output_dir: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """``gpucal ramp-fit`` on one exposure: ``<stem>_rate.fits``, ``<stem>_rateints.fits``."""
    from .. import ramp_fit
    from ..cli import _expected_products, _fit_provenance, _write_products
    from ..errors import GpucalError
    from ..io import output_prefix
    from ..io.output_safety import check_not_inputs
    from ..ramp import Ramp

    ramp = Ramp.from_fits(path)
    gain, readnoise = _references(path, ramp, options, required=True)
    prefix = output_prefix(path, output_dir)
    check_not_inputs(_expected_products(prefix, bool(options.get("save_opt"))), [path, gain, readnoise])
    result = ramp_fit(ramp, gain, readnoise, backend=backend, **options)
    if result.rate is None:
        raise GpucalError(
            f"nothing could be fitted in {path} (every pixel is saturated in its first group, or "
            "no usable group is left); no product written"
        )
    _fit_provenance(result, gain, readnoise)
    return _write_products(result, prefix, bool(options.get("save_opt")))


def run_jump(path: Path, output_dir: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """``gpucal jump`` on one exposure: ``<stem>_jump.fits`` (a ramp with JUMP_DET flags)."""
    from .. import detect_jumps
    from ..io.output_safety import check_not_inputs
    from ..ramp import Ramp
    from ..refs.resolve import reference_keywords

    ramp = Ramp.from_fits(path)
    gain, readnoise = _references(path, ramp, options, required=True)
    target = output_dir / f"{stem(path)}_jump.fits"
    check_not_inputs([target], [path, gain, readnoise])
    result = detect_jumps(ramp, gain, readnoise, backend=backend, **options)
    result.meta.update(reference_keywords({"gain": gain, "readnoise": readnoise}))
    return [Path(result.to_fits(target, overwrite=True))]


def run_extract(path: Path, output_dir: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """``gpucal extract`` on one exposure: ``<stem>_profile.ecsv`` (``format="fits"``: ``.fits``)."""
    from ..extraction import extract_ramp
    from ..ramp import Ramp

    fmt = str(options.pop("format", "ecsv")).lower()
    if fmt not in ("ecsv", "fits"):
        raise InputError(f"extract: format must be 'ecsv' or 'fits', got {fmt!r}")
    aperture = options.pop("aperture", None)
    if isinstance(aperture, list):  # from JSON or the command line
        aperture = tuple(aperture)
    gain, readnoise = _references(path, Ramp.from_fits(path), options, required=False)
    profile = extract_ramp(path, aperture, gain=gain, readnoise=readnoise, backend=backend, **options)
    return [Path(profile.write(output_dir / f"{stem(path)}_profile.{fmt}", overwrite=True))]


def run_detector1(path: Path, output_dir: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """:func:`gpucal.detector1` on one exposure; it writes its products into ``output_dir``."""
    import gpucal

    prefix = f"{stem(path)}_"
    before = _snapshot(output_dir, prefix)
    gpucal.detector1(path, backend=backend, output_dir=output_dir, **options)
    return _written_since(before, output_dir, prefix)


def run_resample(path: Path, output_dir: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """:func:`gpucal.resample_images` on one ``_cal`` file: ``<stem>_i2d.fits``."""
    from ..resample import resample_images

    product = resample_images([path], backend=backend, **options)
    return [Path(product.to_fits(output_dir / f"{stem(path)}_i2d.fits", overwrite=True))]


def run_cube(path: Path, output_dir: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """:func:`gpucal.build_cube` on one IFU ``_cal`` file: its ``_s3d.fits`` cubes."""
    from ..cube import build_cube

    return [Path(cube.path) for cube in build_cube([path], backend=backend, output_dir=output_dir, **options)]


def _rate_outputs(stem: str, options: Mapping[str, Any]) -> list[str]:
    names = [f"{stem}_rate.fits", f"{stem}_rateints.fits"]
    return names + [f"{stem}_fitopt.fits"] if options.get("save_opt") else names


def _detector1_outputs(stem: str, options: Mapping[str, Any]) -> list[str]:
    names = [f"{stem}_rate.fits", f"{stem}_rateints.fits"]
    return names + [f"{stem}_ramp.fits"] if options.get("save_calibrated_ramp") else names


def _jump_outputs(stem: str, options: Mapping[str, Any]) -> list[str]:
    return [f"{stem}_jump.fits"]


def _extract_outputs(stem: str, options: Mapping[str, Any]) -> list[str]:
    return [f"{stem}_profile.{str(options.get('format', 'ecsv')).lower()}"]


def _i2d_outputs(stem: str, options: Mapping[str, Any]) -> list[str]:
    return [f"{stem}_i2d.fits"]


register_job(Job(
    "detector1", run_detector1, "the whole detector1 pipeline: uncal -> rate/rateints",
    options=("refs", "steps", "save_calibrated_ramp", "max_memory", "max_device_memory"),
    memory=_detector1_memory, outputs=_detector1_outputs,
))
register_job(Job(
    "ramp-fit", run_ramp_fit, "ramp fitting: ramp -> rate/rateints",
    options=_keywords("gpucal.ramp_fitting", "ramp_fit", exclude=("ramp", "backend", "progress", "gain", "readnoise"),
                      extra=("gain", "readnoise")),
    memory=_ramp_fit_memory, outputs=_rate_outputs,
))
register_job(Job(
    "jump", run_jump, "jump detection: ramp -> _jump ramp",
    options=_keywords("gpucal.jump_detection", "detect_jumps", exclude=("ramp", "backend", "progress", "gain",
                                                                         "readnoise"),
                      extra=("gain", "readnoise")),
    memory=_jump_memory, outputs=_jump_outputs,
))
register_job(Job(
    "extract", run_extract, "per-group profile of an aperture: ramp -> _profile table",
    options=_keywords("gpucal.extraction", "extract_ramp", exclude=("ramp", "backend", "err"), extra=("format",)),
    outputs=_extract_outputs,
))
register_job(Job(
    "resample", run_resample, "drizzle one calibrated image onto its own sky grid: _cal -> _i2d",
    options=_keywords("gpucal.resample.mosaic", "resample_images", exclude=("inputs", "backend", "progress")),
    outputs=_i2d_outputs,
))
register_job(Job(
    "cube", run_cube, "IFU cubes of one calibrated exposure: _cal -> _s3d",
    options=_keywords("gpucal.cube.build", "build_cube", exclude=("inputs", "backend", "progress", "output_dir")),
))
