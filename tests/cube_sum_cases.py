"""Synthetic IFU point clouds for the cube-sum tests (no jwst needed).

``pointcloud_case`` / ``drizzle_case`` return the keyword arguments of
``gpucal.cube.pointcloud_sums`` / ``drizzle_sums``; ``jwst_pointcloud_args`` /
``jwst_drizzle_args`` turn them into the positional arguments of jwst 3.0.0's C wrappers.
"""

from __future__ import annotations

import numpy as np


def grid(nx=11, ny=13, nz=40, cdelt=0.125, table=False, lam0=5.0, cdelt3=0.001):
    xc = (np.arange(nx) - nx // 2) * cdelt
    yc = (np.arange(ny) - ny // 2) * cdelt
    if table:  # a table axis: spectral step growing with wavelength, as resolving power allows
        zc = lam0 * np.exp(np.arange(nz) * cdelt3 / lam0 * 1.3)
    else:
        zc = np.arange(lam0 + cdelt3 / 2, lam0 + nz * cdelt3, cdelt3)[:nz]
    c3 = np.diff(zc)
    c3 = np.append(c3, c3[-1])
    return xc, yc, zc, c3


def _points(rng, xc, yc, zc, npt, structured, inside, empty_planes):
    if structured:  # a dither-like lattice aligned with the voxel centres and half-way between them
        side = int(np.sqrt(npt / 8))
        gx = np.linspace(xc[0], xc[-1], side)
        gy = np.linspace(yc[0], yc[-1], side)
        gz = zc[::5]
        c1, c2, wave = (a.ravel() for a in np.meshgrid(gx, gy, gz, indexing="ij"))
    else:
        pad = 0.0 if inside else 2 * (xc[1] - xc[0])
        c1 = rng.uniform(xc[0] - pad, xc[-1] + pad, npt)
        c2 = rng.uniform(yc[0] - pad, yc[-1] + pad, npt)
        wave = rng.uniform(zc[0] - 0.002, zc[-1] + 0.002, npt)
    if empty_planes:  # no point near planes 10..19
        gap = (wave > zc[8]) & (wave < zc[21])
        c1, c2, wave = c1[~gap], c2[~gap], wave[~gap]
    return c1, c2, wave


def pointcloud_case(instrument="MIRI", weighting="emsm", seed=0, npt=3000, table=False, structured=False,
                    boundary=False, empty_planes=False, power=2.0):
    rng = np.random.default_rng(seed)
    xc, yc, zc, c3 = grid(table=table)
    c1, c2, wave = _points(rng, xc, yc, zc, npt, structured, instrument == "NIRSPEC", empty_planes)
    n = c1.size
    rois = np.full(n, 0.25)
    roiw = np.full(n, 0.002)
    if table:  # per-point table values
        rois = rois * (1 + 0.2 * (wave > zc[20]))
        roiw = roiw * (1 + 0.5 * (wave > zc[20]))
    if boundary:  # points exactly one ROI (binary-exact) away from voxel centres, and on them
        m = n // 3
        c1[:m] = xc[rng.integers(2, xc.size - 2, m)] + rng.choice([-0.25, 0.25, 0.0], m)
        c2[:m] = yc[rng.integers(2, yc.size - 2, m)]
        wave[:m] = zc[rng.integers(0, zc.size, m)] + rng.choice([-1, 1, 0], m) * roiw[:m]
    return dict(instrument=instrument, weighting=weighting, start_region=101, end_region=121, xcoord=xc,
                ycoord=yc, zcoord=zc, coord1=c1, coord2=c2, wave=wave, flux=rng.uniform(0.5, 2.0, n),
                err=rng.uniform(0.01, 0.1, n), slice_no=rng.integers(1, 31, n).astype(np.float64), rois=rois,
                roiw=roiw, scalerad=np.full(n, 0.1), weight_power=np.full(n, power), softrad=np.full(n, 0.01),
                cdelt3_normal=c3, roiw_ave=float(roiw.mean()), cdelt1=0.125, cdelt2=0.125)


def drizzle_case(instrument="MIRI", seed=0, npt=3000, table=False, structured=False, below_start=False,
                 empty_planes=False, aligned=False):
    rng = np.random.default_rng(seed)
    xc, yc, zc, c3 = grid(table=table)
    c1, c2, wave = _points(rng, xc, yc, zc, npt, structured, instrument == "NIRSPEC", empty_planes)
    n = c1.size
    if below_start:  # a third of the footprints 1-4 spaxels below the grid start (bracket quirk)
        m = n // 3
        c1[:m] = xc[0] - rng.uniform(0.5, 4, m) * 0.125
        c2[m:2 * m] = yc[0] - rng.uniform(0.5, 4, m) * 0.125
    ang = np.zeros(n) if aligned else rng.uniform(0, np.pi, n)
    hx, hy = 0.09, 0.05
    corners = []
    for sx, sy in ((-1, -1), (-1, 1), (1, 1), (1, -1)):
        corners += [c1 + sx * hx * np.cos(ang) - sy * hy * np.sin(ang),
                    c2 + sx * hx * np.sin(ang) + sy * hy * np.cos(ang)]
    if aligned:  # pixel edges on spaxel edges: the strict clip tests see equal coordinates
        corners = [np.round(c / 0.0625) * 0.0625 for c in corners]
    names = ("xi1", "eta1", "xi2", "eta2", "xi3", "eta3", "xi4", "eta4")
    idx = np.arange(n, dtype=np.float64)
    return dict(instrument=instrument, start_region=101, end_region=121, xcoord=xc, ycoord=yc, zcoord=zc,
                coord1=c1, coord2=c2, wave=wave, flux=rng.uniform(0.5, 2.0, n), err=rng.uniform(0.01, 0.1, n),
                slice_no=rng.integers(1, 31, n).astype(np.float64), **dict(zip(names, corners)),
                dwave=rng.uniform(0.0003, 0.0015, n), cdelt3_normal=c3, cdelt1=0.125, cdelt2=0.125,
                cdelt3_mean=float(np.nanmean(c3)), linear=not table, x_det=idx, y_det=idx.copy())


def jwst_pointcloud_args(c: dict) -> tuple:
    return (0 if c["instrument"] == "MIRI" else 1, 1, 0 if c["weighting"] == "emsm" else 1, c["start_region"],
            c["end_region"], 4, 2, c["xcoord"], c["ycoord"], c["zcoord"], c["coord1"], c["coord2"], c["wave"],
            c["flux"], c["err"], c["slice_no"], c["rois"], c["roiw"], c["scalerad"], c["weight_power"],
            c["softrad"], c["cdelt3_normal"], c["roiw_ave"], c["cdelt1"], c["cdelt2"])


def jwst_drizzle_args(c: dict) -> tuple:
    return (0 if c["instrument"] == "MIRI" else 1, 1, c["start_region"], c["end_region"], 4, 2, c["xcoord"],
            c["ycoord"], c["zcoord"], c["coord1"], c["coord2"], c["wave"], c["flux"], c["err"], c["slice_no"],
            c["xi1"], c["eta1"], c["xi2"], c["eta2"], c["xi3"], c["eta3"], c["xi4"], c["eta4"], c["dwave"],
            c["cdelt3_normal"], c["cdelt1"], c["cdelt2"], c["cdelt3_mean"], int(c["linear"]), c["x_det"],
            c["y_det"], -1)
