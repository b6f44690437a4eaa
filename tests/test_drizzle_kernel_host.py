"""Host build of ``gpucal/kernels/drizzle.cu`` against ``cpu_fallback/drizzle.py``: the same
records (keys, weights, pixels) and the same replayed outputs, bit for bit, NaN included."""

import warnings

import numpy as np
import pytest

from cpu_fallback import drizzle as k
from drizzle_cases import KERNELS, add_nan_islands, affine_pixmap, random_image
from gpucal.resample.engine import plan_call
from host_build import host_compiler, host_library, launch_host

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


def _case(kernel, pixfrac):
    shape = (18, 21)
    pm = add_nan_islands(affine_pixmap(shape, 33, 0.8, flip=True, centre_out=(12, 11), distort=0.04), seed=1, n=2)
    weights = np.random.default_rng(2).random(shape).astype(np.float32)
    weights[weights < 0.15] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call = plan_call(kernel, pm, (22, 24), (0, shape[1] - 1, 0, shape[0] - 1), pixfrac, 0.8, 1.25, 0.9, -2**31)
    return call, pm, weights, shape


def _geometry(call, shape):
    c = call.consts
    return (np.float32(call.wtscale), np.int32(shape[1]), np.int32(shape[0]), np.int32(24), np.int32(22),
            np.int32(c.kernel), np.float64(c.dh), np.float64(c.pfo), np.float64(c.scale), np.float64(c.es),
            np.float64(c.sdp), np.int32(c.nlut))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pixfrac", [1.0, 0.5])
def test_records_and_replay_identical(kernel, pixfrac):
    lib = host_library("drizzle")
    call, pm, weights, shape = _case(kernel, pixfrac)
    pix = call.pix
    geo = _geometry(call, shape)

    counts = np.empty(pix.size, np.int64)
    launch_host(lib, "drizzle_count", [pix, np.int64(pix.size), pm, weights, *geo, counts])
    np.testing.assert_array_equal(counts, k.drizzle_count(pix, pm, weights, call.wtscale, 24, 22, call.consts))
    assert counts.sum() > (pix.size if kernel != "point" else pix.size // 2)

    offsets = np.cumsum(counts) - counts
    nrec = int(counts.sum())
    keys, dows, recpix = np.empty(nrec, np.int64), np.empty(nrec, np.float32), np.empty(nrec, np.int32)
    launch_host(lib, "drizzle_emit",
                [pix, np.int64(pix.size), pm, weights, *geo, call.lut, offsets, np.int32(32), keys, dows, recpix])
    ref_keys, ref_dows, ref_recpix = k.drizzle_emit(pix, pm, weights, call.wtscale, 24, 22, call.consts, call.lut)
    np.testing.assert_array_equal(keys, ref_keys)
    np.testing.assert_array_equal(dows.view(np.uint32), ref_dows.view(np.uint32))
    np.testing.assert_array_equal(recpix, ref_recpix)

    data = random_image(shape, 3, nan_fraction=0.02)
    data2 = np.stack([random_image(shape, 4), np.zeros(shape, np.float32)])
    dq = np.random.default_rng(5).integers(0, 8, shape).astype(np.uint32)
    state = dict(img=random_image((22, 24), 6), wht=np.where(np.arange(22 * 24).reshape(22, 24) % 3 == 0, 0.0,
                                                               0.5).astype(np.float32),
                 img2=np.stack([random_image((22, 24), 7), random_image((22, 24), 8)]),
                 ctx=np.zeros((22, 24), np.int32), dq=np.ones((22, 24), np.uint32))
    host = {n: a.copy() for n, a in state.items()}
    cpu = {n: a.copy() for n, a in state.items()}
    sorted_keys = np.sort(keys[(keys >> 32) != 22 * 24])
    launch_host(lib, "drizzle_replay",
                [sorted_keys, np.int64(sorted_keys.size), np.int32(32), dows, recpix, pix, data, call.iscale, data2,
                 np.array([1, 0], np.int32), np.int32(2), np.int64(data.size), call.iscale2, dq, np.int32(1),
                 host["img"], host["wht"], host["img2"], np.int64(22 * 24), host["ctx"], np.int32(1),
                 np.int32(call.bit), host["dq"]])
    k.drizzle_replay(sorted_keys, dows, recpix, pix, data, call.iscale, [data2[0], None], call.iscale2, dq, cpu["img"],
                     cpu["wht"], [cpu["img2"][0], cpu["img2"][1]], cpu["ctx"], call.bit, cpu["dq"])
    for name in state:
        np.testing.assert_array_equal(host[name].view(np.uint8), cpu[name].view(np.uint8), err_msg=name)
    assert (cpu["ctx"] != 0).any() and not np.array_equal(cpu["img"], state["img"], equal_nan=True)


def test_shared_exp_matches_libm_closely():
    from gpucal.resample import engine  # noqa: F401  (the kernels' shared exp is in cpu_fallback)

    x = -np.linspace(0.0, 250.0, 20001)
    got = k.shared_exp(x)
    want = np.exp(x)
    tiny = want < 1e-300
    assert np.all(got[x < -200.0] == 0.0)
    rel = np.abs(got[~tiny & (x >= -200)] - want[~tiny & (x >= -200)]) / want[~tiny & (x >= -200)]
    assert rel.max() < 4e-16
