"""The public ramp_fit: inputs it refuses, streaming, threads, progress, backends."""

import numpy as np
import pytest

import gpucal
from gpucal.errors import BackendUnavailableError, InputError
from ramp_cases import random_case


@pytest.fixture(scope="module")
def case():
    return random_case("api", 2, 7, 40, 24, seed=11, flag_rate=0.1)


def products_equal(a, b):
    for attr in ("data", "err", "dq", "var_poisson", "var_rnoise"):
        for x, y in ((a.rate, b.rate), (a.rateints, b.rateints)):
            np.testing.assert_array_equal(getattr(x, attr), getattr(y, attr))


def test_streaming_in_small_blocks_changes_nothing(case):
    whole = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", save_opt=True)
    one_row = 2 * 7 * 24 * 96 * 2  # bytes of about one row for both threads
    streamed = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", save_opt=True,
                               max_memory=one_row)
    products_equal(whole, streamed)
    np.testing.assert_array_equal(whole.fitopt.slope, streamed.fitopt.slope)


def test_single_thread_equals_threaded(case, monkeypatch):
    threaded = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", max_memory="200KB")
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    serial = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", max_memory="200KB")
    products_equal(threaded, serial)


def test_progress_reports_every_pixel(case):
    calls = []
    gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", max_memory="200KB",
                    progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 1
    assert calls[-1] == (40 * 24, 40 * 24)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_result_types_and_shapes(case):
    result = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu")
    assert result.backend == "cpu" and result.elapsed_s > 0
    assert result.rate.data.shape == (40, 24) and result.rate.data.dtype == np.float32
    assert result.rateints.data.shape == (2, 40, 24)
    assert result.rate.dq.dtype == np.uint32
    assert result.fitopt is None


@pytest.mark.parametrize("bad, message", [
    (lambda c: dict(gain=c.gain[:-1]), "gain must have the exposure's image shape"),
    (lambda c: dict(readnoise=c.readnoise.T), "readnoise must have the exposure's image shape"),
    (lambda c: dict(gain=c.gain.astype(complex)), "gain must be a real numeric array"),
    (lambda c: dict(max_memory="lots"), "cannot read a memory size"),
    (lambda c: dict(max_memory=10), "cannot hold one detector row"),
    (lambda c: dict(backend="tpu"), "backend must be one of"),
])
def test_bad_arguments_raise_clear_errors(case, bad, message):
    kwargs = dict(gain=case.gain, readnoise=case.readnoise, backend="cpu")
    kwargs.update(bad(case))
    with pytest.raises(InputError, match=message):
        gpucal.ramp_fit(case.ramp(), **kwargs)


def test_gpu_backend_without_gpu_names_the_cause(case, monkeypatch):
    monkeypatch.setattr("gpucal.backend.gpu_unavailable_reason", lambda: "CuPy is not installed (test)")
    with pytest.raises(BackendUnavailableError, match="CuPy is not installed"):
        gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="gpu")
    assert gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="auto").backend == "cpu"


def test_process_default_backend(case, monkeypatch):
    monkeypatch.setattr("gpucal.backend.gpu_unavailable_reason", lambda: "no device (test)")
    gpucal.set_backend("gpu")
    try:
        with pytest.raises(BackendUnavailableError):
            gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise)
    finally:
        gpucal.set_backend("auto")


def test_reference_files_as_paths(case, tmp_path):
    from gpucal.refs import write_reference

    gain_path, rn_path = tmp_path / "gain.fits", tmp_path / "readnoise.fits"
    write_reference(gain_path, "GAIN", case.gain, instrument="NIRCAM", detector="NRCA1")
    write_reference(rn_path, "READNOISE", case.readnoise, instrument="NIRCAM", detector="NRCA1")
    from_files = gpucal.ramp_fit(case.ramp(), gain_path, rn_path, backend="cpu")
    from_arrays = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu")
    products_equal(from_files, from_arrays)
    with pytest.raises(gpucal.FileFormatError):
        gpucal.ramp_fit(case.ramp(), rn_path, rn_path, backend="cpu")  # a READNOISE file given as GAIN


@pytest.mark.parametrize("process_min_samples", [1, 1 << 40], ids=["processes", "threads"])
def test_concurrent_fits_do_not_mix(monkeypatch, process_min_samples):
    """Two ramp_fit calls at once in threads (as a threaded Dask worker would run them)."""
    from concurrent.futures import ThreadPoolExecutor

    import gpucal.ramp_fitting as rf

    monkeypatch.setattr(rf, "PROCESS_MIN_SAMPLES", process_min_samples)
    cases = [random_case(f"concurrent{i}", 2, 6, 48, 20, seed=40 + i, flag_rate=0.1) for i in range(2)]
    alone = [gpucal.ramp_fit(c.ramp(), c.gain, c.readnoise, backend="cpu", max_memory="200KB") for c in cases]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda c: gpucal.ramp_fit(c.ramp(), c.gain, c.readnoise, backend="cpu",
                                                           max_memory="200KB"), cases))
    for a, b in zip(alone, together):
        products_equal(a, b)
    assert not rf._CPU_JOBS
