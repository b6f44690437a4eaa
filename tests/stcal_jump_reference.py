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
                       only_use_ints=True, min_diffs_single_pass=10, expand_large_events=False, min_sat_area=1.0,
                       min_jump_area=5.0, expand_factor=2.0, sat_required_snowball=True, min_sat_radius_extend=2.5,
                       sat_expand=2, edge_size=25, mask_snowball_core_next_int=True,
                       snowball_time_masked_next_int=4000.0, max_extended_radius=200, find_showers=False,
                       extend_snr_threshold=1.2, extend_min_area=90, extend_inner_radius=1, extend_outer_radius=2.6,
                       extend_ellipse_expand_ratio=1.1, time_masked_after_shower=15, max_shower_amplitude=4,
                       gpucal_flags=True):
    """(groupdq, pixeldq, n_primary) from stcal; every input is copied first.

    Mirrors jwst 3.0 ``JumpStep``: the step is skipped for ngroups <= 2, the JumpData
    settings come from the step parameters (after-jump group counts from times divided
    by the group time) and ``maximum_cores='1'``. ``gpucal_flags``: the pixel DQ first gets
    gpucal's flags for unusable gain / read noise (``stcal_reference.unusable_calibration_dq``).
    """
    from stcal.jump.jump import detect_jumps_data
    from stcal.jump.jump_class import JumpData

    data = np.array(data, dtype=np.float32, copy=True)
    groupdq = np.array(groupdq, dtype=np.uint8, copy=True)
    pixeldq = np.array(pixeldq, dtype=np.uint32, copy=True)
    if data.shape[1] <= 2:
        return groupdq, pixeldq, None
    if gpucal_flags:
        from stcal_reference import unusable_calibration_dq

        pixeldq = unusable_calibration_dq(gain, readnoise, pixeldq)
    model = SimpleNamespace(data=data, groupdq=groupdq, pixeldq=pixeldq,
                            meta=SimpleNamespace(exposure=SimpleNamespace(nframes=nframes, read_pattern=None)))
    jd = JumpData(model, np.array(gain, np.float32, copy=True), np.array(readnoise, np.float32, copy=True),
                  STCAL_DQFLAGS)
    jd.set_detection_settings(rejection_threshold, three_group_rejection_threshold, four_group_rejection_threshold,
                              max_jump_to_flag_neighbors, min_jump_to_flag_neighbors, flag_4_neighbors)
    jd.set_after_jump(after_jump_flag_dn1, int(after_jump_flag_time1 // group_time),
                      after_jump_flag_dn2, int(after_jump_flag_time2 // group_time))
    jd.set_sigma_clipping_info(minimum_groups, minimum_sigclip_groups, only_use_ints)
    jd.set_snowball_info(expand_large_events, min_jump_area, min_sat_area, expand_factor, sat_required_snowball,
                         min_sat_radius_extend, sat_expand * 2, edge_size)
    # set_shower_info also carries min_diffs_single_pass and the (doubled) maximum extended
    # radius that snowball expansion uses.
    jd.set_shower_info(find_showers, extend_snr_threshold, extend_min_area, extend_inner_radius,
                       extend_outer_radius, extend_ellipse_expand_ratio, min_diffs_single_pass,
                       max_extended_radius * 2)
    jd.max_shower_amplitude = max_shower_amplitude * group_time
    jd.grps_masked_after_shower = int(time_masked_after_shower // group_time)
    jd.mask_persist_grps_next_int = mask_snowball_core_next_int
    jd.persist_grps_flagged = int(snowball_time_masked_next_int // group_time)
    jd.max_cores = "1"
    gdq, pdq, n_primary, n_extended = detect_jumps_data(jd)
    if expand_large_events or find_showers:
        return gdq, pdq, n_primary, n_extended
    return gdq, pdq, n_primary
