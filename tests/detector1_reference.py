"""The calwebb_detector1 chain of jwst 3.0.0 / stcal 1.20.0 functions on arrays and models, with explicit refs.

NIR order: dq_init -> saturation -> superbias -> refpix -> linearity -> dark_current -> jump ->
ramp_fit (group_scale self-skips without FRMDIVSR; ipc is skipped by default; no GAINFACT, so
gain_scale skips too). MIRI order: dq_init -> saturation -> lastframe -> linearity ->
dark_current -> jump -> ramp_fit.
"""

from __future__ import annotations

import numpy as np
from stcal_jump_reference import stcal_detect_jumps
from stcal_reference import STCAL_DQFLAGS, stcal_ramp_fit

from jwst_models import ramp_model


def _ref_meta(ramp, *models):
    for m in models:
        m.meta.instrument.name = ramp.instrument or "NIRCAM"
        m.meta.instrument.detector = ramp.meta.get("DETECTOR", "NRCA1")
        m.meta.subarray.xstart, m.meta.subarray.ystart = ramp.meta["SUBSTRT1"], ramp.meta["SUBSTRT2"]
        m.meta.subarray.xsize, m.meta.subarray.ysize = ramp.nx, ramp.ny
    return models


def reference_chain(ramp, refs, gain, readnoise, *, refpix=True):
    """(image_info, integ_info, calibrated data, groupdq after jump) from the reference packages."""
    from jwst.dq_init.dq_initialization import do_dqinit
    from jwst.lastframe.lastframe_sub import do_correction as lastframe
    from jwst.refpix.reference_pixels import correct_model
    from jwst.superbias.bias_sub import do_correction as bias_sub
    from stcal.dark_current import dark_sub
    from stcal.dark_current.dark_class import DarkData, ScienceData
    from stcal.linearity.linearity import linearity_correction
    from stcal.saturation.saturation import flag_saturated_pixels
    from stdatamodels.jwst import datamodels

    miri = ramp.instrument == "MIRI"
    model = ramp_model(ramp, fastaxis=ramp.meta.get("FASTAXIS"), slowaxis=ramp.meta.get("SLOWAXIS"),
                       noutputs=ramp.meta.get("NOUTPUTS"))
    mask = datamodels.MaskModel(dq=refs["mask"].dq.copy())
    _ref_meta(ramp, mask)
    model = do_dqinit(model, mask)

    nfr = ramp.nframes
    pattern = [[x + 1 + g * nfr for x in range(nfr)] for g in range(ramp.ngroups)]
    bias = None if miri else refs["superbias"].data.copy()
    zf = None if model.zeroframe is None or not model.meta.exposure.zero_frame else np.array(model.zeroframe)
    gdq, pdq, zf = flag_saturated_pixels(
        np.array(model.data), np.array(model.groupdq), np.array(model.pixeldq), refs["saturation"].data.copy(),
        refs["saturation"].dq.copy(), 65535.0, STCAL_DQFLAGS, n_pix_grow_sat=1, zframe=zf, read_pattern=pattern,
        bias=bias)
    model.groupdq, model.pixeldq = gdq, pdq
    if zf is not None:
        model.zeroframe = zf

    if miri:
        model = lastframe(model)
    else:
        sb = datamodels.SuperBiasModel(data=refs["superbias"].data.copy(), dq=refs["superbias"].dq.copy())
        _ref_meta(ramp, sb)
        model = bias_sub(model, sb)
        if refpix:
            conv = dict(refpix_algorithm="median", sirs_kernel_model=None, sigreject=4.0, gaussmooth=1.0,
                        halfwidth=30)
            correct_model(model, True, True, 11, 1.0, True, conv, 3.0)

    zf = np.array(model.zeroframe) if ramp.zeroframe is not None else None
    data, pdq, zf = linearity_correction(np.array(model.data), np.array(model.groupdq), np.array(model.pixeldq),
                                         refs["linearity"].data.copy(), refs["linearity"].dq.copy(), STCAL_DQFLAGS,
                                         zframe=zf)
    sci = ScienceData()
    sci.data, sci.groupdq, sci.pixeldq = data, np.array(model.groupdq), pdq
    sci.exp_nframes, sci.exp_groupgap, sci.exp_intstart = ramp.nframes, ramp.groupgap, None
    dark = DarkData()
    dark.data, dark.groupdq = refs["dark"].data.copy(), refs["dark"].dq.copy()
    dark.exp_nframes, dark.exp_groupgap = refs["dark"].header["NFRAMES"], refs["dark"].header["GROUPGAP"]
    dark.exp_ngroups = refs["dark"].data.shape[-3]
    out, _ = dark_sub.do_correction_data(sci, dark)

    gdq, pdq, _ = stcal_detect_jumps(out.data, out.groupdq, out.pixeldq, gain, readnoise,
                                     group_time=ramp.group_time, nframes=ramp.nframes)
    image, integ, _ = stcal_ramp_fit(out.data, gdq, pdq, gain, readnoise, group_time=ramp.group_time,
                                     frame_time=ramp.frame_time, nframes=ramp.nframes, groupgap=ramp.groupgap,
                                     zeroframe=zf, instrument=ramp.instrument)
    return image, integ, np.array(out.data), gdq
