"""Ramp extraction (issue 5): gpucal.extract_ramp, RampProfile, apertures and `gpucal extract`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import gpucal
from gpucal import cli, dq
from gpucal.apertures import (
    CircleAperture,
    PixelAperture,
    RectangleAperture,
    aperture_weights,
)
from gpucal.errors import InputError
from gpucal.extraction import (
    FUNCTIONS,
    MEDIAN_ERROR_FACTOR,
    fixed_order_sum,
    group_mid_times,
)
from gpucal.ramp import Ramp

NINTS, NGROUPS, NY, NX = 2, 5, 14, 18


def _ramp(data, groupdq=None, pixeldq=None, **timing) -> Ramp:
    nints, ngroups, ny, nx = data.shape
    groupdq = np.zeros(data.shape, np.uint8) if groupdq is None else groupdq
    pixeldq = np.zeros((ny, nx), np.uint32) if pixeldq is None else pixeldq
    kw = dict(group_time=10.0, frame_time=10.0, nframes=1, groupgap=0)
    kw.update(timing)
    return Ramp(data.astype(np.float32), groupdq, pixeldq, **kw)


@pytest.fixture(scope="module")
def cube() -> dict:
    """A hand-built cube with flagged pixels/samples and a NaN sample."""
    rng = np.random.default_rng(5)
    data = rng.normal(1000.0, 50.0, (NINTS, NGROUPS, NY, NX)).astype(np.float32)
    data += (np.arange(NGROUPS, dtype=np.float32) * 30.0)[None, :, None, None]
    groupdq = np.zeros(data.shape, np.uint8)
    pixeldq = np.zeros((NY, NX), np.uint32)
    pixeldq[6, 8] = dq.DO_NOT_USE | dq.PIXEL["HOT"]
    data[:, :, 6, 8] = 1e6
    groupdq[0, 3, 7, 7] = dq.SATURATED
    data[0, 3, 7, 7] = -1e6
    groupdq[1, 2, 5, 9] = dq.DO_NOT_USE
    data[1, 2, 5, 9] = 5e5
    groupdq[1, 1, 7, 9] = dq.JUMP_DET  # not an exclusion flag
    data[1, 4, 8, 10] = np.nan
    err = rng.uniform(5.0, 15.0, data.shape).astype(np.float32)
    return dict(ramp=_ramp(data, groupdq, pixeldq), data=data, groupdq=groupdq, pixeldq=pixeldq, err=err)


def _expected_weights(kind: str) -> tuple[object, np.ndarray, str]:
    """(aperture, full-frame weight image built independently, method)."""
    yy, xx = np.mgrid[0:NY, 0:NX]
    if kind == "none":
        return None, np.ones((NY, NX)), "center"
    if kind == "pixel":
        w = np.zeros((NY, NX))
        w[7, 9] = 1
        return (9.3, 6.6), w, "center"  # the pixel containing (9.3, 6.6) is x=9, y=7
    if kind == "circle":
        return (8.4, 7.2, 3.1), ((xx - 8.4) ** 2 + (yy - 7.2) ** 2 < 3.1**2).astype(float), "center"
    if kind == "circle_exact":
        ap = CircleAperture(8.4, 7.2, 3.1)
        w = np.zeros((NY, NX))
        a = aperture_weights(ap, (NY, NX), "exact")
        w[a.r0:a.r1, a.c0:a.c1] = a.weights
        return ap, w, "exact"
    if kind == "rect":
        w = np.zeros((NY, NX))
        w[4:9, 6:12] = 1  # y 4..8, x 6..11 inclusive
        return (6, 4, 11, 8), w, "center"
    if kind == "rect_class":
        w = np.zeros((NY, NX))
        w[5:6, 7:12] = 1
        return RectangleAperture(7, 5, 11, 5), w, "center"
    if kind == "mask":
        mask = np.zeros((NY, NX), bool)
        mask[[2, 6, 7, 7, 8, 11], [3, 8, 7, 9, 10, 15]] = True
        return mask, mask.astype(float), "center"
    raise AssertionError(kind)


def _reference(cube: dict, weights: np.ndarray, function: str, use_dq: bool = True):
    """Direct numpy computation, one (integration, group) at a time."""
    data, gdq, pdq, err = cube["data"], cube["groupdq"], cube["pixeldq"], cube["err"]
    value = np.full((NINTS, NGROUPS), np.nan)
    sigma = np.full((NINTS, NGROUPS), np.nan)
    count = np.zeros((NINTS, NGROUPS), int)
    for n in range(NINTS):
        for g in range(NGROUPS):
            x = data[n, g].astype(np.float64)
            ok = (weights > 0) & np.isfinite(x)
            if use_dq:
                ok &= (pdq & (dq.DO_NOT_USE | dq.SATURATED)) == 0
                ok &= (gdq[n, g] & (dq.DO_NOT_USE | dq.SATURATED)) == 0
            v, w, s = x[ok], weights[ok], err[n, g][ok].astype(np.float64)
            count[n, g] = v.size
            if not v.size:
                continue
            if function == "sum":
                value[n, g], sigma[n, g] = np.sum(w * v), np.sqrt(np.sum(w**2 * s**2))
            elif function == "mean":
                value[n, g], sigma[n, g] = np.sum(w * v) / np.sum(w), np.sqrt(np.sum(w**2 * s**2)) / np.sum(w)
            elif function == "median":
                factor = MEDIAN_ERROR_FACTOR if v.size >= 3 else 1.0
                value[n, g], sigma[n, g] = np.median(v), factor * np.sqrt(np.sum(s**2)) / v.size
            else:
                j = np.argmin(v) if function == "min" else np.argmax(v)
                value[n, g], sigma[n, g] = v[j], s[j]
    return value, sigma, count


KINDS = ["none", "pixel", "circle", "circle_exact", "rect", "rect_class", "mask"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_values_match_direct_numpy(cube, kind, function):
    aperture, weights, method = _expected_weights(kind)
    profile = gpucal.extract_ramp(cube["ramp"], aperture, function, err=cube["err"],
                                  aperture_method=method, backend="cpu")
    value, sigma, count = _reference(cube, weights, function)
    np.testing.assert_array_equal(profile.npix, count)
    assert profile.value.shape == (NINTS, NGROUPS)
    if function in ("sum", "mean"):
        np.testing.assert_allclose(profile.value, value, rtol=1e-13)
        np.testing.assert_allclose(profile.uncertainty, sigma, rtol=1e-12)
    else:  # median, min, max: sort/select, exact
        np.testing.assert_array_equal(profile.value, value)
        np.testing.assert_allclose(profile.uncertainty, sigma, rtol=1e-12)
    if function != "sum":
        assert np.all(np.abs(profile.value) < 1e5)  # the flagged outliers never get in


def test_dq_exclusion_and_use_dq_false(cube):
    ramp = cube["ramp"]
    with_dq = gpucal.extract_ramp(ramp, (6, 5, 10, 8), "max", backend="cpu")
    assert np.all(with_dq.value < 1e5)
    # 4 rows x 5 cols = 20 pixels, minus the DO_NOT_USE pixel (8, 6)
    assert with_dq.npix[0, 0] == 19
    assert with_dq.npix[0, 3] == 18  # plus the SATURATED sample at (7, 7)
    assert with_dq.npix[1, 2] == 18  # plus the DO_NOT_USE sample at (9, 5)
    assert with_dq.npix[1, 1] == 19  # JUMP_DET does not exclude
    without = gpucal.extract_ramp(ramp, (6, 5, 10, 8), "max", use_dq=False, backend="cpu")
    assert np.all(without.value == 1e6)  # the hot DO_NOT_USE pixel wins every group
    assert without.npix[0, 0] == 20
    mn = gpucal.extract_ramp(ramp, (6, 5, 10, 8), "min", use_dq=False, backend="cpu")
    assert mn.value[0, 3] == -1e6


def test_all_flagged_group_is_nan_and_pixel_dnu_is_empty():
    data = np.ones((1, 3, 4, 4), np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 1] = dq.SATURATED
    ramp = _ramp(data, gdq)
    p = gpucal.extract_ramp(ramp, None, "mean", err=np.ones(data.shape, np.float32), backend="cpu")
    assert p.npix.tolist() == [[16, 0, 16]]
    assert np.isnan(p.value[0, 1]) and np.isnan(p.uncertainty[0, 1])
    assert p.value[0, 0] == 1.0 and p.uncertainty[0, 0] == pytest.approx(0.25)
    pdq = np.zeros((4, 4), np.uint32)
    pdq[2, 1] = dq.DO_NOT_USE
    p = gpucal.extract_ramp(_ramp(data, None, pdq), (1, 2), "sum", backend="cpu")
    assert np.all(np.isnan(p.value)) and np.all(p.npix == 0)
    assert p.meta["ERRSRC"] == "none" and np.all(np.isnan(p.uncertainty))


def test_integration_selection(cube):
    p = gpucal.extract_ramp(cube["ramp"], (3, 3, 2), "sum", integration=1, backend="cpu")
    full = gpucal.extract_ramp(cube["ramp"], (3, 3, 2), "sum", backend="cpu")
    assert p.integrations.tolist() == [1]
    np.testing.assert_array_equal(p.value[0], full.value[1])
    assert p.to_table()["integration"].tolist() == [1] * NGROUPS


# --------------------------------------------------------------------------- apertures


def test_exact_vs_center_circle():
    cx, cy, r = 20.2, 15.6, 4.3
    exact = aperture_weights((cx, cy, r), (40, 50), "exact")
    center = aperture_weights((cx, cy, r), (40, 50), "center")
    assert abs(exact.weights.sum() - math.pi * r * r) < 1e-3
    assert exact.fractional and np.all((exact.weights >= 0) & (exact.weights <= 1 + 1e-12))
    assert set(np.unique(center.weights)) == {0.0, 1.0}
    assert abs(center.weights.sum() - math.pi * r * r) < 6  # pixel count ~ area
    # pixels whose whole square is inside have weight 1; those whose square is outside 0
    yy, xx = np.mgrid[exact.r0:exact.r1, exact.c0:exact.c1]
    far = np.max([np.hypot(xx + sx - cx, yy + sy - cy) for sx in (-.5, .5) for sy in (-.5, .5)], axis=0)
    near = np.hypot(np.clip(cx, xx - .5, xx + .5) - cx, np.clip(cy, yy - .5, yy + .5) - cy)
    np.testing.assert_allclose(exact.weights[far <= r], 1.0, atol=1e-12)
    np.testing.assert_array_equal(exact.weights[near >= r], 0.0)
    # a boundary pixel against a fine sub-pixel grid
    i, j = np.argwhere((exact.weights > 0.2) & (exact.weights < 0.8))[0]
    s = (np.arange(400) + 0.5) / 400 - 0.5
    sx, sy = np.meshgrid(s, s)
    frac = np.mean((xx[i, j] + sx - cx) ** 2 + (yy[i, j] + sy - cy) ** 2 < r * r)
    assert exact.weights[i, j] == pytest.approx(frac, abs=2e-3)
    # the mean over the circle differs between methods on a gradient
    data = np.broadcast_to(np.arange(50, dtype=np.float32) ** 2, (1, 1, 40, 50)).copy()
    ramp = _ramp(data)
    m_exact = gpucal.extract_ramp(ramp, (cx, cy, r), "mean", aperture_method="exact", backend="cpu")
    m_center = gpucal.extract_ramp(ramp, (cx, cy, r), "mean", aperture_method="center", backend="cpu")
    assert m_exact.value[0, 0] != m_center.value[0, 0]
    assert m_exact.area[0, 0] == pytest.approx(math.pi * r * r, abs=1e-3)
    assert m_center.area[0, 0] == m_center.npix[0, 0]


def test_partial_circle_is_clipped_with_warning(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="gpucal"):
        a = aperture_weights((0.0, 0.0, 2.0), (10, 10), "exact")
    assert (a.r0, a.c0, a.r1, a.c1) == (0, 0, 3, 3)
    # the disc restricted to the frame (x, y >= -0.5), on a fine grid
    s = (np.arange(2500) + 0.5) / 1000 - 0.5
    sx, sy = np.meshgrid(s, s)
    inside = np.mean(sx**2 + sy**2 < 4.0) * 2.5 * 2.5
    assert a.weights.sum() == pytest.approx(inside, abs=2e-3)
    assert "clipped" in caplog.text


BAD_APERTURES = [
    ((20, 3), "outside the frame"),
    ((3, -1), "outside the frame"),
    ((30, 30, 2), "outside the frame"),
    ((3, 3, -1), "radius must be > 0"),
    ((3, 3, 0), "radius must be > 0"),
    ((5, 5, 2, 8), "x0 <= x1"),
    ((20, 20, 25, 25), "outside the frame"),
    ((1.5, 2, 3, 4), "integer pixel index"),
    ((1, 2, 3, 4, 5), "5 numbers"),
    (np.zeros((NY, NX), bool), "empty"),
    (np.ones((NY + 1, NX), bool), "shape"),
    (np.ones((NY, NX), np.uint8), "boolean"),
    ((3.0, float("nan")), "finite"),
    ("circle", "unsupported aperture"),
    ((4.5, 4.5, 0.2), "contains no pixel centre"),
]


@pytest.mark.parametrize("aperture, message", BAD_APERTURES)
def test_bad_apertures_name_the_problem(cube, aperture, message):
    with pytest.raises(InputError, match=message):
        gpucal.extract_ramp(cube["ramp"], aperture, backend="cpu")


@pytest.mark.parametrize("kwargs, message", [
    (dict(function="mode"), "function must be one of"),
    (dict(integration=2), "integration 2 is out of range: the exposure has 2 integrations"),
    (dict(integration=-1), "out of range"),
    (dict(integration=1.0), "integer index"),
    (dict(aperture_method="subpixel"), "aperture_method"),
    (dict(err=np.ones((1, 2, 3, 4))), "err must be an array of the ramp's shape"),
    (dict(gain=np.ones((3, 3))), "gain must be a real array with the frame shape"),
])
def test_bad_arguments(cube, kwargs, message):
    with pytest.raises(InputError, match=message):
        gpucal.extract_ramp(cube["ramp"], (3, 3), backend="cpu", **kwargs)


def test_aperture_dataclasses_equal_tuples(cube):
    a = gpucal.extract_ramp(cube["ramp"], PixelAperture(4, 5), "mean", backend="cpu")
    b = gpucal.extract_ramp(cube["ramp"], (4, 5), "mean", backend="cpu")
    np.testing.assert_array_equal(a.value, b.value)
    c = gpucal.extract_ramp(cube["ramp"], np.array([4, 5]), "mean", backend="cpu")
    np.testing.assert_array_equal(c.value, b.value)
    d = gpucal.extract_ramp(cube["ramp"], CircleAperture(8.4, 7.2, 3.1), "sum", backend="cpu")
    e = gpucal.extract_ramp(cube["ramp"], [8.4, 7.2, 3.1], "sum", backend="cpu")
    np.testing.assert_array_equal(d.value, e.value)
    np.testing.assert_array_equal(a.value, cube["data"][:, :, 5, 4])


def test_astropy_regions(cube):
    regions = pytest.importorskip("regions")
    for method in ("center", "exact"):
        circ = regions.CirclePixelRegion(regions.PixCoord(8.4, 7.2), 3.1)
        a = gpucal.extract_ramp(cube["ramp"], circ, "mean", aperture_method=method, backend="cpu")
        b = gpucal.extract_ramp(cube["ramp"], (8.4, 7.2, 3.1), "mean", aperture_method=method, backend="cpu")
        np.testing.assert_allclose(a.value, b.value, rtol=1e-7)
        np.testing.assert_array_equal(a.npix, b.npix)
    rect = regions.RectanglePixelRegion(regions.PixCoord(8.5, 6.0), width=6, height=5)  # x 6..11, y 4..8
    a = gpucal.extract_ramp(cube["ramp"], rect, "sum", backend="cpu")
    b = gpucal.extract_ramp(cube["ramp"], (6, 4, 11, 8), "sum", backend="cpu")
    np.testing.assert_array_equal(a.value, b.value)
    far = regions.CirclePixelRegion(regions.PixCoord(100, 100), 3)
    with pytest.raises(InputError, match="outside the frame"):
        gpucal.extract_ramp(cube["ramp"], far, backend="cpu")


# --------------------------------------------------------------------------- uncertainty


def test_uncertainty_from_err_matches_monte_carlo():
    """400 integrations = 400 noise realisations of the same scene; predicted vs scatter."""
    rng = np.random.default_rng(11)
    nreal, ngroups, ny, nx = 400, 2, 9, 9
    scene = rng.uniform(100.0, 200.0, (ny, nx))
    sigma = np.full((ny, nx), 4.0)
    sigma[:, :4] = 9.0  # unequal noise, to test the weighting
    bright = (4, 4)
    scene[bright] = 5000.0  # always the max
    scene[0, 0] = -5000.0  # always the min (outside the circle, inside the rectangle)
    noise = rng.standard_normal((nreal, ngroups, ny, nx)) * sigma
    data = (scene + noise).astype(np.float32)
    err = np.broadcast_to(sigma, data.shape).astype(np.float32)
    ramp = _ramp(data)
    for function, aperture, method in [("mean", (4.3, 4.1, 3.2), "exact"), ("sum", (4.3, 4.1, 3.2), "exact"),
                                       ("mean", None, "center"), ("max", (2, 2, 6, 6), "center"),
                                       ("min", (0, 0, 3, 3), "center")]:
        p = gpucal.extract_ramp(ramp, aperture, function, err=err, aperture_method=method, backend="cpu")
        empirical = p.value.std(axis=0, ddof=1)
        predicted = p.uncertainty.mean(axis=0)
        np.testing.assert_allclose(predicted, empirical, rtol=0.10, err_msg=f"{function} {aperture}")
    # median: equal noise (the 1.2533 factor assumes it), 25 pixels
    flat = (150.0 + rng.standard_normal((nreal, 1, 5, 5)) * 6.0).astype(np.float32)
    p = gpucal.extract_ramp(_ramp(flat), None, "median", err=np.full(flat.shape, 6.0, np.float32), backend="cpu")
    assert p.uncertainty[0, 0] == pytest.approx(MEDIAN_ERROR_FACTOR * 6.0 / 5.0)
    assert p.value.std(ddof=1) == pytest.approx(p.uncertainty[0, 0], rel=0.10)


def test_uncertainty_model_from_readnoise_and_gain_matches_monte_carlo():
    """Ramps with Poisson charge and read noise; the readnoise/gain model against the scatter."""
    rng = np.random.default_rng(12)
    nreal, ngroups, ny, nx = 400, 6, 6, 6
    tframe, gain, rn = 10.0, 2.0, 14.0  # CDS read noise in DN
    rate = rng.uniform(5.0, 40.0, (ny, nx))  # DN/s
    times = tframe * (np.arange(ngroups) + 1.0)  # nframes=1: mid-time of group k is (k+1)*tframe
    increments = np.diff(np.concatenate([[0.0], times]))
    electrons = rng.poisson(rate * gain * increments[None, :, None, None], (nreal, ngroups, ny, nx)).cumsum(axis=1)
    data = 1000.0 + electrons / gain + rng.standard_normal((nreal, ngroups, ny, nx)) * rn / math.sqrt(2)
    ramp = _ramp(data.astype(np.float32), group_time=tframe, frame_time=tframe)
    gain_img, rn_img = np.full((ny, nx), gain), np.full((ny, nx), rn)
    np.testing.assert_allclose(group_mid_times(ramp), times)
    for function in ("mean", "sum", "max"):
        aperture = (2, 3) if function == "max" else None
        p = gpucal.extract_ramp(ramp, aperture, function, gain=gain_img, readnoise=rn_img, backend="cpu")
        assert p.meta["ERRSRC"] == "model: readnoise + poisson"
        empirical = p.value.std(axis=0, ddof=1)
        predicted = np.sqrt(np.mean(p.uncertainty**2, axis=0))
        np.testing.assert_allclose(predicted, empirical, rtol=0.10, err_msg=function)
    # read noise only: the first group's scatter is dominated by it, later groups are not
    p = gpucal.extract_ramp(ramp, (2, 3), "mean", readnoise=rn_img, backend="cpu")
    np.testing.assert_allclose(p.uncertainty, rn / math.sqrt(2))
    assert p.meta["ERRSRC"] == "model: readnoise"


# --------------------------------------------------------------------------- times, sums


def test_group_mid_times_formula():
    data = np.zeros((1, 4, 2, 2), np.float32)
    ramp = _ramp(data, group_time=5 * 2.0, frame_time=2.0, nframes=4, groupgap=1, drop_frames1=3)
    # t_g = TFRAME * (DRPFRMS1 + (NFRAMES + 1)/2) + g * TGROUP
    np.testing.assert_allclose(group_mid_times(ramp), 2.0 * (3 + 2.5) + 10.0 * np.arange(4))
    from gpucal.synthetic import group_read_times

    ramp = _ramp(data, group_time=3 * 10.737, frame_time=10.737, nframes=2, groupgap=1)
    np.testing.assert_allclose(group_mid_times(ramp), group_read_times(4, 10.737, 2, 1))


def test_fixed_order_sum_is_the_documented_order():
    rng = np.random.default_rng(3)
    for n in (1, 2, 63, 64, 65, 200, 4097):
        a = rng.standard_normal((3, n)) * 10.0 ** rng.integers(-6, 6, (3, n))
        got = fixed_order_sum(np, a)
        for row in range(3):
            level = list(a[row])
            while len(level) > 1:
                k = min(64, len(level))
                level += [0.0] * (-len(level) % k)
                sums = []
                for b in range(0, len(level), k):
                    acc = level[b]
                    for v in level[b + 1:b + k]:
                        acc = acc + v  # Python float addition: IEEE double
                    sums.append(acc)
                level = sums
            assert got[row] == level[0]
            assert got[row] == pytest.approx(math.fsum(a[row]), rel=1e-9, abs=1e-9)


def test_small_aperture_reads_only_its_box():
    rng = np.random.default_rng(1)
    data = rng.normal(100, 5, (3, 4, 64, 48)).astype(np.float32)

    class Recorder:
        def __init__(self, arr):
            self.arr, self.keys = arr, []
            self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim

        def __getitem__(self, key):
            self.keys.append(key)
            return self.arr[key]

    rec_data, rec_dq = Recorder(data), Recorder(np.zeros(data.shape, np.uint8))
    ramp = Ramp(rec_data, rec_dq, np.zeros((64, 48), np.uint32), group_time=10.0, frame_time=10.0, nframes=1)
    p = gpucal.extract_ramp(ramp, (20, 30, 2), "median", gain=np.full((64, 48), 2.0), backend="cpu")
    # r=2 around (20, 30), centre method (d^2 < r^2): the 3x3 pixels around it
    np.testing.assert_array_equal(p.value, np.median(data[:, :, 29:32, 19:22].reshape(3, 4, -1), axis=-1))
    assert rec_data.keys and rec_dq.keys
    for key in rec_data.keys + rec_dq.keys:
        assert isinstance(key[0], int)  # one integration at a time
        rows, cols = key[2], key[3]
        assert (rows.start, rows.stop, cols.start, cols.stop) == (29, 32, 19, 22)


# --------------------------------------------------------------------------- outputs


def test_plot_makes_a_figure(cube, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    p = gpucal.extract_ramp(cube["ramp"], (8, 7, 3), "mean", err=cube["err"], backend="cpu")
    ax = p.plot()
    assert len(ax.lines) == NINTS
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), p.times)
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), p.value[1])
    assert len(ax.collections) == NINTS  # uncertainty bands
    ax.figure.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="needs gain and readnoise"):
        p.plot(fit=True)


def test_plot_with_fitted_slope_overlay():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from gpucal.synthetic import make_exposure

    exp = make_exposure(2, 6, 16, 16, seed=4, cr_rate=0.0, bad_pixel_fraction=0.0)
    rate = np.where(np.asarray(exp.ramp.groupdq).any(axis=(0, 1)), np.inf, exp.true_rate)
    rate[np.isnan(exp.gain) | (exp.gain <= 0)] = np.inf
    y, x = np.unravel_index(np.argmin(np.abs(rate - 3.0)), rate.shape)  # a faint, clean pixel
    p = gpucal.extract_ramp(exp.ramp, (x, y), "mean", gain=exp.gain, readnoise=exp.readnoise, backend="cpu")
    slopes = p.fit_slopes()
    direct = gpucal.ramp_fit(exp.ramp, exp.gain, exp.readnoise, backend="cpu")
    np.testing.assert_allclose(slopes, direct.rateints.data[:, y, x], rtol=1e-6)
    assert np.all(np.isfinite(slopes))
    ax = Figure().add_subplot()
    assert p.plot(ax=ax, fit=True) is ax
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 2
    y = dashed[0].get_ydata()
    assert (y[-1] - y[0]) / (p.times[-1] - p.times[0]) == pytest.approx(slopes[0])


@pytest.mark.filterwarnings("ignore:'DN' did not parse as fits unit")
@pytest.mark.parametrize("suffix", [".ecsv", ".fits"])
def test_table_and_write_round_trip(cube, tmp_path, suffix):
    p = gpucal.extract_ramp(cube["ramp"], (8, 7, 3), "median", err=cube["err"], backend="cpu")
    table = p.to_table()
    assert len(table) == NINTS * NGROUPS
    assert str(table["time"].unit) == "s" and str(table["value"].unit) == "DN"
    assert str(table["uncertainty"].unit) == "DN"
    path = p.write(tmp_path / f"profile{suffix}")
    back = Table.read(path)
    for name in ("integration", "group", "time", "value", "uncertainty", "npix", "area"):
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(table[name]))
    assert str(back["value"].unit) == "DN" and str(back["time"].unit) == "s"
    assert back.meta["FUNCTION"] == "median" and back.meta["APMETHOD"] == "center"
    assert back.meta["NGROUPS"] == NGROUPS and back.meta["ERRSRC"] == "err argument"
    assert sorted(x.name for x in tmp_path.iterdir()) == [f"profile{suffix}"]  # no temp files
    with pytest.raises(InputError, match="use a .ecsv or .fits"):
        p.write(tmp_path / "profile.csv")


# --------------------------------------------------------------------------- files and CLI


@pytest.fixture(scope="module")
def exposure_files(tmp_path_factory) -> dict[str, Path]:
    from gpucal.synthetic import make_exposure, write_exposure

    exp = make_exposure(2, 5, 20, 24, seed=8)
    paths = write_exposure(exp, tmp_path_factory.mktemp("extract"), name="ex")
    return {k: Path(v) for k, v in paths.items()}


def test_file_err_extension_is_used(exposure_files, tmp_path):
    import shutil

    src = Path(shutil.copy2(exposure_files["ramp"], tmp_path / "e_ramp.fits"))
    p = gpucal.extract_ramp(src, (5, 6), "mean", backend="cpu")
    assert p.meta["ERRSRC"] == "none" and p.meta["FILENAME"] == "e_ramp.fits"
    with fits.open(src, mode="append") as hdul:
        hdul.append(fits.ImageHDU(np.zeros((2, 5, 20, 24), np.float32), name="ERR"))
    p = gpucal.extract_ramp(src, (5, 6), "mean", readnoise=np.full((20, 24), 10.0), backend="cpu")
    assert p.meta["ERRSRC"] == "model: readnoise"  # all-zero ERR is ignored
    with fits.open(src, mode="update") as hdul:
        hdul["ERR"].data[...] = 3.5
    p = gpucal.extract_ramp(src, (5, 6), "mean", readnoise=np.full((20, 24), 10.0), backend="cpu")
    assert p.meta["ERRSRC"] == "ERR extension"
    np.testing.assert_allclose(p.uncertainty, 3.5)


def test_uncal_file_and_reference_files(tmp_path):
    from gpucal.synthetic import make_exposure, write_exposure

    exp = make_exposure(1, 4, 12, 12, seed=2)
    paths = write_exposure(exp, tmp_path, name="u", kind="uncal")
    p = gpucal.extract_ramp(paths["uncal"], (5, 5, 2), "mean", gain=paths["gain"],
                            readnoise=paths["readnoise"], backend="cpu")
    expected = np.round(exp.ramp.data[0, :, 4:7, 4:7]).astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(p.value[0], expected, rtol=1e-13)
    assert p.meta["ERRSRC"] == "model: readnoise + poisson" and np.all(p.uncertainty > 0)
    assert p.meta["FILENAME"] == "u_uncal.fits"


@pytest.mark.filterwarnings("ignore:'DN' did not parse as fits unit")
def test_cli_writes_table_and_png(exposure_files, tmp_path):
    out, png = tmp_path / "prof.ecsv", tmp_path / "plots" / "prof.png"
    status = cli.main(["extract", str(exposure_files["ramp"]), "--aperture", "10,8,3", "--function",
                       "median", "-o", str(out), "--plot", str(png), "--integration", "1", "--fit", "-q"])
    assert status == 0
    table = Table.read(out)
    assert len(table) == 5 and set(table["integration"]) == {1}
    assert table.meta["ERRSRC"] == "model: readnoise + poisson"  # R_GAIN/R_READNO from the header
    direct = gpucal.extract_ramp(exposure_files["ramp"], (10, 8, 3), "median", integration=1, backend="cpu")
    np.testing.assert_array_equal(np.asarray(table["value"]), direct.value[0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a rectangle to FITS, exact method flag accepted
    fits_out = tmp_path / "rect.fits"
    assert cli.main(["extract", str(exposure_files["ramp"]), "--aperture", "2,3,6,9", "--function", "sum",
                     "-o", str(fits_out), "-q"]) == 0
    assert Table.read(fits_out).meta["APERTURE"] == "rectangle x=2..6 y=3..9"


def test_cli_prints_table_without_outputs(exposure_files, capsys):
    assert cli.main(["extract", str(exposure_files["ramp"]), "--aperture", "3,4", "-q"]) == 0
    out = capsys.readouterr().out
    assert "integration" in out and "uncertainty" in out and len(out.splitlines()) == 3 + 2 * 5


@pytest.mark.parametrize("argv, message", [
    (["--aperture", "40,3"], "pixel x=40 y=3 is outside the frame"),
    (["--aperture", "5,5,-2"], "circle radius must be > 0"),
    (["--integration", "7"], "integration 7 is out of range"),
    (["-o", "x.txt"], "use a .ecsv or .fits name"),
])
def test_cli_errors_exit_2_with_one_line(exposure_files, tmp_path, capsys, argv, message):
    argv = [a if a != "x.txt" else str(tmp_path / a) for a in argv]
    assert cli.main(["extract", str(exposure_files["ramp"]), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_bad_aperture_syntax(exposure_files, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["extract", str(exposure_files["ramp"]), "--aperture", "1,2,3,4,5"])
    assert info.value.code == 2
    assert "cannot read an aperture from '1,2,3,4,5'" in capsys.readouterr().err


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("function", FUNCTIONS)
def test_gpu_matches_cpu_bitwise(cube, function):
    kinds = KINDS + ["model"]
    for kind in kinds:
        aperture, _, method = _expected_weights("circle_exact" if kind == "model" else kind)
        kw = dict(gain=np.full((NY, NX), 2.0), readnoise=np.full((NY, NX), 12.0)) if kind == "model" \
            else dict(err=cube["err"])
        cpu = gpucal.extract_ramp(cube["ramp"], aperture, function, aperture_method=method, backend="cpu", **kw)
        gpu = gpucal.extract_ramp(cube["ramp"], aperture, function, aperture_method=method, backend="gpu", **kw)
        np.testing.assert_array_equal(gpu.value, cpu.value, err_msg=kind)
        np.testing.assert_array_equal(gpu.uncertainty, cpu.uncertainty, err_msg=kind)
        np.testing.assert_array_equal(gpu.npix, cpu.npix, err_msg=kind)
        np.testing.assert_array_equal(gpu.area, cpu.area, err_msg=kind)
        assert gpu.meta["BACKEND"] == "gpu"


@pytest.mark.gpu
def test_gpu_matches_cpu_with_ties_and_flags(cube):
    data = np.round(cube["data"] / 100.0).astype(np.float32)  # many equal values
    ramp = _ramp(data, cube["groupdq"], cube["pixeldq"])
    for function in FUNCTIONS:
        for aperture in (None, (8, 7, 4), (2, 2, 12, 10)):
            cpu = gpucal.extract_ramp(ramp, aperture, function, err=cube["err"], backend="cpu")
            gpu = gpucal.extract_ramp(ramp, aperture, function, err=cube["err"], backend="gpu")
            np.testing.assert_array_equal(gpu.value, cpu.value)
            np.testing.assert_array_equal(gpu.uncertainty, cpu.uncertainty)


@pytest.mark.gpu
def test_gpu_matches_cpu_on_a_large_frame():
    from gpucal.synthetic import make_exposure

    exp = make_exposure(1, 6, 512, 512, seed=9)
    for function in FUNCTIONS:
        kw = dict(gain=exp.gain, readnoise=exp.readnoise)
        cpu = gpucal.extract_ramp(exp.ramp, None, function, backend="cpu", **kw)
        gpu = gpucal.extract_ramp(exp.ramp, None, function, backend="gpu", **kw)
        np.testing.assert_array_equal(gpu.value, cpu.value)
        np.testing.assert_array_equal(gpu.uncertainty, cpu.uncertainty)


def test_min_max_ties_pick_the_first_sample_in_c_order():
    data = np.full((1, 1, 2, 3), 7.0, np.float32)
    err = np.arange(1.0, 7.0, dtype=np.float32).reshape(data.shape)
    err = np.ascontiguousarray(err)
    for function in ("min", "max"):
        p = gpucal.extract_ramp(_ramp(data), None, function, err=err, backend="cpu")
        assert p.value[0, 0] == 7.0 and p.uncertainty[0, 0] == 1.0
    data[0, 0, 1, 1] = 9.0
    p = gpucal.extract_ramp(_ramp(data), None, "max", err=err, backend="cpu")
    assert p.uncertainty[0, 0] == 5.0
