"""The ``gpucal`` command line: ``ramp-fit``, ``extract``, ``jump``, ``detector1``, ``resample``, ``cube``,
``batch``, ``demo``, ``synth``, ``info``.

Outputs follow one rule (:mod:`gpucal.io.output_safety`), checked before any computing: never
onto an input (also through a link), an existing file only with ``--overwrite``, a read-only
file never, and the output directory must be writable.

Exit status: 0 success; 1 the exposure had nothing that could be fitted (no product
written); 2 a usage or input problem (bad arguments, missing or unreadable file, missing
reference file, unavailable backend), reported on stderr in one line without a traceback
(``-v`` adds the traceback); 3 some exposures of a batch failed (the others finished).
Logging is configured here, in :func:`main`, never at import.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import GpucalError, InputError

log = logging.getLogger("gpucal.cli")

PROG = "gpucal"
EXIT_OK = 0
EXIT_NOTHING_FITTED = 1
EXIT_USAGE = 2
EXIT_BATCH_FAILED = 3


class _ExitWith(Exception):
    """A user-facing failure with its exit status (raised inside subcommands)."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def _size_arg(text: str) -> int:
    """argparse type for --max-memory: bytes from ``2GB``, ``512MiB``, ``1073741824``."""
    from .chunking import parse_memory

    try:
        return parse_memory(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _aperture_arg(text: str) -> tuple[float, ...]:
    """argparse type for --aperture: ``x,y`` pixel, ``x,y,r`` circle, ``x0,y0,x1,y1`` rectangle."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (2, 3, 4) or not all(v == v and abs(v) != float("inf") for v in values):
        raise argparse.ArgumentTypeError(
            f"cannot read an aperture from {text!r}: use x,y (pixel), x,y,r (circle) or "
            "x0,y0,x1,y1 (rectangle, inclusive pixel indices)"
        )
    if len(values) == 4:
        return tuple(int(v) if v.is_integer() else v for v in values)
    return values


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return f"{n:.1f} TiB"  # pragma: no cover


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpucal`` command."""
    verbosity = argparse.ArgumentParser(add_help=False)
    group = verbosity.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="log debug messages (and tracebacks of errors)")
    group.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only; no progress")

    overwrite = argparse.ArgumentParser(add_help=False)
    overwrite.add_argument("--overwrite", action="store_true",
                           help="replace outputs that exist (never an input, never a read-only file)")

    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument(
        "--backend", choices=("auto", "cpu", "gpu"), default=None,
        help="where to compute (default: GPUCAL_BACKEND or 'auto': the GPU when CuPy and a device work, else the CPU)",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GPU-accelerated calibration of JWST infrared-detector ramps.",
        epilog="Exit status: 0 success, 1 nothing could be fitted, 2 usage or input error, "
               "3 some exposures of a batch failed.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    rf = sub.add_parser(
        "ramp-fit", parents=[verbosity, backend, overwrite],
        help="fit slopes to a ramp exposure and write _rate/_rateints products",
        description=(
            "Fit up-the-ramp slopes (OLS with optimal weighting, as stcal's OLS_C) and write "
            "{name}_rate.fits and {name}_rateints.fits. Gain and read-noise reference files come "
            "from --gain/--readnoise or else from the exposure's R_GAIN/R_READNO header keywords, "
            "resolved relative to the exposure's directory."
        ),
    )
    rf.add_argument("file", metavar="FILE", type=Path, help="ramp exposure (FITS with SCI, GROUPDQ, PIXELDQ)")
    rf.add_argument("--gain", type=Path, metavar="GAIN.fits", help="gain reference file (e/DN)")
    rf.add_argument("--readnoise", type=Path, metavar="READNOISE.fits", help="read-noise reference file (DN)")
    rf.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                    help="where to write products (default: next to FILE)")
    rf.add_argument("--save-opt", action="store_true", help="also write the optional fit product (_fitopt.fits)")
    rf.add_argument(
        "--no-suppress-one-group", dest="suppress_one_group", action="store_false",
        help="fit ramps that have a single good group instead of flagging them DO_NOT_USE",
    )
    rf.add_argument(
        "--max-memory", type=_size_arg, metavar="SIZE",
        help="host memory the fit may use, e.g. 2GB or 512MB (binary units; default 2 GiB; on the GPU: the "
             "blocks' host copies and pinned staging)",
    )
    rf.add_argument(
        "--max-device-memory", type=_size_arg, metavar="SIZE",
        help="GPU only: device memory for the blocks in flight, e.g. 40GB (default: 70%% of the free memory of "
             "the current GPU, never more than is free)",
    )
    rf.set_defaults(func=_cmd_ramp_fit)

    ex = sub.add_parser(
        "extract", parents=[verbosity, backend, overwrite],
        help="per-group profile of a pixel or region (mean/median/min/max/sum) as a table and plot",
        description=(
            "Collapse the aperture of every group of a ramp exposure with one function and write "
            "the per-group profile (value, uncertainty, pixels used, group mid-time) as ECSV or "
            "FITS, and optionally a PNG plot. Pixels and samples flagged DO_NOT_USE or SATURATED "
            "are excluded. Uncertainties come from the file's ERR extension when it is non-zero, "
            "else from --readnoise/--gain (or the R_READNO/R_GAIN files named in the header, when "
            "they exist next to FILE); without any, they are NaN. Coordinates are 0-based pixel "
            "indices, pixel centres at integers."
        ),
    )
    ex.add_argument("file", metavar="FILE", type=Path, help="ramp exposure (_uncal.fits or _ramp.fits)")
    ex.add_argument(
        "--aperture", type=_aperture_arg, metavar="SPEC", default=None,
        help="x,y (one pixel), x,y,r (circle), x0,y0,x1,y1 (rectangle, inclusive); default: the whole frame; "
             "write negative values as --aperture=-2,5,4",
    )
    ex.add_argument("--function", choices=("mean", "median", "min", "max", "sum"), default="mean",
                    help="how to combine the aperture's samples of a group (default: mean)")
    ex.add_argument("--method", dest="aperture_method", choices=("center", "exact"), default="center",
                    help="circle pixels: centre inside (default) or weighted by exact overlap")
    ex.add_argument("--integration", type=int, metavar="N", default=None,
                    help="0-based integration to extract (default: all)")
    ex.add_argument("--no-dq", dest="use_dq", action="store_false",
                    help="do not exclude DO_NOT_USE / SATURATED pixels and samples")
    ex.add_argument("--gain", type=Path, metavar="GAIN.fits", help="gain reference file (e/DN) for the noise model")
    ex.add_argument("--readnoise", type=Path, metavar="READNOISE.fits",
                    help="read-noise reference file (DN) for the noise model")
    ex.add_argument("-o", "--output", type=Path, metavar="PROFILE",
                    help="write the profile table here (.ecsv or .fits); without -o or --plot it is printed")
    ex.add_argument("--plot", type=Path, metavar="PNG", help="also save a plot of the profile (PNG, PDF, SVG)")
    ex.add_argument("--fit", action="store_true",
                    help="overlay the ramp_fit slope on the plot (needs gain and readnoise)")
    ex.set_defaults(func=_cmd_extract)
    jump = sub.add_parser(
        "jump", parents=[verbosity, backend, overwrite],
        help="flag cosmic-ray jumps in a ramp exposure and write a _jump ramp file",
        description=(
            "Detect jumps with the two-point-difference method (as stcal's detect_jumps_data, "
            "jwst JumpStep defaults) and write {name}_jump.fits, a ramp file whose GROUPDQ carries "
            "JUMP_DET. Gain and read-noise reference files come from --gain/--readnoise or else from "
            "the exposure's R_GAIN/R_READNO header keywords, resolved relative to the exposure's directory."
        ),
    )
    jump.add_argument("file", metavar="FILE", type=Path, help="ramp exposure (FITS with SCI, GROUPDQ, PIXELDQ)")
    jump.add_argument("--gain", type=Path, metavar="GAIN.fits", help="gain reference file (e/DN)")
    jump.add_argument("--readnoise", type=Path, metavar="READNOISE.fits", help="read-noise reference file (DN)")
    jump.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                      help="where to write the _jump.fits file (default: next to FILE)")
    jump.add_argument("--rejection-threshold", type=float, default=4.0, metavar="SIGMA",
                      help="rejection threshold for ramps with >= 4 usable differences (default 4)")
    jump.add_argument("--no-flag-4-neighbors", dest="flag_4_neighbors", action="store_false",
                      help="do not flag the four neighbours of large jumps")
    jump.add_argument("--expand-large-events", action="store_true",
                      help="flag snowballs (NIR large events); needs scikit-image")
    jump.add_argument("--find-showers", action="store_true", help="flag MIRI showers; needs scikit-image")
    jump.add_argument(
        "--max-memory", type=_size_arg, metavar="SIZE",
        help="host memory the detection may use, e.g. 2GB or 512MB (binary units; default 2 GiB; on the GPU: "
             "the blocks' host copies and pinned staging)",
    )
    jump.add_argument(
        "--max-device-memory", type=_size_arg, metavar="SIZE",
        help="GPU only: device memory for the blocks in flight, e.g. 40GB (default: 70%% of the free memory of "
             "the current GPU, never more than is free)",
    )
    jump.set_defaults(func=_cmd_jump)

    d1 = sub.add_parser(
        "detector1", parents=[verbosity, backend, overwrite],
        help="calibrate a raw _uncal exposure to _rate/_rateints products (calwebb_detector1)",
        description=(
            "Run the detector1 steps (jwst calwebb_detector1 order and skip defaults) and write "
            "{name}_rate.fits and {name}_rateints.fits. References come from --override-TYPE, else "
            "the exposure's R_<TYPE> keywords (files next to it), a local CRDS cache (crds installed, "
            "CRDS_PATH set), or the built-in synthetic set for the demo exposure."
        ),
    )
    d1.add_argument("file", metavar="FILE", type=Path, help="raw exposure (_uncal.fits) or a _ramp.fits")
    d1.add_argument("--skip", action="append", default=[], metavar="STEP",
                    help="a step to skip; repeat for more, e.g. --skip refpix --skip jump")
    d1.add_argument("--run", action="append", default=[], metavar="STEP",
                    help="a step to run that would be skipped (off by default, e.g. ipc, or already COMPLETE "
                         "in FILE's S_* keywords); repeatable")
    d1.add_argument("--param", action="append", default=[], metavar="STEP.NAME=VALUE",
                    help="a step parameter with jwst's name, e.g. --param jump.rejection_threshold=5")
    from .refs.resolve import REFTYPES

    for reftype in REFTYPES:
        d1.add_argument(f"--override-{reftype}", type=Path, metavar="PATH", dest=f"override_{reftype}",
                        help=f"{reftype.upper()} reference file to use")
    d1.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                    help="where to write products (default: next to FILE)")
    d1.add_argument("--save-calibrated-ramp", action="store_true", help="also write {name}_ramp.fits")
    d1.add_argument("--max-memory", type=_size_arg, metavar="SIZE",
                    help="host memory budget, e.g. 2GB (binary units; default 2 GiB)")
    d1.add_argument("--max-device-memory", type=_size_arg, metavar="SIZE",
                    help="GPU only: device memory budget, e.g. 40GB (default: 70%% of the free memory of the "
                         "current GPU, never more than is free)")
    d1.set_defaults(func=_cmd_detector1)

    _add_batch_parser(sub, [verbosity, backend])

    cube = sub.add_parser(
        "cube", parents=[verbosity, backend, overwrite],
        help="build IFU spectral cubes (_s3d.fits) from MIRI MRS or NIRSpec IFU _cal files",
        description=(
            "Combine calibrated IFU exposures (_cal.fits with their assign_wcs WCS) into spectral "
            "cubes as jwst's cube_build step does, and write {name}_ch{N}-{band}_s3d.fits (NIRSpec {name}_{grating}-{filter}_s3d.fits). Sampling "
            "and regions of interest come from the CUBEPAR reference (--cubepars, else the local "
            "CRDS cache)."
        ),
    )
    cube.add_argument("files", metavar="FILE", type=Path, nargs="+", help="IFU _cal.fits exposures")
    cube.add_argument("--channel", metavar="CH", help="MIRI channel(s), e.g. 1 or 1,2 (default: all)")
    cube.add_argument("--band", metavar="BAND", help="MIRI band(s): short, medium, long (default: all)")
    cube.add_argument("--grating", metavar="G", help="NIRSpec grating(s), e.g. g140h (default: all)")
    cube.add_argument("--filter", metavar="F", help="NIRSpec filter(s), e.g. f100lp (default: all)")
    cube.add_argument("--weighting", choices=("drizzle", "emsm", "msm"), default="drizzle",
                      help="how points are combined (default: drizzle)")
    cube.add_argument("--coord-system", choices=("skyalign", "ifualign"), default="skyalign",
                      help="cube axes: north up (skyalign, default) or along the slices (ifualign)")
    cube.add_argument("--output-type", choices=("band", "channel", "grating", "multi"), default="band",
                      help="one cube per band (default), per channel or grating, or one 'multi' cube of "
                           "all bands on the CUBEPAR wavelength table")
    cube.add_argument("--cubepars", type=Path, metavar="CUBEPAR.fits", help="cube parameter reference file")
    cube.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                      help="where to write the cubes (default: next to the first FILE)")
    cube.set_defaults(func=_cmd_cube)

    demo = sub.add_parser(
        "demo", parents=[verbosity, backend, overwrite],
        help="run detector1 on the built-in raw 1x10x512x512 demo exposure; write products and a PNG preview",
    )
    demo.add_argument("-o", "--output-dir", type=Path, default=Path("demo_out"), metavar="DIR",
                      help="output directory (default: demo_out)")
    demo.set_defaults(func=_cmd_demo)

    rs = sub.add_parser(
        "resample", parents=[verbosity, backend, overwrite],
        help="drizzle _cal images onto one sky grid and write an _i2d mosaic (as jwst's resample step)",
        description=(
            "Combine calibrated images (_cal.fits, jwst ImageModel with a gwcs) onto the grid that "
            "jwst's ResampleStep would choose, with its weights, variance and error arrays, context "
            "and exposure-time maps, and write one _i2d.fits (a jwst ImageModel)."
        ),
    )
    rs.add_argument("files", metavar="FILE", type=Path, nargs="+", help="calibrated images (_cal.fits)")
    rs.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_i2d.fits", help="mosaic to write")
    rs.add_argument("--kernel", choices=("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3"),
                    default="square", help="drizzle kernel (default square)")
    rs.add_argument("--pixfrac", type=float, default=1.0, help="drop size as a fraction of the input pixel (default 1)")
    rs.add_argument("--pixel-scale-ratio", type=float, default=1.0,
                    help="output / input pixel scale (default 1)")
    rs.add_argument("--pixel-scale", type=float, default=None, metavar="ARCSEC",
                    help="absolute output pixel scale in arcsec (overrides --pixel-scale-ratio)")
    rs.add_argument("--rotation", type=float, default=None, metavar="DEG",
                    help="position angle of the output +y axis (default: the first input's orientation)")
    rs.add_argument("--weight-type", choices=("ivm", "exptime"), default="ivm", help="input weighting (default ivm)")
    rs.add_argument("--fillval", default="NaN", help="value of output pixels without data (default NaN)")
    rs.set_defaults(func=_cmd_resample)

    _add_synth_parser(sub, [verbosity, overwrite])

    info = sub.add_parser("info", parents=[verbosity], help="show versions, the backend in use and the GPU")
    info.set_defaults(func=_cmd_info)
    return parser


