"""Steps on a Ramp already on the GPU (what the detector1 chain hands them): the result stays
on the device, no ramp-sized array crosses to or from the host, and the bits equal the CPU's.

Runs on tests/fake_cupy.py's device stand-in (kernels from the host build, transfers
recorded) everywhere, and on real CuPy with ``-m gpu``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from steps_cases import raw_exposure, refs_for

from gpucal import steps
from gpucal.backend import on_device, to_host
from gpucal.pipeline.detector1 import to_device

IPC_2D = np.array([[0.0, 0.01, 0.0], [0.01, 0.96, 0.01], [0.0, 0.01, 0.0]], np.float32)


def _cases():
    ramp = raw_exposure(2, 6, 40, 48, nframes=4)
    ramp.meta.update(FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=4, FRMDIVSR=2)
    refs = refs_for(ramp)
    with_inverse = copy.deepcopy(refs["linearity"])
    with_inverse.inv_coeffs = with_inverse.data.copy()
    ipc_4d = np.broadcast_to(IPC_2D[:, :, None, None], (3, 3, 2048, 2048)).copy()
    single = copy.copy(ramp)
    single.meta = dict(ramp.meta, NOUTPUTS=1)
    miri = raw_exposure(2, 5, 32, 40, zeroframe=False, instrument="MIRI", detector="MIRIMAGE")
    miri_refs = refs_for(miri, dark_frames=10, dark_ints=2)
    return [
        ("group_scale", ramp, lambda r, b: steps.group_scale(r, backend=b)),
        ("dq_init", ramp, lambda r, b: steps.dq_init(r, refs["mask"], backend=b)),
        ("saturation", ramp, lambda r, b: steps.saturation(r, refs["saturation"], superbias_ref=refs["superbias"],
                                                          n_pix_grow_sat=2, backend=b)),
        ("ipc 2-D", ramp, lambda r, b: steps.ipc(r, IPC_2D, backend=b)),
        ("ipc per pixel", ramp, lambda r, b: steps.ipc(r, ipc_4d, backend=b)),
        ("superbias", ramp, lambda r, b: steps.superbias(r, refs["superbias"], backend=b)),
        ("refpix", ramp, lambda r, b: steps.refpix(r, backend=b)),
        ("refpix single output", single, lambda r, b: steps.refpix(r, backend=b)),
        ("linearity", ramp, lambda r, b: steps.linearity(r, refs["linearity"], backend=b)),
        ("linearity read-level", ramp, lambda r, b: steps.linearity(r, with_inverse, backend=b)),
        ("dark_current", ramp, lambda r, b: steps.dark_current(r, refs["dark"], backend=b).ramp),
        ("firstframe", miri, lambda r, b: steps.firstframe(r, backend=b)),
        ("lastframe", miri, lambda r, b: steps.lastframe(r, backend=b)),
        ("dark_current MIRI", miri, lambda r, b: steps.dark_current(r, miri_refs["dark"], backend=b).ramp),
    ]


def _check(name, ramp, call):
    expected = call(ramp, "cpu")
    got = call(to_device(ramp), "gpu")
    for key in ("data", "groupdq", "pixeldq", "zeroframe"):
        a, b = getattr(got, key), getattr(expected, key)
        if b is None:
            assert a is None, f"{name}: {key}"
            continue
        assert on_device(a), f"{name}: {key} left the device"
        a = to_host(a)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{name}: {key}"
        np.testing.assert_array_equal(a.view(np.uint8), np.asarray(b).view(np.uint8), err_msg=f"{name}: {key}")
    assert got.meta == expected.meta, name


def test_device_ramps_stay_on_the_device_stand_in(cupy_stand_in):
    """The stand-in refuses what CuPy refuses (np.asarray of a device array, host arrays in
    device arithmetic), so host fallbacks hidden by numpy subclassing fail here."""
    transfers = cupy_stand_in.transfers
    for name, ramp, call in _cases():
        expected = call(ramp, "cpu")
        dev = to_device(ramp)
        def ramp_copies():  # a per-pixel IPC kernel (kh, kw, ny, nx) may go up: it is a reference
            return [c for c in transfers.uploads + transfers.downloads if c[1] == ramp.shape]

        before = ramp_copies()
        got = call(dev, "gpu")
        assert ramp_copies() == before, f"{name}: ramp copied host<->device"
        for key in ("data", "groupdq", "pixeldq"):  # the input is not modified
            np.testing.assert_array_equal(np.asarray(getattr(dev, key)), np.asarray(getattr(ramp, key)),
                                          err_msg=f"{name}: input {key} modified")
        _check(name, ramp, lambda r, b, e=expected, g=got: g if b == "gpu" else e)


@pytest.mark.gpu
def test_device_ramps_stay_on_the_device():
    for name, ramp, call in _cases():
        _check(name, ramp, call)
