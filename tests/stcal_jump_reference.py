"""Run stcal 1.20's ``detect_jumps_data`` on plain arrays, the way jwst's JumpStep does."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from gpucal import dq as dqflags

STCAL_DQFLAGS = {name: value for name, value in dqflags.PIXEL.items()}


def stcal_detect_jumps(data, groupdq, pixeldq, gain, readnoise, *, group_time, nframes=1,
                       rejection_threshold=4.0, three_group_rejection_threshold=6.0,
                       four_group_rejection_threshold=5.0, flag_4_neighbors=True,
                       max_jump_to_flag_neighbors=1000.0, min_jump_to_flag_neighbors=10.0,
                       after_jump_flag_dn1=0.0, after_jump_flag_time1=0.0, after_jump_flag_dn2=0.0,
                       after_jump_flag_time2=0.0, minimum_groups=3, minimum_sigclip_groups=100,
                       only_use_ints=True, min_diffs_single_pass=10):
    """(groupdq, pixeldq, n_primary) from stcal; every input is copied first.

    Mirrors jwst 3.0 ``JumpStep``: the step is skipped for ngroups <= 2, the JumpData
    settings come from the step parameters (after-jump group counts from times divided
    by the group time) and ``maximum_cores='1'``.
    """
    from stcal.jump.jump import detect_jumps_data
    from stcal.jump.jump_class import JumpData

    data = np.array(data, dtype=np.float32, copy=True)
    groupdq = np.array(groupdq, dtype=np.uint8, copy=True)
    pixeldq = np.array(pixeldq, dtype=np.uint32, copy=True)
    if data.shape[1] <= 2:
        return groupdq, pixeldq, None
    model = SimpleNamespace(data=data, groupdq=groupdq, pixeldq=pixeldq,
                            meta=SimpleNamespace(exposure=SimpleNamespace(nframes=nframes, read_pattern=None)))
    jd = JumpData(model, np.array(gain, np.float32, copy=True), np.array(readnoise, np.float32, copy=True),
                  STCAL_DQFLAGS)
    jd.set_detection_settings(rejection_threshold, three_group_rejection_threshold, four_group_rejection_threshold,
                              max_jump_to_flag_neighbors, min_jump_to_flag_neighbors, flag_4_neighbors)
    jd.set_after_jump(after_jump_flag_dn1, int(after_jump_flag_time1 // group_time),
                      after_jump_flag_dn2, int(after_jump_flag_time2 // group_time))
    jd.set_sigma_clipping_info(minimum_groups, minimum_sigclip_groups, only_use_ints)
    jd.min_diffs_single_pass = min_diffs_single_pass
    jd.max_cores = "1"
    gdq, pdq, n_primary, _ = detect_jumps_data(jd)
    return gdq, pdq, n_primary
