"""stdatamodels models built from gpucal Ramps, for parity tests against jwst's functions."""

from __future__ import annotations

import numpy as np


def ramp_model(ramp, *, fastaxis=None, slowaxis=None, noutputs=None):
    from stdatamodels.jwst import datamodels

    model = datamodels.RampModel(data=np.array(ramp.data, dtype=np.float32),
                                 groupdq=np.array(ramp.groupdq), pixeldq=np.array(ramp.pixeldq))
    if ramp.zeroframe is not None:
        model.zeroframe = np.array(ramp.zeroframe, dtype=np.float32)
        model.meta.exposure.zero_frame = True
    m = ramp.meta
    model.meta.instrument.name = m.get("INSTRUME", "NIRCAM")
    model.meta.instrument.detector = m.get("DETECTOR", "NRCA1")
    model.meta.exposure.type = m.get("EXP_TYPE", "NRC_IMAGE")
    model.meta.exposure.nframes = ramp.nframes
    model.meta.exposure.groupgap = ramp.groupgap
    model.meta.exposure.nints = ramp.nints
    model.meta.exposure.ngroups = ramp.ngroups
    model.meta.subarray.name = m.get("SUBARRAY", "GENERIC")
    model.meta.subarray.xstart = m["SUBSTRT1"]
    model.meta.subarray.ystart = m["SUBSTRT2"]
    model.meta.subarray.xsize = m["SUBSIZE1"]
    model.meta.subarray.ysize = m["SUBSIZE2"]
    if fastaxis is not None:
        model.meta.subarray.fastaxis = fastaxis
        model.meta.subarray.slowaxis = slowaxis
    if noutputs is not None:
        model.meta.exposure.noutputs = noutputs
    return model