def _option_arg(text: str) -> tuple[str, Any]:
    """argparse type for --option: ``KEY=VALUE``, VALUE read as JSON when it parses."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _add_batch_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    from .scaleout.jobs import JOBS

    jobs = "; ".join(f"{name}: {job.description}" for name, job in sorted(JOBS.items()))
    bt = sub.add_parser(
        "batch", parents=parents,
        help="run a job on many exposures with Dask (local cores/GPUs or a cluster), resumably",
        description=(
            "Run one job per exposure on a Dask cluster: a local one (one worker per GPU with "
            "dask-cuda, else one per core) or the scheduler at --scheduler. Exposures whose "
            "products are complete from an earlier run are skipped (unless --overwrite); failed "
            "exposures are retried, then reported while the others finish. A JSON report goes to "
            f"DIR/batch_JOB_report.json. Jobs: {jobs}."
        ),
    )
    bt.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="exposure files, glob patterns (quote them) or jwst association .json files")
    bt.add_argument("--job", choices=sorted(JOBS), default="detector1", help="what to run (default: detector1)")
    bt.add_argument("-o", "--output-dir", type=Path, metavar="DIR", required=True, help="where products go")
    bt.add_argument("--scheduler", metavar="ADDRESS",
                    help="Dask scheduler address (tcp://host:8786) or scheduler file; default: a local cluster")
    bt.add_argument("--workers", type=int, metavar="N", help="workers of the local cluster (default: one per "
                    "core, or one per GPU)")
    bt.add_argument("--overwrite", action="store_true", help="run exposures that are already complete too")
    bt.add_argument("--retries", type=int, default=2, metavar="N",
                    help="times Dask reruns a task after an unexpected error (default 2)")
    bt.add_argument("--gain", type=Path, metavar="GAIN.fits", help="gain reference file for every exposure")
    bt.add_argument("--readnoise", type=Path, metavar="READNOISE.fits",
                    help="read-noise reference file for every exposure")
    bt.add_argument("--max-memory", type=_size_arg, metavar="SIZE", help="host memory each task may use, e.g. 2GB")
    bt.add_argument("--max-device-memory", type=_size_arg, metavar="SIZE",
                    help="GPU only: device memory each task may use (default: 70%% of its GPU's free memory)")
    bt.add_argument("--option", dest="options", type=_option_arg, action="append", default=[],
                    metavar="KEY=VALUE", help="another option of the job (VALUE as JSON when it parses), repeatable")
    bt.add_argument("--report", type=Path, metavar="PATH", help="where to write the JSON report")
    bt.set_defaults(func=_cmd_batch)


def _add_synth_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    from .synthetic_uncal import SYNTH_INSTRUMENTS

    sy = sub.add_parser(
        "synth", parents=parents,
        help="write a synthetic raw _uncal exposure of any shape with matching reference files, to try every command",
        description=(
            "Write DIR/{name}_uncal.fits (a raw exposure with stars, cosmic rays, saturation, bias, dark and "
            "reference pixels) and its MASK, SATURATION, SUPERBIAS, LINEARITY, DARK, GAIN and READNOISE "
            "references next to it as {name}_{type}.fits, named by the exposure's R_* keywords, so that "
            "'gpucal detector1 DIR/{name}_uncal.fits' finds them. The references have a few deliberately bad "
            "(NaN) pixels. The same arguments write the same bytes."
        ),
    )
    sy.add_argument("-o", "--output-dir", type=Path, metavar="DIR", required=True, help="where the files go")
    sy.add_argument("--shape", type=int, nargs=4, metavar=("NINTS", "NGROUPS", "NY", "NX"), default=[2, 10, 256, 256],
                    help="the exposure's shape (default 2 10 256 256)")
    sy.add_argument("--instrument", type=str.upper, choices=sorted(SYNTH_INSTRUMENTS), default="NIRCAM",
                    help="default NIRCAM")
    sy.add_argument("--detector", metavar="NAME",
                    help="a detector of the instrument (default NRCA1, NIS, NRS1 or MIRIMAGE)")
    sy.add_argument("--name", metavar="NAME", help="base name of the files (default synth_<detector>)")
    sy.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sy.set_defaults(func=_cmd_synth)


# --------------------------------------------------------------------------- helpers


def _load_ramp_fit():
    """The ramp_fit function (a seam for tests)."""
    from . import ramp_fit

    return ramp_fit


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # gpucal's own messages at the requested level; other libraries stay at WARNING.
    logging.getLogger("gpucal").setLevel(level)


def _reference_path(kind: str, explicit: Path | None, keyword: str, ramp: Any, ramp_path: Path) -> Path:
    """The gain/readnoise file: the flag, else the header keyword next to the exposure."""
    if explicit is not None:
        if not explicit.is_file():
            raise FileNotFoundError(f"{kind} reference file not found: {explicit}")
        return explicit
    flag = f"--{kind}"
    name = str(ramp.meta.get(keyword) or "").strip()
    if not name:
        raise InputError(
            f"no {kind} reference: pass {flag} FILE, or set {keyword} in the primary header of "
            f"{ramp_path} to the name of a {kind} file next to it"
        )
    path = ramp_path.parent / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{kind} reference file not found: {path} (named by {keyword} in {ramp_path}); pass {flag} FILE"
        )
    return path


def _expected_products(prefix: Path, save_opt: bool) -> list[Path]:
    suffixes = ["_rate.fits", "_rateints.fits"] + (["_fitopt.fits"] if save_opt else [])
    return [prefix.parent / (prefix.name + s) for s in suffixes]


def _fit_provenance(result: Any, gain: Path, readnoise: Path) -> None:
    """Record in each product of a ramp fit that the fit ran (S_RAMP) and with which files (R_*)."""
    from .refs.resolve import reference_keywords

    cards = {"S_RAMP": "COMPLETE", **reference_keywords({"gain": gain, "readnoise": readnoise})}
    for name in ("rate", "rateints", "fitopt"):
        meta = getattr(getattr(result, name, None), "meta", None)
        if isinstance(meta, dict):
            meta.update(cards)


def _write_products(result: Any, prefix: Path, save_opt: bool, overwrite: bool = True) -> list[Path]:
    """Write the products into prefix's directory (created if missing); on failure remove
    the files (and the directory) this call created, then re-raise."""
    directory = prefix.parent
    made_directory = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    expected = _expected_products(prefix, save_opt)
    existed = {p for p in expected if p.exists()}
    try:
        return [Path(p) for p in result.to_fits(prefix, overwrite=overwrite)]
    except BaseException:
        for path in expected:
            if path not in existed:
                path.unlink(missing_ok=True)
        if made_directory and not any(directory.iterdir()):
            directory.rmdir()
        raise


def _open_ramp(path: Path) -> Any:
    """The exposure at ``path``, or a user error naming the file and the problem."""
    from .ramp import Ramp

    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise InputError(f"not a file: {path}")
    try:
        return Ramp.from_fits(path)
    except (GpucalError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        raise _ExitWith(message if path.name in message else f"{path}: {message}") from exc


def _required_references(args: argparse.Namespace, ramp: Any, path: Path) -> tuple[Path, Path]:
    """The gain and read-noise files of ``ramp-fit`` and ``jump``, logged with the exposure."""
    gain = _reference_path("gain", args.gain, "R_GAIN", ramp, path)
    readnoise = _reference_path("readnoise", args.readnoise, "R_READNO", ramp, path)
    log.info("ramp %s: %s %s, gain %s, readnoise %s", path.name, ramp.instrument,
             "x".join(map(str, ramp.shape)), gain.name, readnoise.name)
    return gain, readnoise


# --------------------------------------------------------------------------- commands


def _cmd_ramp_fit(args: argparse.Namespace) -> int:
    from .backend import resolve_backend
    from .demo import msamples_per_s
    from .io import output_prefix
    from .io.output_safety import check_outputs
    from .progress import ProgressReporter

    # Fail fast on an unusable backend, before reading anything.
    backend = resolve_backend(args.backend)

    path: Path = args.file
    ramp = _open_ramp(path)
    gain, readnoise = _required_references(args, ramp, path)
    out_dir: Path = args.output_dir if args.output_dir is not None else path.parent
    prefix = output_prefix(path, out_dir)
    check_outputs(_expected_products(prefix, args.save_opt), [path, gain, readnoise], overwrite=args.overwrite)

    ramp_fit = _load_ramp_fit()
    start = time.perf_counter()
    with ProgressReporter(total=ramp.ny * ramp.nx, desc="ramp_fit", unit="px", enabled=not args.quiet) as progress:
        result = ramp_fit(
            ramp, gain, readnoise,
            backend=backend,
            save_opt=args.save_opt,
            suppress_one_group=args.suppress_one_group,
            max_memory=args.max_memory,
            max_device_memory=args.max_device_memory,
            progress=progress,
        )
    wall = time.perf_counter() - start

    if result.rate is None:
        raise _ExitWith(
            f"nothing could be fitted in {path} (every pixel is saturated in its first group, or "
            "no usable group is left); no product written", EXIT_NOTHING_FITTED,
        )

    _fit_provenance(result, gain, readnoise)
    written = _write_products(result, prefix, args.save_opt, overwrite=args.overwrite)
    for p in written:
        log.info("wrote %s", p)

    seconds = float(result.elapsed_s or wall)
    log.info(
        "ramp-fit %s on %s: %.2f s, %.1f Msamples/s",
        "x".join(map(str, ramp.shape)), result.backend, seconds, msamples_per_s(ramp.shape, seconds),
    )
    return EXIT_OK


def _optional_reference(kind: str, explicit: Path | None, keyword: str, ramp: Any, ramp_path: Path) -> Path | None:
    """An explicit reference file, else the header's (when it exists next to the file), else None."""
    if explicit is not None:
        return _reference_path(kind, explicit, keyword, ramp, ramp_path)
    name = str(ramp.meta.get(keyword) or "").strip()
    if name and (ramp_path.parent / name).is_file():
        return ramp_path.parent / name
    return None


