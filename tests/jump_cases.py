"""Jump-detection test exposures: realistic synthetic ones and adversarial random blocks."""

from __future__ import annotations

import numpy as np

from cpu_fallback.jump import MODE_ITERATIVE, MODE_NONE, MODE_SINGLE_PASS, JumpParams
from gpucal import dq
from gpucal.jump_io import TwoPointInputs
from gpucal.synthetic import make_exposure


def exposure(nints, ngroups, ny, nx, *, seed, instrument="NIRCAM", cr_rate=2e-3, dnu_groups=0.0, nframes=1,
             frame_time=None):
    """A synthetic exposure (no JUMP_DET set), with optional extra random DO_NOT_USE groups."""
    kw = {} if frame_time is None else {"frame_time": frame_time}
    ex = make_exposure(nints, ngroups, ny, nx, seed=seed, flag_jumps=False, cr_rate=cr_rate,
                       instrument=instrument, nframes=nframes, **kw)
    if dnu_groups:
        rng = np.random.default_rng(seed + 1000)
        hit = rng.random(ex.ramp.groupdq.shape) < dnu_groups
        ex.ramp.groupdq[hit] |= np.uint8(dq.DO_NOT_USE)
    return ex


def params(nints, ngroups, mode, *, nframes=1, e1=0.0, e2=0.0, n1=0, n2=0, flag_4_neighbors=True,
           min_nb=10.0, max_nb=1000.0) -> JumpParams:
    return JumpParams(nints=nints, ngroups=ngroups, nframes=nframes, mode=mode, rejection_threshold=4.0,
                      three_group_rejection_threshold=6.0, four_group_rejection_threshold=5.0,
                      min_jump_to_flag_neighbors=min_nb, max_jump_to_flag_neighbors=max_nb,
                      after_jump_e1=e1, after_jump_e2=e2, flag_4_neighbors=flag_4_neighbors,
                      after_jump_n1=n1, after_jump_n2=n2)


def random_block(nints, ngroups, npix, *, seed, flag_rate=0.1, nan_gain=True, zero_rn=True, ties=True):
    """Adversarial inputs: jumps of both signs, DO_NOT_USE/SATURATED groups, NaN and zero
    gain, zero read noise, flat ramps whose differences tie exactly."""
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(2.0, 1.5, npix)
    rate[rng.random(npix) < 0.1] *= -1
    data = 1000.0 + np.arange(ngroups)[None, :, None] * rate[None, None] + rng.normal(0, 8, (nints, ngroups, npix))
    steps = (rng.random((nints, ngroups, npix)) < flag_rate) * rng.choice([-1.0, 1.0], (nints, ngroups, npix)) \
        * rng.lognormal(5.0, 1.5, (nints, ngroups, npix))
    data += np.cumsum(steps, axis=1)
    if ties:
        flat = rng.random(npix) < 0.1
        data[:, :, flat] = np.round(data[:, :1, flat] + 10.0 * np.arange(ngroups)[None, :, None])
    gdq = np.zeros((nints, ngroups, npix), np.uint8)
    u = rng.random((nints, ngroups, npix))
    gdq[u < flag_rate / 2] |= np.uint8(dq.DO_NOT_USE)
    gdq[(u > 0.5) & (u < 0.5 + flag_rate / 4)] |= np.uint8(dq.JUMP_DET)
    sat_from = rng.integers(1, ngroups + 5, npix)
    gdq[:, :, :] |= np.where(np.arange(ngroups)[None, :, None] >= sat_from[None, None], np.uint8(dq.SATURATED),
                             np.uint8(0))
    gain = rng.uniform(1.5, 2.5, npix).astype(np.float32)
    if nan_gain:
        gain[rng.random(npix) < 0.03] = np.nan
        gain[rng.random(npix) < 0.02] = 0.0
    readnoise = rng.uniform(5, 15, npix).astype(np.float32)
    if zero_rn:
        readnoise[rng.random(npix) < 0.05] = 0.0
    rn_e = readnoise * gain
    return TwoPointInputs(data=data.astype(np.float32), groupdq=gdq, gain=gain, rn2=(rn_e * rn_e).astype(np.float32))


MODES = {"iterative": MODE_ITERATIVE, "single": MODE_SINGLE_PASS, "none": MODE_NONE}


def inject_snowball(ex, integ, group, cy, cx, r_core=3.0, r_halo=7.0, step=3000.0):
    """A snowball: a disk of jump charge from ``group`` on, with a saturated core."""
    r = ex.ramp
    yy, xx = np.mgrid[: r.ny, : r.nx]
    dist = np.hypot(yy - cy, xx - cx)
    halo = dist <= r_halo
    core = dist <= r_core
    r.data[integ, group:, halo] += np.float32(step)
    r.data[integ, group:, core] = np.float32(60000.0)
    r.groupdq[integ, group:, core] |= np.uint8(dq.SATURATED)


def inject_shower(ex, integ, group, cy, cx, radius=12.0, step=25.0):
    """A MIRI-like shower: a faint disc of extra charge from ``group`` on (about 2 sigma per
    pixel, so few pixels pass the primary test on their own)."""
    r = ex.ramp
    yy, xx = np.mgrid[: r.ny, : r.nx]
    disc = np.hypot(yy - cy, xx - cx) <= radius
    r.data[integ, group:, disc] += np.float32(step)


def rounding_frame(first_pass=False):
    """A frame built to sit on the float32 roundings of the iterative search (5.1).

    ``first_pass=True``: differences [10, 10+u, 10.25, 10.5+u, 10.75, 10, X]; the first
    pass's float64 median is half an ulp off the float32 grid, so the float32 rounding of
    the excess X - median decides a few pixels.


    Every pixel has absolute differences [10, 10+u, 10.25, 10.5+u, X, ~1000] (u = one
    float32 ulp at 10; the group values swing around 0 so those differences are exact).
    Pass 1 flags the 1000; pass 2's clipped median (10+u + 10.25)/2 is half an ulp off the
    float32 grid, and X and the read noise step through consecutive float32 values around
    the 4-sigma boundary, so a few pixels flip if the median is not rounded to float32
    (or is rounded twice, or the excess is not rounded). Returns (data, readnoise), gain 1.
    """
    f = np.float32

    def run(start, n):
        values = [f(start)]
        for _ in range(n - 1):
            values.append(np.nextafter(values[-1], f(1e9)))
        return np.array(values, np.float32)

    u = np.nextafter(f(10.0), f(20.0)) - f(10.0)
    median = 10.125 + float(u) / 2
    x_values = run(median + 4 * np.sqrt(median + 9.0) - 60 * 1.9e-6, 120)
    rn_values = run(3.0 - 50 * 2.4e-7, 100)
    ny, nx = len(rn_values), len(x_values)
    head = [f(0), f(10)]
    head.append(f(head[-1] - (f(10) + u)))
    head.append(f(head[-1] + f(10.25)))
    head.append(f(head[-1] - (f(10.5) + u)))
    if first_pass:
        head.append(f(head[-1] + f(10.75)))
        head.append(f(head[-1] - f(10.0)))
    data = np.zeros((1, len(head) + 2 - first_pass, ny, nx), np.float32)
    for x in range(nx):
        tail = [f(head[-1] + x_values[x])]
        if not first_pass:
            tail.append(f(tail[-1] + f(1000)))
        data[0, :, :, x] = np.array(head + tail, np.float32)[:, None]
    return data, np.repeat(rn_values[:, None], nx, axis=1)
