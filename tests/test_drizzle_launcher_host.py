"""The drizzle CuPy launcher without a GPU: ``tests/fake_cupy.py`` stands in for CuPy and
every launch runs the host build of ``drizzle.cu``. ``Drizzle(backend="gpu")`` must equal
the CPU backend bit for bit, with blocks small enough that pixels and records are split."""

import warnings

import numpy as np
import pytest

from drizzle_cases import KERNELS, add_nan_islands, affine_pixmap, outputs, random_image, run
from gpucal.resample import Drizzle
from host_build import host_compiler

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


class _Launches:
    """The kernels the stand-in ran, by name."""

    def __init__(self, runtime):
        self.runtime = runtime

    def names(self) -> list[str]:
        return [op.name for op in self.runtime.ops("kernel")]


@pytest.fixture
def host_gpu(cupy_stand_in, monkeypatch):
    from gpucal.gpu import drizzle as launcher
    from gpucal.resample import drizzle as api

    monkeypatch.setattr(api, "resolve_backend", lambda b=None: "cpu" if b == "cpu" else "gpu")
    monkeypatch.setattr(launcher, "GPU_BLOCK_PIXELS", 97)
    monkeypatch.setattr(launcher, "GPU_BLOCK_RECORDS", 300)
    return _Launches(cupy_stand_in)


@pytest.mark.parametrize("kernel", KERNELS)
def test_gpu_launcher_equals_cpu(host_gpu, kernel):
    shape = (16, 19)
    dq = np.random.default_rng(7).integers(0, 16, shape).astype(np.uint32)
    weights = np.random.default_rng(3).random(shape).astype(np.float32)
    weights[weights < 0.1] = 0
    calls = []
    for s in range(3):
        pm = add_nan_islands(affine_pixmap(shape, 25 * s, 0.9 + 0.2 * s, flip=s == 1, centre_out=(11, 10)), seed=s)
        calls.append(dict(data=random_image(shape, s, nan_fraction=0.02), exptime=1.0, pixmap=pm, weight_map=weights,
                          dq=dq, data2=[random_image(shape, 9), None], pixfrac=0.7))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpu = outputs(run(Drizzle, calls, kernel=kernel, out_shape=(21, 23), backend="gpu", fillval=0))
        cpu = outputs(run(Drizzle, calls, kernel=kernel, out_shape=(21, 23), backend="cpu", fillval=0))
        plain = outputs(run(Drizzle, [dict(c, dq=None, data2=None) for c in calls[:2]], kernel=kernel,
                            out_shape=(21, 23), backend="gpu", max_ctx_id=40, begin_ctx_id=31))
        plain_cpu = outputs(run(Drizzle, [dict(c, dq=None, data2=None) for c in calls[:2]], kernel=kernel,
                                out_shape=(21, 23), backend="cpu", max_ctx_id=40, begin_ctx_id=31))
    launches = host_gpu.names()
    assert {"drizzle_count", "drizzle_emit", "drizzle_replay"} <= set(launches)
    assert launches.count("drizzle_count") > 3  # several pixel blocks per call
    for got, want in ((gpu, cpu), (plain, plain_cpu)):
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name].view(np.uint8), want[name].view(np.uint8), err_msg=name)
    assert (plain["out_ctx"][0] < 0).any() and (plain["out_ctx"][1] == 1).any()


def test_gpu_launcher_also_planes(host_gpu):
    """``also`` images on the GPU path (one launch sequence each) equal the CPU path's."""
    shape, out_shape = (14, 15), (17, 18)
    pixmap = affine_pixmap(shape, 20.0, 1.1)
    results = []
    for backend in ("cpu", "gpu"):
        targets = [(random_image(shape, 4), np.zeros(out_shape, np.float32), np.zeros(out_shape, np.float32))]
        d = Drizzle(kernel="square", out_shape=out_shape, backend=backend)
        d.add_image(random_image(shape, 3), exptime=1.0, pixmap=pixmap, also=targets)
        results.append(targets[0][1:])
    assert (results[0][1] > 0).sum() > 100
    for cpu, gpu in zip(*results):
        np.testing.assert_array_equal(cpu.view(np.uint32), gpu.view(np.uint32))


