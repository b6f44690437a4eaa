"""``build_cube``: IFU ``_cal`` files -> ``_s3d`` cubes, equal to jwst 3.0.0's cube_build.

Flow per cube: select the bands and their files, take the sampling and ROI parameters
from CUBEPAR, find the footprint of all files and lay out the grid (skyalign/ifualign),
then visit the files band by band in input order, turning each into points and adding its
voxel sums to the running totals, and finally normalise and set the DQ planes.

Memory: files are opened one at a time (a footprint pass, then a sums pass), so only one
exposure's arrays and points live at once; the accumulators are sized from the grid.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import ProgressCallback
from . import sums as cube_sums
from .cubepars import MIRI_BANDS, BandPars, CubePars, crds_cubepars, read_cubepars
from .exposure import IFUExposure, open_exposure
from .finalize import VoxelSums, finalize
from .grid import (CubeGrid, corners_from_points, corners_from_s_region, corners_from_slices, ifualign_angle,
                   make_grid)
from .pointcloud import (MIRI_CHANNELS, NIRSPEC_SLICES, _slice_pixels, exposure_points, miri_pixel_grid,
                         nirspec_slice_wcs)
from .s3d import IFUCube, cube_suffix

log = logging.getLogger(__name__)

WEIGHTINGS = ("drizzle", "msm", "emsm")
COORD_SYSTEMS = ("skyalign", "world", "ifualign")
OUTPUT_TYPES = ("band", "channel", "grating", "multi")
#: NIRSpec band order of jwst's band coverage (gratings, then filters).
NIRSPEC_GRATINGS = ("g140m", "g140h", "g235m", "g235h", "g395m", "g395h", "prism")
NIRSPEC_FILTERS = ("f070lp", "f100lp", "g170lp", "f290lp", "clear", "opaque")

Band = tuple[str, str]


@dataclass(frozen=True)
class _FileInfo:
    path: Path
    instrument: str
    bands: list[Band]


@dataclass(frozen=True)
class _CubeParams:
    spatial: float
    spectral: float
    wavemin: float
    wavemax: float
    rois: float
    roiw: float
    weight_power: float
    softrad: float
    scalerad: float
    table: dict[str, np.ndarray] | None = None  # rows of the CUBEPAR wavelength table (multi)


def _as_list(value: str | int | Sequence[str] | None) -> list[str] | None:
    if value is None or value == "all":
        return None
    # An int comes from JSON options (gpucal batch --option channel=1).
    items = str(value).split(",") if isinstance(value, (str, int)) else list(value)
    return [str(v).strip().lower() for v in items if str(v).strip()]


def _scan(paths: list[Path]) -> list[_FileInfo]:
    infos = []
    for path in paths:
        exp = open_exposure(path)
        infos.append(_FileInfo(path, exp.instrument, exp.bands))
        exp.model.close()
    instruments = {i.instrument for i in infos}
    if len(instruments) > 1:
        raise InputError(f"inputs mix instruments ({', '.join(sorted(instruments))}): build one cube per instrument")
    return infos


def _select_bands(infos: list[_FileInfo], channel, band, grating, filter_) -> list[Band]:
    instrument = infos[0].instrument
    present = {b for i in infos for b in i.bands}
    if instrument == "MIRI":
        ordered = [(c, s) for c in "1234" for s in MIRI_BANDS if (c, s) in present]
        want1, want2 = _as_list(channel), _as_list(band)
    else:
        ordered = [(g, f) for g in NIRSPEC_GRATINGS for f in NIRSPEC_FILTERS if (g, f) in present]
        want1, want2 = _as_list(grating), _as_list(filter_)
    chosen = [b for b in ordered if (want1 is None or b[0] in want1) and (want2 is None or b[1] in want2)]
    if not chosen:
        asked = ", ".join(f"{k}={v}" for k, v in (("channel", channel), ("band", band), ("grating", grating),
                                                   ("filter", filter_)) if v is not None)
        raise InputError(f"no input file covers the selected band ({asked}); the inputs cover "
                         f"{', '.join('/'.join(b) for b in ordered)}")
    return chosen


def _group_bands(bands: list[Band], output_type: str) -> list[list[Band]]:
    if output_type == "multi":
        return [bands]
    if output_type == "band":
        return [[b] for b in bands]
    return [[b for b in bands if b[0] == key] for key in dict.fromkeys(b[0] for b in bands)]


def _resolve_cubepars(cubepars, instrument: str, weighting: str, first: Path) -> CubePars:
    if cubepars is None:
        from ..io.fits_open import read_header

        header = dict(read_header(first))
        cubepars = crds_cubepars(header)
    path = Path(cubepars)
    if not path.exists():
        raise InputError(f"CUBEPAR reference {path} does not exist")
    return read_cubepars(path, instrument, weighting)


def _table_rows(table: dict[str, np.ndarray], wavemin: float, wavemax: float, nfiles: int) -> dict[str, np.ndarray]:
    """Rows nearest to wavemin..wavemax, one more at an end whose row lies inside the range."""
    wave = table["wavelength"]
    imin = int(np.abs(wave - wavemin).argmin())
    imax = int(np.abs(wave - wavemax).argmin())
    if imin > 1 and wave[imin] > wavemin:
        imin -= 1
    if imax < wave.size - 1 and wavemax > wave[imax]:
        imax += 1
    rows = {k: v[imin: imax + 1].copy() for k, v in table.items()}
    if nfiles < 4:
        rows["rois"] = rows["rois"] * 1.5
    return rows


def _parameters(pars: list[BandPars], nfiles: int, weighting: str, *, scalexy, scalew, rois, roiw,
                weight_power, table: dict[str, np.ndarray] | None = None) -> _CubeParams:
    sizes = np.array([p.spaxelsize for p in pars])
    steps = np.array([p.spectralstep for p in pars])
    ref = pars[0] if np.all(sizes == sizes[0]) else pars[int(np.argmin(sizes))]
    spatial, spatial_roi = ref.spaxelsize, ref.rois
    if scalew != 0:
        spectral = float(scalew)
        roiw_t, power, softrad, scalerad = (float(np.min([getattr(p, n) for p in pars]))
                                            for n in ("roiw", "power", "softrad", "scalerad"))
    elif np.all(steps == steps[0]):
        spectral = steps[0]
        roiw_t, power, softrad, scalerad = pars[0].roiw, pars[0].power, pars[0].softrad, pars[0].scalerad
    elif table is not None:
        spectral = roiw_t = power = softrad = scalerad = float("nan")  # per point from the table
    else:
        raise InputError("the selected bands have different SPECTRALSTEP values: pass scalew "
                         "or output_type='multi'")
    if rois == 0.0:
        rois = spatial_roi * (1.5 if nfiles < 4 and weighting != "emsm" else 1.0)
    if roiw == 0:
        roiw = roiw_t
    if weight_power == 0:
        weight_power = power
    if scalexy != 0:
        spatial = float(scalexy)
    wavemin, wavemax = float(min(p.wavemin for p in pars)), float(max(p.wavemax for p in pars))
    if table is not None:
        table = _table_rows(table, wavemin, wavemax, nfiles)
        needed = {"msm": ("wavelength", "rois", "roiw", "softrad", "power"),
                  "emsm": ("wavelength", "rois", "roiw", "scalerad")}.get(weighting, ("wavelength",))
        missing = [k for k in needed if np.isnan(table[k]).all()]
    else:
        needed = {"msm": {"rois": rois, "roiw": roiw, "weight_power": weight_power, "softrad": softrad},
                  "emsm": {"rois": rois, "roiw": roiw, "scalerad": scalerad}}.get(weighting, {})
        missing = [k for k, v in needed.items() if np.isnan(v)]
    if missing:
        raise InputError(f"cube parameter(s) {', '.join(missing)} are NaN: check the CUBEPAR reference")
    return _CubeParams(spatial, spectral, wavemin, wavemax, rois, roiw, weight_power, softrad, scalerad, table)


def _nirspec_table_name(grating: str) -> str:
    return "prism" if grating == "prism" else "high" if grating.endswith("h") else "med"


def _rotation(exp: IFUExposure, band: Band) -> float:
    """ifualign angle: direction along the slices at the median wavelength of the first file."""
    if exp.instrument == "NIRSPEC":
        sw = nirspec_slice_wcs(exp, 0)
        x, y = _slice_pixels(sw)
        _, _, lam = sw.get_transform(exp.wcs.available_frames[0], "slicer")(x, y)
        to_world = sw.get_transform("slicer", sw.output_frame.name)
        lam_med = np.nanmedian(lam)
        ra1, dec1, _ = to_world(0, 0, lam_med)
        ra2, dec2, _ = to_world(0, 0.005, lam_med)
        return ifualign_angle(ra1, dec1, ra2, dec2)
    channel = band[0]
    x, y = miri_pixel_grid(exp.data.shape, exp.wcs, channel)
    frame = exp.wcs.available_frames[0]
    _, _, lam = exp.wcs.get_transform(frame, "alpha_beta")(x.reshape(exp.data.shape[0], -1),
                                                            y.reshape(exp.data.shape[0], -1))
    lam_med = np.nanmedian(lam)
    to_world = exp.wcs.get_transform("alpha_beta", exp.wcs.output_frame.name)
    ra1, dec1, _ = to_world(0, 0, lam_med)
    ra2, dec2, _ = to_world(2, 0, lam_med)
    return ifualign_angle(ra1, dec1, ra2, dec2)


def _file_corners(exp: IFUExposure, band: Band, use_s_region: bool):
    if use_s_region and exp.s_region and exp.spectral_region and exp.target_type != "MOVING":
        return corners_from_s_region(exp.s_region)
    if exp.instrument == "NIRSPEC":
        slices = []
        for i in range(NIRSPEC_SLICES):
            sw = nirspec_slice_wcs(exp, i)
            ra, dec, _ = sw(*_slice_pixels(sw))
            slices.append((ra, dec))
        return corners_from_slices(slices)
    x, y = miri_pixel_grid(exp.data.shape, exp.wcs, band[0])
    shape = (exp.data.shape[0], x.size // exp.data.shape[0])
    ra, dec, _ = exp.wcs(x.reshape(shape), y.reshape(shape))
    return corners_from_points(ra, dec)


def _grid(files: dict[Band, list[Path]], bands: list[Band], params: _CubeParams, coord_system: str,
          instrument: str) -> CubeGrid:
    rot = None
    if coord_system == "ifualign":
        exp = open_exposure(files[bands[0]][0])
        try:
            rot = _rotation(exp, bands[0])
        finally:
            exp.model.close()
    # jwst takes the footprint from S_REGION only for skyalign, and never for MIRI cubes
    # involving channel 1 or 3.
    use_s_region = coord_system in ("skyalign", "world") and not (
        instrument == "MIRI" and params.table is None and any(b[0] in ("1", "3") for b in bands))
    corner_a: list[float] = []
    corner_b: list[float] = []
    for band in bands:
        for path in files[band]:
            exp = open_exposure(path)
            try:
                a, b = _file_corners(exp, band, use_s_region)
            finally:
                exp.model.close()
            corner_a += a
            corner_b += b
    table = None if params.table is None else params.table["wavelength"]
    return make_grid(corner_a, corner_b, params.wavemin, params.wavemax, params.spatial, params.spectral, rot,
                     wave_table=table)


def _nearest_rows(table_wave: np.ndarray, wave: np.ndarray, block: int = 1 << 22) -> np.ndarray:
    """Index of the table wavelength nearest to each point (first one on ties).

    A plain argmin of ``|table - w|`` as jwst takes it, in chunks of about ``block``
    differences so that memory stays bounded.
    """
    chunk = max(1, block // max(1, table_wave.size))
    out = np.empty(wave.size, dtype=np.intp)
    for start in range(0, wave.size, chunk):
        w = wave[start:start + chunk]
        out[start:start + w.size] = np.abs(table_wave[None, :] - w[:, None]).argmin(axis=1)
    return out


def _file_sums(exp: IFUExposure, band: Band, grid: CubeGrid, params: _CubeParams, weighting: str,
               backend: str):
    drizzle = weighting == "drizzle"
    table = params.table
    roiw_max = params.roiw if table is None else float(np.max(table["roiw"]))
    cloud = exposure_points(exp, band, grid, drizzle=drizzle, roiw_max=roiw_max)
    if cloud is None:
        return None
    start, end = MIRI_CHANNELS[band[0]][:2] if exp.instrument == "MIRI" else (0, 0)
    common = dict(instrument=exp.instrument, start_region=start, end_region=end, xcoord=grid.xcoord,
                  ycoord=grid.ycoord, zcoord=grid.zcoord, coord1=cloud.coord1, coord2=cloud.coord2,
                  wave=cloud.wave, flux=cloud.flux, err=cloud.err, slice_no=cloud.slice_no,
                  cdelt1=grid.cdelt1, cdelt2=grid.cdelt2, cdelt3_normal=grid.cdelt3_normal, backend=backend)
    if drizzle:
        xi1, eta1, xi2, eta2, xi3, eta3, xi4, eta4 = cloud.corners
        return cube_sums.drizzle_sums(
            **common, xi1=xi1, eta1=eta1, xi2=xi2, eta2=eta2, xi3=xi3, eta3=eta3, xi4=xi4, eta4=eta4,
            dwave=cloud.dwave, cdelt3_mean=np.nanmean(grid.cdelt3_normal), linear=grid.linear,
            x_det=cloud.x_det, y_det=cloud.y_det)
    if table is None:
        n = len(cloud)
        per_point = {k: np.full(n, v, dtype=np.float64) for k, v in (
            ("rois", params.rois), ("roiw", params.roiw), ("scalerad", params.scalerad),
            ("weight_power", params.weight_power), ("softrad", params.softrad))}
    else:
        rows = _nearest_rows(table["wavelength"], cloud.wave)
        per_point = {k: table[c][rows] for k, c in (
            ("rois", "rois"), ("roiw", "roiw"), ("scalerad", "scalerad"), ("weight_power", "power"),
            ("softrad", "softrad"))}
    return cube_sums.pointcloud_sums(**common, weighting=weighting, **per_point,
                                     roiw_ave=np.mean(per_point["roiw"]))


def _one_cube(files: dict[Band, list[Path]], bands: list[Band], pars: CubePars, *, weighting: str,
              coord_system: str, output_type: str, user: dict, backend: str, stem: str,
              progress: ProgressCallback | None, done: list[int], total: int) -> IFUCube:
    nfiles = sum(len(files[b]) for b in bands)
    table = None
    if output_type == "multi":
        name = "multi" if pars.instrument == "MIRI" else _nirspec_table_name(bands[-1][0])
        table = pars.wave_table(name)
    params = _parameters([pars.band(b) for b in bands], nfiles, weighting, table=table, **user)
    grid = _grid(files, bands, params, coord_system, pars.instrument)
    nz, ny, nx = grid.shape
    log.info("cube %s: %d x %d spaxels x %d planes, %d files", bands, nx, ny, nz, nfiles)
    totals = VoxelSums.zeros(nx * ny * nz)
    instrument = pars.instrument
    for band in bands:
        for path in files[band]:
            exp = open_exposure(path)
            try:
                result = _file_sums(exp, band, grid, params, weighting, backend)
            finally:
                exp.model.close()
            if result is not None:
                totals.add(*result)
            done[0] += 1
            if progress is not None:
                progress(done[0], total)
    flux, err, dq, wmap = finalize(totals, grid.shape, instrument)
    pointcloud = weighting != "drizzle"
    return IFUCube(data=flux.astype(np.float32), err=err.astype(np.float32), dq=dq.astype(np.uint32),
                   wmap=wmap.astype(np.float32), grid=grid, instrument=instrument, bands=list(bands),
                   weighting=weighting, coord_system=coord_system,
                   inputs=[p for b in bands for p in files[b]],
                   name=f"{stem}{cube_suffix(instrument, bands)}_s3d.fits",
                   rois=params.rois if pointcloud else 0.0,
                   roiw=(params.roiw if params.table is None else float(np.mean(params.table["roiw"])))
                   if pointcloud else 0.0,
                   weight_power=params.weight_power if pointcloud else 0.0)


def build_cube(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    channel: str | Sequence[str] | None = None,
    band: str | Sequence[str] | None = None,
    grating: str | Sequence[str] | None = None,
    filter: str | Sequence[str] | None = None,
    weighting: str = "drizzle",
    coord_system: str = "skyalign",
    scalexy: float = 0.0,
    scalew: float = 0.0,
    rois: float = 0.0,
    roiw: float = 0.0,
    weight_power: float = 2.0,
    output_type: str = "band",
    cubepars: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    output_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = True,
) -> list[IFUCube]:
    """Build IFU cubes from calibrated ``_cal.fits`` files, as jwst 3.0.0's CubeBuildStep.

    Parameters
    ----------
    inputs
        One path or several: MIRI MRS (``MIR_MRS``) or NIRSpec IFU (``NRS_IFU``) calibrated
        images whose assign_wcs gwcs is stored in the file.
    channel, band
        MIRI selection (``"1"`` or ``"1,2"``; ``"short"``, ``"medium"``, ``"long"``). They
        only select bands; ``output_type`` decides how the bands are grouped into cubes (in
        jwst 3.0.0 the 'user' output type that a selection sets is overwritten by
        ``output_type``).
    grating, filter
        NIRSpec selection, likewise.
    weighting
        ``"drizzle"`` (3-D overlap, default), ``"emsm"`` or ``"msm"``.
    coord_system
        ``"skyalign"`` (alias ``"world"``: north up, east left) or ``"ifualign"``.
    scalexy, scalew, rois, roiw, weight_power
        Spaxel size [arcsec], plane width [um], spatial and spectral region of interest,
        msm power; 0 means "from CUBEPAR" (``weight_power`` defaults to 2, as in jwst).
    output_type
        ``"band"`` (one cube per band), ``"channel"`` / ``"grating"`` (one per channel or
        grating), ``"multi"`` (one cube of all bands on the CUBEPAR wavelength table, with
        per-wavelength ROI and weighting parameters).
    cubepars
        CUBEPAR reference file; None asks the local CRDS cache (needs crds and CRDS_PATH).
    backend
        ``"cpu"``, ``"gpu"`` or ``"auto"`` for the voxel sums.
    output_dir
        When given, each cube is written there as ``{name}_s3d.fits`` (atomically). The names
        are checked before any sums (:func:`gpucal.io.output_safety.check_outputs`): never an
        input or a read-only file, an existing one only with ``overwrite``.
    progress
        Called as ``progress(files_done, files_total)``.
    overwrite
        Replace existing cubes in ``output_dir`` (default True; the command line's default is False).

    Returns
    -------
    list of IFUCube
        One cube per band (or channel, or user selection), in jwst's band order.
    """
    if weighting not in WEIGHTINGS:
        raise InputError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if coord_system not in COORD_SYSTEMS:
        raise InputError(f"coord_system must be skyalign or ifualign, got {coord_system!r}")
    if output_type not in OUTPUT_TYPES:
        raise InputError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise InputError("no input files")
    infos = _scan(paths)
    instrument = infos[0].instrument
    bands = _select_bands(infos, channel, band, grating, filter)
    groups = _group_bands(bands, output_type)
    pars = _resolve_cubepars(cubepars, instrument, weighting, paths[0])
    files = {b: [i.path for i in infos if b in i.bands] for b in bands}
    backend_name = backend
    user = dict(scalexy=scalexy, scalew=scalew, rois=rois, roiw=roiw, weight_power=weight_power)
    total = sum(len(files[b]) for g in groups for b in g)
    done = [0]
    first = paths[0].name  # jwst names every cube after the first input
    stem = first[: -len("_cal.fits")] if first.endswith("_cal.fits") else paths[0].stem
    if instrument == "NIRSPEC" and stem[stem.rfind("_") + 1:] in NIRSPEC_GRATINGS:
        stem = stem[: stem.rfind("_")]  # the grating is part of the cube suffix
    if output_dir is not None:
        from ..io.output_safety import check_outputs

        names = [Path(output_dir) / f"{stem}{cube_suffix(pars.instrument, group)}_s3d.fits" for group in groups]
        check_outputs(names, [*paths, *([pars.path] if pars.path is not None else [])], overwrite=overwrite)
    cubes = []
    for group in groups:
        cube = _one_cube(files, group, pars, weighting=weighting, coord_system=coord_system, stem=stem,
                         output_type=output_type, user=user, backend=backend_name, progress=progress,
                         done=done, total=total)
        if output_dir is not None:
            cube.to_fits(Path(output_dir) / cube.name, overwrite=overwrite)
        cubes.append(cube)
    return cubes
