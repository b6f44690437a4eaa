"""The batch jobs over calibrated exposures: ``resample`` (one _i2d per _cal image) and
``cube`` (one exposure's _s3d cubes), each equal to the direct call on that file."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("stdatamodels")
pytest.importorskip("gwcs")

from astropy.io import fits  # noqa: E402

from gpucal.cube import build_cube, write_synthetic_cubepars  # noqa: E402
from gpucal.resample import resample_images  # noqa: E402
from gpucal.scaleout import batch  # noqa: E402

from cube_cases import miri_dithers  # noqa: E402
from resample_models import write_cal_files  # noqa: E402


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    with Client(cluster) as c:
        yield c


def _same_arrays(a, b):
    with fits.open(a) as ha, fits.open(b) as hb:
        names = [h.name for h in ha if h.data is not None and h.name != "ASDF"]
        assert names and names == [h.name for h in hb if h.data is not None and h.name != "ASDF"]
        for name in names:
            np.testing.assert_array_equal(ha[name].data, hb[name].data, err_msg=name)


def test_resample_job_writes_each_image_on_its_own_grid(client, tmp_path):
    cal = write_cal_files(tmp_path, n=2)
    out = tmp_path / "out"
    report = batch(cal, "resample", output_dir=out, client=client, backend="cpu", kernel="square")
    assert report.ok and len(report.done) == 2
    for path in cal:
        name = path.name.replace("_cal.fits", "_i2d.fits")
        direct = resample_images([path], backend="cpu", kernel="square").to_fits(tmp_path / name)
        _same_arrays(out / name, direct)
    again = batch(cal, "resample", output_dir=out, client=client, backend="cpu", kernel="square")
    assert len(again.skipped) == 2


def test_cube_job_builds_one_exposures_cubes(client, tmp_path):
    (tmp_path / "in").mkdir()
    cal = miri_dithers(tmp_path / "in", 1)
    cubepar = write_synthetic_cubepars(tmp_path / "cubepar.fits", "MIRI")
    out = tmp_path / "out"
    # channel as an int, as `gpucal batch --option channel=1` passes it.
    report = batch(cal, "cube", output_dir=out, client=client, backend="cpu", channel=1, band="short",
                   cubepars=str(cubepar))
    assert report.ok, report.failed
    written = sorted(p.name for p in out.glob("*_s3d.fits"))
    direct = build_cube(cal, channel="1", band="short", cubepars=cubepar, backend="cpu",
                        output_dir=tmp_path / "direct")
    assert written == sorted(c.path.name for c in direct) and written
    for name in written:
        _same_arrays(out / name, tmp_path / "direct" / name)
