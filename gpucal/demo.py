"""The built-in demo: run detector1 on a synthetic raw 1x10x512x512 exposure and show the rate image.

``run_demo`` is what ``gpucal demo`` and ``make demo`` run. The raw exposure and its reference
files (:mod:`gpucal.synthetic_uncal`) are generated
reproducibly on first use into a cache (``GPUCAL_CACHE``, see :mod:`gpucal.synthetic`);
products go to ``output_dir``: ``<name>_rate.fits``, ``<name>_rateints.fits`` and a PNG
preview ``<name>_rate.png`` (needs matplotlib: ``pip install gpucal[plot]``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import dq as dqflags

log = logging.getLogger(__name__)


class _BuiltinReferenceNotes(logging.Filter):
    """Reports about the built-in references' deliberately bad pixels (NaN values that exercise
    the NaN handling) logged at INFO, not WARNING: they are the demo's test cases, not a problem
    with the user's data. Attached to the reference readers' loggers for the demo run only."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not any(n in record.getMessage() for n in self.names):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


@contextlib.contextmanager
def _builtin_reference_notes(reference_files) -> Iterator[None]:
    notes = _BuiltinReferenceNotes({Path(p).name for p in reference_files})
    loggers = [logging.getLogger(name) for name in ("gpucal.refs.calib", "gpucal.refs.read")]
    for logger in loggers:
        logger.addFilter(notes)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(notes)


def run_demo(output_dir: str | os.PathLike = "demo_out", backend: str | None = None, *,
             cache_dir: str | os.PathLike | None = None, progress=None, overwrite: bool = True) -> dict[str, Any]:
    """Calibrate the built-in raw exposure with detector1, write its products and a PNG preview.

    Parameters
    ----------
    output_dir
        Directory for the products (created if missing).
    backend
        ``"gpu"``, ``"cpu"``, ``"auto"`` or None (the process-wide default).
    cache_dir
        Where the generated exposure is kept (default: see :func:`gpucal.synthetic.builtin_exposure`).
    progress
        Optional ``progress(done, total)`` callback (see :func:`gpucal.detector1`).
    overwrite
        Replace the products of an earlier run (the command line asks for ``--overwrite``).

    Returns
    -------
    dict
        ``input``, ``shape`` (nints, ngroups, ny, nx), ``backend``, ``seconds`` (detector1 time),
        ``msamples_per_s``, ``valid_fraction`` (pixels with a finite rate and no
        DO_NOT_USE), ``outputs`` (paths written, PNG included) and ``preview`` (the PNG,
        or None without matplotlib).
    """
    import time

    from . import Ramp
    from .io import output_prefix
    from .io.output_safety import check_outputs
    from .pipeline import detector1_result
    from .refs.resolve import HEADER_KEYWORDS
    from .synthetic_uncal import builtin_uncal

    ramp_path = builtin_uncal(cache_dir)
    ramp = Ramp.from_fits(ramp_path)
    log.info("demo: detector1 on %s (%s)", ramp_path.name, "x".join(map(str, ramp.shape)))
    out = Path(output_dir)
    prefix = output_prefix(ramp_path, out)
    outputs = [prefix.parent / f"{prefix.name}_{kind}.fits" for kind in ("rate", "rateints")]
    preview = prefix.parent / f"{prefix.name}_rate.png"
    check_outputs([*outputs, preview], [ramp_path], overwrite=overwrite)  # before the products are computed
    references = [str(ramp.meta[k]) for k in HEADER_KEYWORDS.values() if ramp.meta.get(k)]
    start = time.perf_counter()
    with _builtin_reference_notes(references):
        result = detector1_result(ramp_path, backend=backend, output_dir=out, progress=progress,
                                  overwrite=overwrite)
    elapsed = time.perf_counter() - start

    shape = tuple(int(n) for n in ramp.shape)
    seconds = float(elapsed)
    rate = np.asarray(result.rate.data)
    valid = np.isfinite(rate) & ((np.asarray(result.rate.dq) & dqflags.DO_NOT_USE) == 0)

    title = f"{ramp_path.name}: detector1 rate, {'x'.join(map(str, shape))}, backend={result.backend}"
    if write_preview(rate, preview, title=title):
        outputs.append(preview)
    else:
        preview = None

    summary = {
        "input": str(ramp_path),
        "shape": shape,
        "backend": str(result.backend),
        "seconds": seconds,
        "msamples_per_s": msamples_per_s(shape, seconds),
        "valid_fraction": float(valid.mean()) if valid.size else 0.0,
        "outputs": [str(p) for p in outputs],
        "preview": str(preview) if preview is not None else None,
    }
    log.info(
        "demo: %s on %s in %.2f s (%.1f Msamples/s), %.2f%% valid pixels; wrote %s",
        "x".join(map(str, shape)), summary["backend"], seconds, summary["msamples_per_s"],
        100 * summary["valid_fraction"], ", ".join(Path(p).name for p in summary["outputs"]),
    )
    return summary


