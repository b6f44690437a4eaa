"""refpix array code on the GPU path: through a numpy stand-in for CuPy here, on CuPy with ``-m gpu``.

The statistics are computed on the host for both backends, so the two must agree bit for bit.
"""

import importlib

import numpy as np
import pytest

from refpix_cases import structured

refpix_module = importlib.import_module("gpucal.steps.refpix")

CASES = {
    "nir_strip": lambda: structured("NIRCAM", 2, 2, 24, 2048, 1, 1, seed=1, FASTAXIS=2, SLOWAXIS=1, NOUTPUTS=4),
    "nir_single": lambda: structured("NIRCAM", 1, 2, 32, 48, 1, 1, seed=3, FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=1),
    "miri": lambda: structured("MIRI", 1, 3, 1024, 1032, 1, 1, seed=6),
}


def _with_refs(ramp):
    from gpucal import dq as dqflags

    ramp.pixeldq[:4, :] |= dqflags.REFERENCE_PIXEL
    ramp.pixeldq[:, :4] |= dqflags.REFERENCE_PIXEL
    return ramp


@pytest.fixture
def fake_gpu(cupy_stand_in, monkeypatch):
    monkeypatch.setattr(refpix_module, "resolve_backend", lambda b=None: "cpu" if b == "cpu" else "gpu")


@pytest.mark.parametrize("case", list(CASES))
def test_gpu_path_equals_cpu_with_stand_in(fake_gpu, case):
    ramp = _with_refs(CASES[case]())
    gpu = refpix_module.refpix(ramp, backend="gpu")
    cpu = refpix_module.refpix(ramp, backend="cpu")
    np.testing.assert_array_equal(gpu.data, cpu.data)


@pytest.mark.gpu
@pytest.mark.parametrize("case", list(CASES))
def test_gpu_equals_cpu(case):
    ramp = _with_refs(CASES[case]())
    gpu = refpix_module.refpix(ramp, backend="gpu")
    cpu = refpix_module.refpix(ramp, backend="cpu")
    np.testing.assert_array_equal(gpu.data, cpu.data)
    finite = ~np.isnan(cpu.data)
    np.testing.assert_array_equal(gpu.data.view(np.uint32)[finite], cpu.data.view(np.uint32)[finite])