def test_gpu_strided_and_fortran_outputs_are_updated_in_place(host_gpu):
    """User outputs in any layout (strided out_img, Fortran-ordered out_wht and out_dq) are
    worked on as C-ordered device copies and written back, as on the CPU path: the kernels
    index in C order and cupy.asarray keeps a Fortran order."""
    shape, out_shape = (20, 22), (26, 27)
    dq = np.random.default_rng(8).integers(0, 16, shape).astype(np.uint32)
    calls = [dict(data=random_image(shape, s), exptime=1.0, pixmap=affine_pixmap(shape, 30 * s + 10, 0.9 + 0.1 * s),
                  pixfrac=0.8, dq=dq) for s in range(2)]
    want = run(Drizzle, calls, out_img=np.zeros(out_shape, np.float32), out_wht=np.zeros(out_shape, np.float32),
               out_dq=np.zeros(out_shape, np.uint32), backend="cpu")
    big = np.full((out_shape[0], 2 * out_shape[1]), -7.0, np.float32)
    img = big[:, ::2]
    img[...] = 0.0
    wht = np.asfortranarray(np.zeros(out_shape, np.float32))
    out_dq = np.asfortranarray(np.zeros(out_shape, np.uint32))
    got = run(Drizzle, calls, out_img=img, out_wht=wht, out_dq=out_dq, backend="gpu")
    assert got.out_img is img and got.out_wht is wht and got.out_dq is out_dq and (wht > 0).sum() > 300
    for name in ("out_img", "out_wht", "out_dq"):
        np.testing.assert_array_equal(getattr(got, name).view(np.uint32), getattr(want, name).view(np.uint32),
                                      err_msg=name)
    assert (big[:, 1::2] == -7.0).all()


@pytest.mark.parametrize("nout", [22 * 24, 2**31 - 1, 2**31, 3 * 2**31 + 5, 2**40])
def test_key_layout_fits_int64_for_mosaics_of_2_31_pixels_and_more(nout):
    """Keys (out_index << bits) | record: the sentinel out_index = nout must fit an int64 (the
    launcher shifted by 32 bits and raised OverflowError from 2**31 output pixels on)."""
    from gpucal.gpu.drizzle import key_layout

    bits, sentinel, max_records = key_layout(nout)
    assert isinstance(sentinel, np.int64) and int(sentinel) >> bits == nout and nout << bits < 2**63
    assert bits == 32 if nout < 2**31 else bits < 32
    assert 1 <= max_records <= 1 << bits


def test_gpu_launcher_with_few_record_bits(host_gpu, monkeypatch):
    """The kernels' key split as for a mosaic of ~2**54 pixels (9-bit record numbers, blocks of
    at most 512 records) gives the CPU's bits."""
    from gpucal.gpu import drizzle as launcher

    monkeypatch.setattr(launcher, "record_bits", lambda nout: 9)
    monkeypatch.setattr(launcher, "GPU_BLOCK_RECORDS", 5000)
    shape = (16, 19)
    calls = [dict(data=random_image(shape, s), exptime=1.0, pixmap=affine_pixmap(shape, 25 * s, 1.1, centre_out=(11, 10)),
                  pixfrac=0.9) for s in range(2)]
    gpu = outputs(run(Drizzle, calls, kernel="square", out_shape=(21, 23), backend="gpu"))
    cpu = outputs(run(Drizzle, calls, kernel="square", out_shape=(21, 23), backend="cpu"))
    assert (cpu["out_wht"] > 0).sum() > 200
    for name in cpu:
        np.testing.assert_array_equal(gpu[name].view(np.uint8), cpu[name].view(np.uint8), err_msg=name)
