"""gpucal.steps.ipc against jwst 3.0.0 ipc_corr.do_correction: identical bits.

jwst computes in float32 exactly as the numpy twin does (each product rounded, added in
row-major order with the centre term last), so the results are bit-identical. Exposures are
synthetic (``gpucal.synthetic.make_exposure``), reduced from full frame to 2048-wide strips
(NIR) or 1032-wide strips (MIRI) placed against the detector edges so that every kind of
reference-pixel margin occurs; a per-pixel kernel covers only the rows the strip needs
(jwst slices it the same way).
"""

import numpy as np
import pytest

from gpucal.refs.ipc import IpcReference, synthetic_ipc_kernel
from gpucal.steps import ipc
from gpucal.synthetic import make_exposure
from jwst_models import ramp_model

jwst_ipc = pytest.importorskip("jwst.ipc.ipc_corr")


def exposure(instrument, ny, nx, xstart, ystart, seed=0, nints=2, ngroups=3):
    det = "MIRIMAGE" if instrument == "MIRI" else "NRCA1"
    ex = make_exposure(nints, ngroups, ny, nx, seed=seed, instrument=instrument, detector=det, flag_jumps=False)
    r = ex.ramp
    r.meta.update(SUBSTRT1=xstart, SUBSTRT2=ystart, SUBSIZE1=nx, SUBSIZE2=ny)
    r.data[0, 1, 5, 100] = np.nan
    r.data[-1, -1, 10:12, 7] = -0.0
    return r


def jwst_result(ramp, kernel):
    from stdatamodels.jwst import datamodels

    model = ramp_model(ramp)
    out = jwst_ipc.do_correction(model, datamodels.IPCModel(data=kernel))
    return np.array(out.data)


CASES = {
    # name: instrument, ny, nx, SUBSTRT1, SUBSTRT2  (NIR strips at the bottom / top edges, MIRI)
    "nir_bottom": ("NIRCAM", 24, 2048, 1, 1),
    "nir_top": ("NIRCAM", 20, 2048, 1, 2029),
    "nir_inner": ("NIRCAM", 30, 256, 900, 700),
    "miri": ("MIRI", 20, 1032, 1, 1),
}


@pytest.mark.parametrize("per_pixel", [False, True], ids=["2d", "4d"])
@pytest.mark.parametrize("case", list(CASES))
def test_ipc_bit_identical_to_jwst(case, per_pixel):
    instrument, ny, nx, xs, ys = CASES[case]
    ramp = exposure(instrument, ny, nx, xs, ys)
    before = ramp.data.copy()
    if per_pixel:
        kernel = synthetic_ipc_kernel((ys - 1 + ny, xs - 1 + nx), seed=1)
    else:
        kernel = synthetic_ipc_kernel()
    ref = jwst_result(ramp, kernel)
    out = ipc(ramp, IpcReference.from_array(kernel), backend="cpu", max_memory="2MB")
    np.testing.assert_array_equal(out.data, ref)
    finite = ~np.isnan(ref)
    np.testing.assert_array_equal(out.data.view(np.uint32)[finite], ref.view(np.uint32)[finite])
    np.testing.assert_array_equal(ramp.data, before)  # input untouched
    assert out.meta["S_IPC"] == "COMPLETE"
    assert not np.array_equal(out.data, before)


@pytest.mark.parametrize("ksize", [(5, 5), (2, 2), (4, 3)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_other_kernel_sizes_identical_to_jwst(ksize):
    """Larger kernels, and even sizes with jwst's unshifted centre term."""
    rng = np.random.default_rng(4)
    kernel = rng.normal(-0.01, 0.01, ksize).astype(np.float32)
    kernel[ksize[0] // 2, ksize[1] // 2] = 1.05
    ramp = exposure("NIRCAM", 16, 2048, 1, 2033, seed=3, nints=1, ngroups=2)
    ref = jwst_result(ramp, kernel)
    out = ipc(ramp, kernel, backend="cpu", max_memory="500KB")
    np.testing.assert_array_equal(out.data, ref)
