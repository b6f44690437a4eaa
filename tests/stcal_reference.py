"""Run stcal 1.20's OLS_C on plain arrays, the way jwst's RampFitStep does."""

from __future__ import annotations

import numpy as np

from gpucal import dq as dqflags

STCAL_DQFLAGS = {name: value for name, value in dqflags.PIXEL.items()}


def unusable_calibration_dq(gain, readnoise, pixeldq):
    """``pixeldq`` with gpucal's flags for unusable gain / read noise (docs/algorithms/ramp_fit.md,
    "Unusable calibration"), written here independently of gpucal.bad_calibration: a gain or read
    noise that is not finite and positive makes the pixel DO_NOT_USE, with NO_GAIN_VALUE for the
    gain and OTHER_BAD_PIXEL for the read noise. stcal itself flags only NaN or non-positive gain."""
    out = np.array(pixeldq, dtype=np.uint32, copy=True)
    for values, flag in ((gain, dqflags.NO_GAIN_VALUE), (readnoise, dqflags.PIXEL["OTHER_BAD_PIXEL"])):
        values = np.asarray(values, dtype=np.float64)
        bad = np.isnan(values) | np.isinf(values) | (np.nan_to_num(values, nan=1.0) <= 0)
        out[bad] |= np.uint32(dqflags.DO_NOT_USE | flag)
    return out


def nan_ramps_dnu(data, groupdq):
    """``groupdq`` with every group DO_NOT_USE in the ramps whose data are all NaN (gpucal's rule)."""
    out = np.array(groupdq, dtype=np.uint8, copy=True)
    all_nan = np.all(np.isnan(np.asarray(data)), axis=1)
    out[np.broadcast_to(all_nan[:, None], out.shape)] |= np.uint8(dqflags.DO_NOT_USE)
    return out


def stcal_ramp_fit(data, groupdq, pixeldq, gain, readnoise, *, group_time, frame_time, nframes, groupgap=0,
                   drop_frames1=0, zeroframe=None, instrument="NIRCAM", suppress_one_group=True,
                   save_opt=False, average_dark_current=None, gpucal_flags=True):
    """(image_info, integ_info, opt_info) from stcal; copies every input it would modify.

    ``gpucal_flags``: first apply gpucal's documented flags for unusable calibration and
    all-NaN ramps (:func:`unusable_calibration_dq`, :func:`nan_ramps_dnu`), so that the
    comparison is bit for bit everywhere; without them stcal gives those pixels a NaN (or 0)
    rate with DQ 0.
    """
    from stcal.ramp_fitting import ramp_fit as rf
    from stcal.ramp_fitting.ramp_fit_class import RampData

    data = np.array(data, dtype=np.float32, copy=True)
    groupdq = np.array(groupdq, dtype=np.uint8, copy=True)
    pixeldq = np.array(pixeldq, dtype=np.uint32, copy=True)
    if gpucal_flags:
        pixeldq = unusable_calibration_dq(gain, readnoise, pixeldq)
        groupdq = nan_ramps_dnu(data, groupdq)
    if average_dark_current is None:
        average_dark_current = np.zeros(pixeldq.shape, dtype=np.float32)
    if suppress_one_group and data.shape[1] == 1:
        suppress_one_group = False
    orig_gdq = groupdq.copy() if np.any(groupdq & dqflags.CHARGELOSS) else None
    rd = RampData()
    rd.set_arrays(data, groupdq, pixeldq, np.asarray(average_dark_current, dtype=np.float32),
                  orig_gdq=orig_gdq, zeroframe=None if zeroframe is None else np.array(zeroframe, np.float32))
    rd.set_meta(name=instrument, frame_time=frame_time, group_time=group_time, groupgap=groupgap,
                nframes=nframes, drop_frames1=drop_frames1)
    rd.algorithm = "OLS_C"
    rd.set_dqflags(STCAL_DQFLAGS)
    rd.start_row = 0
    rd.num_rows = data.shape[2]
    rd.suppress_one_group_ramps = suppress_one_group
    return rf.ramp_fit_data(rd, save_opt, np.array(readnoise, np.float32, copy=True),
                            np.array(gain, np.float32, copy=True), "OLS_C", "optimal", "none")