#: Plot formats matplotlib's Agg-based canvases write (no suffix: PNG).
_PLOT_SUFFIXES = ("", ".png", ".pdf", ".svg", ".svgz", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def _cmd_extract(args: argparse.Namespace) -> int:
    from .backend import resolve_backend
    from .extraction import extract_ramp
    from .io.output_safety import check_outputs

    backend = resolve_backend(args.backend)
    path: Path = args.file
    if args.output is not None and args.output.suffix.lower() not in (".ecsv", ".fits", ".fit"):
        raise InputError(f"cannot tell the table format of {args.output}: use a .ecsv or .fits name")
    if args.plot is not None and args.plot.suffix.lower() not in _PLOT_SUFFIXES:
        raise InputError(f"cannot tell the plot format of {args.plot}: use a .png, .pdf or .svg name")
    ramp = _open_ramp(path)
    gain = _optional_reference("gain", args.gain, "R_GAIN", ramp, path)
    readnoise = _optional_reference("readnoise", args.readnoise, "R_READNO", ramp, path)
    if args.fit and (gain is None or readnoise is None):
        raise InputError("--fit needs gain and readnoise: pass --gain and --readnoise")
    check_outputs([p for p in (args.output, args.plot) if p is not None],
                  [p for p in (path, gain, readnoise) if p is not None], overwrite=args.overwrite)

    # Pass the path so the file's ERR extension is found; the Ramp above validated it.
    profile = extract_ramp(
        path, args.aperture, args.function, integration=args.integration, use_dq=args.use_dq,
        gain=gain, readnoise=readnoise, aperture_method=args.aperture_method, backend=backend,
    )
    log.info("extract %s: %s of %s, %d integration(s) x %d groups, uncertainty from %s",
             path.name, profile.function, profile.aperture, len(profile.integrations),
             profile.ngroups, profile.meta["ERRSRC"])
    if args.output is not None:
        log.info("wrote %s", profile.write(args.output, overwrite=args.overwrite))
    if args.plot is not None:
        try:
            ax = profile.plot(fit=args.fit)
        except ImportError as exc:
            raise _ExitWith(str(exc)) from exc
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        from .io.atomic import atomic_write

        fmt = args.plot.suffix.lstrip(".").lower() or "png"
        with atomic_write(args.plot, overwrite=args.overwrite) as fh:
            ax.figure.savefig(fh, format=fmt, dpi=110, bbox_inches="tight")
        log.info("wrote %s", args.plot)
    if args.output is None and args.plot is None:
        table = profile.to_table()
        table["time"].info.format = ".10g"  # 75.159, not float64's 75.15899999999999
        table.pprint_all()
    return EXIT_OK


def _load_detect_jumps():
    """The detect_jumps function (a seam for tests)."""
    from . import detect_jumps

    return detect_jumps


def _cmd_jump(args: argparse.Namespace) -> int:
    from .backend import resolve_backend
    from .demo import msamples_per_s
    from .io import output_prefix
    from .io.output_safety import check_outputs
    from .progress import ProgressReporter
    from .refs.resolve import reference_keywords

    backend = resolve_backend(args.backend)
    path: Path = args.file
    ramp = _open_ramp(path)
    out_dir: Path = args.output_dir if args.output_dir is not None else path.parent
    target = out_dir / (output_prefix(path, out_dir).name + "_jump.fits")
    gain, readnoise = _required_references(args, ramp, path)
    check_outputs([target], [path, gain, readnoise], overwrite=args.overwrite)

    detect_jumps = _load_detect_jumps()
    start = time.perf_counter()
    with ProgressReporter(total=2 * ramp.ny * ramp.nx, desc="jump", unit="px", enabled=not args.quiet) as progress:
        result = detect_jumps(ramp, gain, readnoise, backend=backend, rejection_threshold=args.rejection_threshold,
                              flag_4_neighbors=args.flag_4_neighbors,
                              expand_large_events=args.expand_large_events, find_showers=args.find_showers,
                              max_memory=args.max_memory, max_device_memory=args.max_device_memory,
                              progress=progress)
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    result.meta.update(reference_keywords({"gain": gain, "readnoise": readnoise}))  # found from any directory
    written = result.to_fits(target, overwrite=args.overwrite)
    log.info("wrote %s", written)
    log.info("jump %s on %s: %.2f s, %.1f Msamples/s, %s primary jump samples", "x".join(map(str, ramp.shape)),
             backend, seconds, msamples_per_s(ramp.shape, seconds), result.meta.get("JUMPNPRI"))
    return EXIT_OK


def _param_value(text: str) -> Any:
    """A --param value: bool, int, float, None, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _detector1_steps(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    both = sorted(set(args.skip) & set(args.run))
    if both:
        raise _ExitWith(f"--skip and --run both name {', '.join(both)}: give one of them")
    steps: dict[str, dict[str, Any]] = {}
    for name in args.skip:
        steps.setdefault(name, {})["skip"] = True
    for name in args.run:
        steps.setdefault(name, {})["skip"] = False
    for item in args.param:
        key, sep, value = item.partition("=")
        step, dot, name = key.strip().partition(".")
        if not sep or not dot or not step or not name:
            raise _ExitWith(f"cannot read --param {item!r}: use STEP.NAME=VALUE, e.g. jump.rejection_threshold=5")
        if step in args.skip:
            raise _ExitWith(f"--param {item} sets a parameter of {step}, which --skip {step} skips: give one of them")
        steps.setdefault(step, {})[name] = _param_value(value)
    return steps


def _cmd_detector1(args: argparse.Namespace) -> int:
    from .backend import resolve_backend
    from .pipeline import detector1_result
    from .pipeline.detector1 import NothingFittedError
    from .progress import ProgressReporter
    from .refs.resolve import REFTYPES

    backend = resolve_backend(args.backend)
    path: Path = args.file
    if not path.is_file():
        raise _ExitWith(f"{path} does not exist")
    steps = _detector1_steps(args)
    refs = {t: getattr(args, f"override_{t}") for t in REFTYPES if getattr(args, f"override_{t}") is not None}
    out_dir: Path = args.output_dir if args.output_dir is not None else path.parent
    start = time.perf_counter()
    try:
        with ProgressReporter(desc="detector1", unit="px", enabled=not args.quiet) as progress:
            detector1_result(path, refs=refs, backend=backend, steps=steps,
                             save_calibrated_ramp=args.save_calibrated_ramp, output_dir=out_dir,
                             max_memory=args.max_memory, max_device_memory=args.max_device_memory,
                             progress=progress, overwrite=args.overwrite)
    except NothingFittedError as exc:
        raise _ExitWith(str(exc), EXIT_NOTHING_FITTED) from None
    log.info("detector1 %s on %s: %.2f s", path.name, backend, time.perf_counter() - start)
    return EXIT_OK


def _batch_client(scheduler: str | None) -> Any:
    """A client of the scheduler at an address or named by a scheduler file (None: none)."""
    if scheduler is None:
        return None
    from distributed import Client

    if Path(scheduler).is_file():
        return Client(scheduler_file=scheduler)
    return Client(scheduler)


def _cmd_batch(args: argparse.Namespace) -> int:
    from . import batch
    from .backend import get_backend
    from .progress import ProgressReporter

    options = dict(args.options)
    for name in ("gain", "readnoise", "max_memory", "max_device_memory"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.scheduler is not None and args.workers is not None:
        log.warning("--workers is ignored with --scheduler: the cluster has its own workers")
    try:
        import distributed  # noqa: F401  (its import sets its loggers up)

        # Dask's own messages (cluster start and stop) only with -v.
        logging.getLogger("distributed").setLevel(logging.INFO if args.verbose else logging.WARNING)
        client = _batch_client(args.scheduler)
    except ImportError as exc:
        raise _ExitWith(f"gpucal batch needs Dask: pip install 'gpucal[dask]' ({exc})") from exc
    except (OSError, TimeoutError) as exc:
        raise _ExitWith(f"cannot reach the Dask scheduler {args.scheduler}: {exc}") from exc
    try:
        with ProgressReporter(desc=f"batch {args.job}", unit="exposure", enabled=not args.quiet) as progress:
            report = batch(args.inputs, args.job, output_dir=args.output_dir, client=client,
                           backend=args.backend or get_backend(), overwrite=args.overwrite, retries=args.retries,
                           n_workers=args.workers, report_path=args.report, progress=progress, **options)
    except ImportError as exc:
        raise _ExitWith(str(exc)) from exc
    finally:
        if client is not None:
            client.close()
    print(report.summary())
    for record in report.failed:
        print(f"failed: {record.input}: {record.error}")
    print(f"report: {report.report_path}")
    return EXIT_OK if report.ok else EXIT_BATCH_FAILED


def _cmd_cube(args: argparse.Namespace) -> int:
    from .cube import build_cube
    from .progress import ProgressReporter

    out_dir: Path = args.output_dir if args.output_dir is not None else args.files[0].parent
    start = time.perf_counter()
    with ProgressReporter(total=len(args.files), desc="cube", unit="file", enabled=not args.quiet) as progress:
        cubes = build_cube(args.files, channel=args.channel, band=args.band, grating=args.grating,
                           filter=args.filter, weighting=args.weighting,
                           coord_system=args.coord_system, output_type=args.output_type,
                           cubepars=args.cubepars, backend=args.backend or "auto", output_dir=out_dir,
                           progress=progress, overwrite=args.overwrite)
    for cube in cubes:
        log.info("wrote %s (%s)", cube.path, "x".join(map(str, cube.data.shape)))
    log.info("cube: %d cube(s) in %.2f s", len(cubes), time.perf_counter() - start)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import format_summary, run_demo
    from .progress import ProgressReporter

    with ProgressReporter(desc="detector1", unit="px", enabled=not args.quiet) as progress:
        summary = run_demo(args.output_dir, args.backend, progress=progress, overwrite=args.overwrite)
    print(format_summary(summary))
    return EXIT_OK


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic_uncal import SYNTH_REFERENCES, write_synthetic_uncal

    files = write_synthetic_uncal(args.output_dir, *args.shape, instrument=args.instrument, detector=args.detector,
                                  name=args.name, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {files['uncal']} ({args.instrument} {'x'.join(map(str, args.shape))}, "
          "nints x ngroups x ny x nx)")
    print(f"  and its references: {', '.join(files[k].name for k in SYNTH_REFERENCES)}")
    print(f"try: gpucal detector1 {files['uncal']} --save-calibrated-ramp")
    return EXIT_OK


def _cmd_resample(args: argparse.Namespace) -> int:
    from .backend import resolve_backend
    from .io.output_safety import check_outputs
    from .progress import ProgressReporter
    from .resample import resample_images

    backend = resolve_backend(args.backend)
    out: Path = args.output
    for path in args.files:
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    check_outputs([out], args.files, overwrite=args.overwrite)
    with ProgressReporter(total=len(args.files), desc="resample", unit="image", enabled=not args.quiet) as progress:
        product = resample_images(
            args.files, kernel=args.kernel, pixfrac=args.pixfrac, pixel_scale_ratio=args.pixel_scale_ratio,
            pixel_scale=args.pixel_scale, rotation=args.rotation, weight_type=args.weight_type,
            fillval=args.fillval, backend=backend, progress=progress,
        )
    written = product.to_fits(out, overwrite=args.overwrite)
    ny, nx = product.shape
    log.info("resample: %d images -> %s (%dx%d) on %s in %.2f s", len(args.files), written, nx, ny, backend,
             product.meta["elapsed_s"])
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

    import numpy

    from . import backend as be

    lines = [f"gpucal {__version__}", f"python {platform.python_version()} ({sys.executable})",
             f"numpy {numpy.__version__}"]
    for name in ("scipy", "astropy", "cupy", "matplotlib", "tqdm", "stcal"):
        lines.append(f"{name} {_module_version(name)}")
    default = be.get_backend()
    reason = be.gpu_unavailable_reason()
    try:
        resolved = be.resolve_backend(None)
    except GpucalError as exc:
        resolved = f"unavailable ({exc})"
    lines.append(f"backend: {resolved} (default setting: {default!r})")
    if reason is None:
        import cupy

        device = cupy.cuda.Device(0)
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        cc = str(device.compute_capability)  # e.g. "90"
        lines.append(f"gpu: {name} (compute capability {cc[:-1]}.{cc[-1:]}, "
                     f"{_format_bytes(be.free_device_memory(device.id))} free of "
                     f"{_format_bytes(props['totalGlobalMem'])})")
    else:
        lines.append(f"gpu: not available: {reason}")
    print("\n".join(lines))
    return EXIT_OK


def _module_version(name: str) -> str:
    from importlib import metadata

    if name == "cupy":
        for dist in ("cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x", "cupy"):
            try:
                return f"{metadata.version(dist)} ({dist})"
            except metadata.PackageNotFoundError:
                continue
        return "not installed"
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gpucal`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args))
    except _ExitWith as exc:
        _error(str(exc), args)
        return exc.status
    except (GpucalError, OSError) as exc:
        # errors that say how to fix them in Python syntax say it in command-line syntax here
        describe = getattr(exc, "describe", None)
        _error(describe(cli=True) if callable(describe) else str(exc) or type(exc).__name__, args)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted", args)
        return 130


def _error(message: str, args: argparse.Namespace) -> None:
    if getattr(args, "verbose", False):
        traceback.print_exc(file=sys.stderr)
    command = getattr(args, "command", None)
    sys.stderr.write(f"{PROG}{' ' + command if command else ''}: error: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
