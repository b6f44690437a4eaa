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
    assert {"dask[distributed]", "dask-cuda"} <= _names(extras["dask-cuda"])
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