def msamples_per_s(shape, seconds: float) -> float:
    """Millions of ramp samples (nints*ngroups*ny*nx) processed per second."""
    samples = int(np.prod(shape, dtype=np.int64))
    return samples / seconds / 1e6 if seconds > 0 else float("inf")


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines for a :func:`run_demo` summary."""
    lines = [
        f"gpucal demo: detector1 calibrated {'x'.join(map(str, summary['shape']))} "
        f"(nints x ngroups x ny x nx) on {summary['backend']}",
        f"  time: {summary['seconds']:.2f} s ({summary['msamples_per_s']:.1f} Msamples/s)",
        f"  valid pixels: {100 * summary['valid_fraction']:.2f}%",
        "  wrote:",
    ]
    lines += [f"    {p}" for p in summary["outputs"]]
    if summary.get("preview") is None:
        lines.append("  (no PNG preview: install matplotlib, e.g. pip install 'gpucal[plot]')")
    return "\n".join(lines)


def _stretch(image: np.ndarray, upper: float = 99.9) -> tuple[float, float, float]:
    """(vmin, vmax, softening) for an asinh display of ``image``.

    The background sets the low end and the softening (median - 2 sigma and 3 sigma, with
    sigma from the median absolute deviation), so noise stays near-linear while bright
    sources are compressed up to the ``upper`` percentile.
    """
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0, 0.05
    median = float(np.median(finite))
    sigma = 1.4826 * float(np.median(np.abs(finite - median)))
    top = float(np.percentile(finite, upper))
    if not sigma > 0:
        sigma = (top - median) / 20.0 if top > median else 1.0
    vmin = median - 2.0 * sigma
    vmax = max(top, median + 10.0 * sigma)
    return vmin, vmax, 3.0 * sigma


def write_preview(image: np.ndarray, path: str | os.PathLike, *, title: str = "",
                  label: str = "DN/s") -> bool:
    """Write a PNG of ``image`` with an asinh stretch (background-scaled, to the 99.9th percentile).

    Uses matplotlib's Agg renderer through a bare ``Figure`` (no pyplot, no global
    backend change). Returns False, with a warning, when matplotlib is not installed.
    """
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import FuncNorm
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'gpucal[plot]'): no PNG preview")
        return False

    image = np.asarray(image, dtype=np.float64)
    vmin, vmax, scale = _stretch(image)

    def forward(x):
        return np.arcsinh((np.asarray(x, dtype=np.float64) - vmin) / scale)

    def inverse(y):
        return np.sinh(np.asarray(y, dtype=np.float64)) * scale + vmin

    # NaN pixels (DO_NOT_USE, saturated) show grey.
    fig = Figure(figsize=(6.4, 5.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown = ax.imshow(np.ma.masked_invalid(image), origin="lower", cmap=colormaps["magma"].with_extremes(bad="0.6"),
                      norm=FuncNorm((forward, inverse), vmin=vmin, vmax=vmax), interpolation="nearest")
    cbar = fig.colorbar(shown, ax=ax, shrink=0.9)
    cbar.set_label(f"{label} (asinh stretch)")
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    if title:
        ax.set_title(title, fontsize=9)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True
