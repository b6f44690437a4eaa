"""Packaging of the Dask scale-out: extras, the container's dask-cuda and its documented commands.

The structural Dockerfile checks (parse, non-root user, entry point, every pip target an
extra) are in test_packaging.py; these add what batches need.
"""

from __future__ import annotations

import re
import tomllib

from test_packaging import DOCKERFILE, ROOT, _pip_install_targets


def _extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.\-]+(\[[^\]]*\])?", r).group(0).lower() for r in requirements}


def test_dask_extras():
    extras = _extras()
    assert "dask[distributed]" in _names(extras["dask"])
    assert {"dask[distributed]", "dask-cuda[cu12]"} <= _names(extras["dask-cuda"])
    assert {"dask[distributed]", "dask-cuda[cu13]"} <= _names(extras["dask-cuda-cuda13"])
    assert "dask[distributed]" in _names(extras["test"])


def test_container_installs_gpu_and_dask_cuda_extras():
    installed = set()
    for target in _pip_install_targets():
        match = re.fullmatch(r"[^\[\]]+\[(?P<extras>[^\]]+)\]", target)
        if match:
            installed |= {e.strip() for e in match["extras"].split(",")}
    assert {"gpu", "dask-cuda"} <= installed
    assert installed <= set(_extras())


def test_dockerfile_documents_a_job_a_batch_and_a_worker():
    comments = " ".join(
        line.lstrip("# ").rstrip("\\").strip()
        for line in DOCKERFILE.read_text().splitlines() if line.startswith("#")
    )
    runs = re.findall(r"docker run (.*?)(?=docker run|$)", comments)
    assert any("--gpus all" in r and " ramp-fit " in r for r in runs), runs
    assert any("--gpus all" in r and " batch " in r and "--job detector1" in r for r in runs), runs
    worker = [r for r in runs if "--entrypoint dask" in r]
    assert worker and re.search(r"cuda worker tcp://\S+:8786 --resources GPU=1", worker[0]), worker
    assert "--gpus all" in worker[0] and "--network host" in worker[0]


def test_a_dask_cuda_that_fails_to_import_is_a_warning_with_its_reason(tmp_path, monkeypatch, caplog):
    """dask-cuda 25.10+ without its cu12/cu13 extra dies at import (cuda.core finds no
    cuda-bindings); the batch then silently ran on CPU workers with the reason at debug level."""
    import logging

    from gpucal.scaleout.cluster import local_gpu_count

    (tmp_path / "dask_cuda").mkdir()
    (tmp_path / "dask_cuda" / "__init__.py").write_text(
        "raise ImportError(\"cannot import name 'bindings' from 'cuda' (unknown location)\")\n")
    (tmp_path / "dask_cuda" / "utils.py").write_text("def get_n_gpus():\n    return 8\n")
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text("raise AssertionError('local_gpu_count must not import cupy')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.DEBUG, logger="gpucal.scaleout.cluster"):
        assert local_gpu_count() == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "import dask_cuda" in warnings[0].getMessage()
    assert "cannot import name 'bindings' from 'cuda'" in warnings[0].getMessage()
    assert "gpucal[gpu,dask-cuda]" in warnings[0].getMessage()


def test_dask_cuda_extras_carry_the_cuda_bindings_of_their_cuda_major():
    """dask-cuda >= 25.10 imports cuda.core, which needs cuda-bindings that only dask-cuda's
    cu12/cu13 extra installs; each pairs with the CuPy of the same CUDA major."""
    extras = _extras()
    pairs = {"dask-cuda": ("gpu", "12"), "dask-cuda-cuda13": ("gpu-cuda13", "13")}
    for dask_extra, (gpu_extra, major) in pairs.items():
        reqs = {re.match(r"[A-Za-z0-9_.\-]+(\[[^\]]*\])?", r).group(0).lower(): r for r in extras[dask_extra]}
        assert f"dask-cuda[cu{major}]" in reqs, extras[dask_extra]
        assert re.search(r">=\s*25\.10", reqs[f"dask-cuda[cu{major}]"])
        assert any(r.startswith(f"cupy-cuda{major}x") for r in extras[gpu_extra]), extras[gpu_extra]


def test_the_install_check_installs_the_extras_that_exist():
    """make test-install (tools/check_install.py) installs each CUDA major's GPU and dask-cuda extras."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_install", ROOT / "tools" / "check_install.py")
    check_install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_install)
    extras = _extras()
    assert set(check_install.VARIANTS) == {"12", "13"}
    for major, wanted in check_install.VARIANTS.items():
        names = wanted.split(",")
        assert set(names) <= set(extras), names
        cupy = [r for name in names for r in extras[name] if r.startswith("cupy-cuda")]
        assert cupy and all(r.startswith(f"cupy-cuda{major}x") for r in cupy)
