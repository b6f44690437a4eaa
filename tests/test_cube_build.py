"""build_cube end to end against jwst 3.0.0's CubeBuildStep on synthetic MIRI MRS _cal files.

The synthetic files (tests/cube_cases.py) carry a gwcs made of astropy models; the CUBEPAR
reference is gpucal's synthetic one; no CRDS. Cubes are compared after the float32 cast:
SCI, ERR, DQ and WMAP must be identical (NaN positions included) and the WCS must agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stdatamodels")
pytest.importorskip("gwcs")

from cube_cases import miri_cal, miri_dithers, nirspec_dithers  # noqa: E402

from gpucal.cli import main  # noqa: E402
from gpucal.cube import build_cube, read_cubepars, write_synthetic_cubepars  # noqa: E402
from gpucal.errors import FileFormatError, InputError  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cube")
    for name in ("two", "four"):
        (d / name).mkdir()
    two, four = miri_dithers(d / "two", 2), miri_dithers(d / "four", 4)
    return {"two": two, "four": four, "cubepar": write_synthetic_cubepars(d / "cubepar.fits", "MIRI"), "dir": d}


@pytest.fixture(scope="module")
def jwst_cube():
    """CubeBuildStep on the same files (cached per case)."""
    pytest.importorskip("jwst")
    import stpipe.crds_client
    from jwst.cube_build import CubeBuildStep

    cache = {}
    saved = stpipe.crds_client.get_context_used
    # The step records the CRDS context at the end; there is no CRDS here.
    stpipe.crds_client.get_context_used = lambda observatory: "jwst_0000.pmap"

    def run(paths, cubepar, **pars):
        key = (tuple(paths), tuple(sorted(pars.items())))
        if key not in cache:
            step = CubeBuildStep()
            step.override_cubepar = str(cubepar)
            for name, value in pars.items():
                setattr(step, name, value)
            cache[key] = step.run([str(p) for p in paths])
        return cache[key]

    yield run
    stpipe.crds_client.get_context_used = saved


def _assert_same_cube(ref, path: Path) -> None:
    from stdatamodels.jwst import datamodels

    with datamodels.IFUCubeModel(str(path)) as got:
        assert got.data.shape == ref.data.shape
        for name in ("data", "err", "dq", "weightmap"):
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
        assert got.data.dtype.kind == "f" and got.data.dtype.itemsize == 4 and got.dq.dtype.kind == "u"
        nz, ny, nx = got.data.shape
        z, y, x = np.mgrid[0:nz:9, 0:ny:4, 0:nx:4]
        np.testing.assert_allclose(np.array(got.meta.wcs(x, y, z)), np.array(ref.meta.wcs(x, y, z)),
                                   rtol=1e-13, atol=0)
        for key in ("crval1", "crval2", "crval3", "cdelt1", "cdelt2", "cdelt3", "crpix1", "crpix2",
                    "pc1_1", "pc1_2", "pc2_1", "pc2_2"):
            assert getattr(got.meta.wcsinfo, key) == getattr(ref.meta.wcsinfo, key), key
        assert got.meta.photometry.pixelarea_arcsecsq == ref.meta.photometry.pixelarea_arcsecsq
        assert got.meta.cal_step.cube_build == "COMPLETE"
        # Real content: in planes with data, most voxels have data.
        good = got.dq == 0
        planes = good.any(axis=(1, 2))
        assert planes.sum() >= 10
        assert np.count_nonzero(good[planes]) > 0.3 * good[planes].size


@pytest.mark.parametrize("weighting,coord_system,files", [
    ("drizzle", "skyalign", "two"),
    ("drizzle", "ifualign", "four"),
    ("emsm", "skyalign", "two"),
    ("msm", "skyalign", "four"),
    ("msm", "ifualign", "two"),
])
def test_matches_cube_build_step(data, jwst_cube, tmp_path, weighting, coord_system, files):
    paths = data[files]
    ref = jwst_cube(paths, data["cubepar"], channel="1", weighting=weighting, coord_system=coord_system)
    assert len(ref) == 1
    cubes = build_cube(paths, channel="1", cubepars=data["cubepar"], weighting=weighting,
                       coord_system=coord_system, backend="cpu", output_dir=tmp_path)
    assert len(cubes) == 1
    cube = cubes[0]
    assert cube.path == tmp_path / "dither1_ch1-short_s3d.fits"
    assert cube.path.name == ref[0].meta.filename + "_s3d.fits"
    _assert_same_cube(ref[0], cube.path)


def test_user_parameters_match(data, jwst_cube, tmp_path):
    """scalexy/scalew/rois/roiw and weight_power overrides are applied as jwst applies them."""
    paths = data["two"]
    pars = dict(scalexy=0.2, scalew=0.0015, rois=0.3, roiw=0.004, weight_power=1.0)
    ref = jwst_cube(paths, data["cubepar"], channel="1", band="short", weighting="msm", **pars)
    cube = build_cube(paths, channel="1", band="short", cubepars=data["cubepar"], weighting="msm",
                      output_dir=tmp_path, **pars)[0]
    assert cube.grid.cdelt1 == 0.2 and cube.grid.cdelt3 == 0.0015
    _assert_same_cube(ref[0], cube.path)


@pytest.fixture(scope="module")
def two_bands(tmp_path_factory):
    """Channel-1 SHORT and MEDIUM exposures, two dithers each (CHANNEL keyword '1')."""
    d = tmp_path_factory.mktemp("bands")
    short = miri_dithers(d, 2, channel="1")
    medium = [miri_cal(d / f"med{i}_cal.fits", ra0=45.0 + i * 1e-4, dec0=-30.0, seed=10 + i, channel="1",
                       band="MEDIUM", lam0=5.645) for i in range(2)]
    return [medium[0], short[0], medium[1], short[1]]  # interleaved: bands are regrouped


@pytest.mark.parametrize("weighting,pars", [("drizzle", {}), ("emsm", {"scalew": 0.002})])
def test_two_bands_one_cube(data, two_bands, jwst_cube, tmp_path, weighting, pars):
    """output_type='channel' combines both bands, short files first, into one cube."""
    ref = jwst_cube(two_bands, data["cubepar"], channel="1", weighting=weighting, output_type="channel", **pars)
    assert len(ref) == 1
    cube = build_cube(two_bands, channel="1", cubepars=data["cubepar"], weighting=weighting,
                      output_type="channel", output_dir=tmp_path, **pars)[0]
    assert cube.bands == [("1", "short"), ("1", "medium")]
    assert cube.path.name == ref[0].meta.filename + "_s3d.fits"
    _assert_same_cube(ref[0], cube.path)


@pytest.mark.parametrize("weighting", ["drizzle", "msm"])
def test_two_bands_multi(data, two_bands, jwst_cube, tmp_path, weighting):
    """output_type='multi': one cube on the CUBEPAR wavelength table (WAVE-TAB), per-point ROIs."""
    ref = jwst_cube(two_bands, data["cubepar"], weighting=weighting, output_type="multi")
    cube = build_cube(two_bands, cubepars=data["cubepar"], weighting=weighting, output_type="multi",
                      output_dir=tmp_path)[0]
    assert not cube.grid.linear and cube.data.shape[0] > 50
    assert cube.path.name == ref[0].meta.filename + "_s3d.fits"
    _assert_same_cube(ref[0], cube.path)
    from stdatamodels.jwst import datamodels

    with datamodels.IFUCubeModel(str(cube.path)) as got:
        assert got.meta.wcsinfo.ctype3 == "WAVE-TAB"
        np.testing.assert_array_equal(got.wavetable["wavelength"].ravel(),
                                      ref[0].wavetable["wavelength"].ravel())


def test_two_bands_one_cube_per_band(data, two_bands, jwst_cube, tmp_path):
    refs = jwst_cube(two_bands, data["cubepar"])
    cubes = build_cube(two_bands, cubepars=data["cubepar"], output_dir=tmp_path)
    assert [c.bands for c in cubes] == [[("1", "short")], [("1", "medium")]]
    assert len(refs) == 2
    for ref, cube in zip(refs, cubes):
        assert cube.path.name == ref.meta.filename + "_s3d.fits"
        _assert_same_cube(ref, cube.path)


@pytest.fixture(scope="module")
def nirspec(tmp_path_factory):
    d = tmp_path_factory.mktemp("nrs")
    return {"files": nirspec_dithers(d, 2), "cubepar": write_synthetic_cubepars(d / "cubepar.fits", "NIRSPEC")}


@pytest.mark.parametrize("weighting,coord_system,output_type", [
    ("drizzle", "skyalign", "band"), ("emsm", "ifualign", "band"), ("msm", "skyalign", "multi"),
])
def test_nirspec_matches_cube_build_step(nirspec, jwst_cube, tmp_path, weighting, coord_system, output_type):
    ref = jwst_cube(nirspec["files"], nirspec["cubepar"], weighting=weighting, coord_system=coord_system,
                    output_type=output_type)
    cubes = build_cube(nirspec["files"], cubepars=nirspec["cubepar"], weighting=weighting,
                       coord_system=coord_system, output_type=output_type, output_dir=tmp_path)
    assert len(ref) == len(cubes) == 1
    assert cubes[0].bands == [("g140h", "f100lp")]
    assert cubes[0].path.name == "nrs1_g140h-f100lp_s3d.fits" == ref[0].meta.filename + "_s3d.fits"
    _assert_same_cube(ref[0], cubes[0].path)


def test_file_without_valid_pixels_is_skipped(data, jwst_cube, tmp_path):
    """A file whose pixels are all DO_NOT_USE adds nothing, not even DQ (as in jwst)."""
    from stdatamodels.jwst import datamodels

    bad = miri_cal(tmp_path / "bad_cal.fits", seed=7, ra0=45.0001)
    with datamodels.IFUImageModel(str(bad)) as model:
        model.dq |= 1
        model.save(str(bad))
    paths = [data["two"][0], bad]
    ref = jwst_cube(paths, data["cubepar"], channel="1")
    cube = build_cube(paths, channel="1", cubepars=data["cubepar"], output_dir=tmp_path / "out")[0]
    _assert_same_cube(ref[0], cube.path)


def test_output_type_band_builds_one_cube_per_band(data, tmp_path):
    import gpucal

    calls = []
    cubes = gpucal.build_cube(data["two"], channel="1", cubepars=data["cubepar"],
                              progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    assert [c.bands for c in cubes] == [[("1", "short")]]
    assert cubes[0].path is None  # nothing written without output_dir
    assert list(tmp_path.iterdir()) == []


def test_cubepars_values_are_float32(data):
    pars = read_cubepars(data["cubepar"], "MIRI", "emsm")
    b = pars.band(("1", "short"))
    assert b.spectralstep == float(np.float32(0.001)) != 0.001
    assert b.scalerad == float(np.float32(0.13))
    with pytest.raises(InputError, match="no CUBEPAR entry"):
        pars.band(("5", "short"))


# ----------------------------------------------------------------------------- bad input


def _nothing_written(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def test_not_an_ifu_product(data, tmp_path):
    bad = miri_cal(tmp_path / "img_cal.fits", exp_type="MIR_IMAGE")
    out = tmp_path / "out"
    with pytest.raises(FileFormatError, match="not an IFU exposure"):
        build_cube([data["two"][0], bad], channel="1", cubepars=data["cubepar"], output_dir=out)
    assert _nothing_written(out)


def test_missing_wcs(data, tmp_path):
    bad = miri_cal(tmp_path / "nowcs_cal.fits", with_wcs=False)
    out = tmp_path / "out"
    with pytest.raises(FileFormatError, match="no WCS"):
        build_cube(bad, channel="1", cubepars=data["cubepar"], output_dir=out)
    assert _nothing_written(out)


def test_band_not_present(data, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="no input file covers the selected band"):
        build_cube(data["two"], channel="1", band="long", cubepars=data["cubepar"], output_dir=out)
    assert _nothing_written(out)


def test_mixed_instruments(data, tmp_path):
    other = miri_cal(tmp_path / "nrs_cal.fits", exp_type="NRS_IFU")
    with pytest.raises(InputError, match="mix instruments"):
        build_cube([data["two"][0], other], cubepars=data["cubepar"], output_dir=tmp_path / "out")


def test_missing_cubepar(data, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="does not exist"):
        build_cube(data["two"], channel="1", cubepars=tmp_path / "nope.fits")
    monkeypatch.delenv("CRDS_PATH", raising=False)
    with pytest.raises(InputError, match="cubepars=PATH"):
        build_cube(data["two"], channel="1")
    pytest.importorskip("crds")
    # An empty cache and an unreachable server: a clear error, not crds' process exit.
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "crds"))
    monkeypatch.setenv("CRDS_SERVER_URL", "https://localhost:1")
    with pytest.raises(InputError, match="CRDS"):
        build_cube(data["two"], channel="1")


@pytest.mark.parametrize("kw,match", [
    (dict(weighting="area"), "weighting"),
    (dict(coord_system="internal_cal"), "coord_system"),
    (dict(output_type="user"), "output_type"),
])
def test_bad_options(data, kw, match):
    with pytest.raises(InputError, match=match):
        build_cube(data["two"], cubepars=data["cubepar"], **kw)


# ----------------------------------------------------------------------------- CLI


def test_cli_cube(data, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["cube", *map(str, data["two"]), "--channel", "1", "--band", "short", "--cubepars",
            str(data["cubepar"]), "-o", str(out), "--backend", "cpu", "-q"]
    assert main(args) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["dither1_ch1-short_s3d.fits"]
    api = build_cube(data["two"], channel="1", band="short", cubepars=data["cubepar"])[0]
    from astropy.io import fits

    with fits.open(out / written[0]) as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, api.data)
        np.testing.assert_array_equal(hdul["WMAP"].data, api.wmap)
        assert hdul["SCI"].header["CTYPE3"] == "WAVE"


def test_cli_cube_outputs_follow_the_output_rule(data, tmp_path, capsys):
    out = tmp_path / "cli"
    out.mkdir()
    args = ["cube", *map(str, data["two"]), "--channel", "1", "--band", "short", "--cubepars",
            str(data["cubepar"]), "-o", str(out), "--backend", "cpu", "-q"]
    target = out / "dither1_ch1-short_s3d.fits"
    target.write_bytes(b"an earlier cube")
    assert main(args) == 2
    assert "dither1_ch1-short_s3d.fits exists; pass --overwrite" in capsys.readouterr().err
    assert target.read_bytes() == b"an earlier cube"
    target.unlink()
    target.symlink_to(Path(data["two"][0]).resolve())  # the cube's name is a link to an input
    assert main([*args, "--overwrite"]) == 2
    assert "the same file as the input" in capsys.readouterr().err
    assert target.is_symlink()


def test_cli_cube_bad_band(data, tmp_path, capsys):
    out = tmp_path / "cli"
    status = main(["cube", str(data["two"][0]), "--channel", "1", "--band", "long",
                   "--cubepars", str(data["cubepar"]), "-o", str(out), "-q"])
    assert status == 2
    assert "no input file covers the selected band" in capsys.readouterr().err
    assert _nothing_written(out)
