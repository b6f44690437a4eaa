"""`gpucal detector1` on the command line."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from test_detector1 import _no_crds_cache, _write_inputs, nir_case  # noqa: F401 (autouse fixture)

from gpucal import cli
from gpucal.pipeline import detector1_result


def _overrides(paths, skip=()):
    out = []
    for key, p in paths.items():
        if key not in skip:
            out += [f"--override-{key}", str(p)]
    return out


def test_cli_writes_the_products_of_the_api(tmp_path):
    ramp, refs = nir_case(nints=2, ngroups=5)
    uncal, paths = _write_inputs(tmp_path, ramp, refs)
    out = tmp_path / "out"
    argv = ["detector1", str(uncal), "-o", str(out), "--backend", "cpu", "-q", "--skip", "refpix",
            "--param", "jump.rejection_threshold=5", "--save-calibrated-ramp", "--max-memory", "64MB"]
    assert cli.main(argv + _overrides(paths)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["jw_test_nrca1_ramp.fits", "jw_test_nrca1_rate.fits",
                                                     "jw_test_nrca1_rateints.fits"]
    api = detector1_result(uncal, refs=paths, backend="cpu", steps={"refpix": {"skip": True},
                                                                    "jump": {"rejection_threshold": 5}})
    with fits.open(out / "jw_test_nrca1_rate.fits") as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, api.rate.data)
        np.testing.assert_array_equal(hdul["DQ"].data, api.rate.dq)
        assert hdul[0].header["S_REFPIX"] == "SKIPPED" and hdul[0].header["S_DQINIT"] == "COMPLETE"


def test_cli_errors_leave_no_files(tmp_path, capsys):
    ramp, refs = nir_case(nints=1, ngroups=4)
    uncal, paths = _write_inputs(tmp_path, ramp, refs)
    out = tmp_path / "out"
    base = ["detector1", str(uncal), "-o", str(out), "--backend", "cpu", "-q"]
    assert cli.main(base + _overrides(paths, skip=("dark",))) == 2
    assert "no DARK reference" in capsys.readouterr().err
    assert cli.main(base + _overrides(paths) + ["--param", "jump.rejection_treshold=5"]) == 2
    assert "rejection_threshold" in capsys.readouterr().err
    assert cli.main(base + _overrides(paths) + ["--param", "jump"]) == 2
    assert "STEP.NAME=VALUE" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []
