"""Run stcal 1.20's OLS_C on plain arrays, the way jwst's RampFitStep does."""

from __future__ import annotations

import numpy as np

from gpucal import dq as dqflags

STCAL_DQFLAGS = {name: value for name, value in dqflags.PIXEL.items()}


def stcal_ramp_fit(data, groupdq, pixeldq, gain, readnoise, *, group_time, frame_time, nframes, groupgap=0,
                   drop_frames1=0, zeroframe=None, instrument="NIRCAM", suppress_one_group=True,
                   save_opt=False, average_dark_current=None):
    """(image_info, integ_info, opt_info) from stcal; copies every input it would modify."""
    from stcal.ramp_fitting import ramp_fit as rf
    from stcal.ramp_fitting.ramp_fit_class import RampData

    data = np.array(data, dtype=np.float32, copy=True)
    groupdq = np.array(groupdq, dtype=np.uint8, copy=True)
    pixeldq = np.array(pixeldq, dtype=np.uint32, copy=True)
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
