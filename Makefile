# gpucal developer tasks. Needs GNU make, python3 (>= 3.11, with venv and pip) and
# access to a package index. Everything goes into $(VENV); nothing is installed globally.

VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
BENCH_ARGS ?=

BIN := $(VENV)/bin
VPY := $(BIN)/python
# Stamps make re-runs cheap: pip runs again only when pyproject.toml changes
# (or the venv is recreated, since the stamps live inside it).
STAMP_INSTALL := $(VENV)/.gpucal-install.stamp
STAMP_TEST := $(VENV)/.gpucal-install-test.stamp
# CuPy and NVIDIA's CUDA 12 wheels for compiling the kernels as CuPy does (no GPU needed), kept
# apart from $(VENV) so that no other test sees an importable cupy. When the wheels cannot be
# installed, $(NVRTC_VENV).unavailable says why and tests/test_kernels_nvrtc.py skips with it.
NVRTC_VENV ?= .venv-nvrtc
STAMP_NVRTC := $(NVRTC_VENV)/.gpucal-nvrtc.stamp

.DEFAULT_GOAL := help
.PHONY: help venv install install-test nvrtc-env kernels-registers demo test test-gpu test-install gpu-check gpu-check-rehearsal gpu-check-wheels bench bench-jump bench-detector1 bench-resample clean distclean

help:
	@echo "make demo         install gpucal into $(VENV) and run detector1 on the built-in raw exposure (-> demo_out/)"
	@echo "make test         install the test extras and run the whole test suite (CPU; GPU tests skip)"
	@echo "make test-gpu     run only the tests marked gpu (needs CuPy and a CUDA device)"
	@echo "make test-install install gpucal[gpu,dask-cuda] and its CUDA 13 twin into fresh venvs and check they import"
	@echo "make bench        benchmark ramp fitting against stcal (BENCH_ARGS='--quick' for a smoke run)"
	@echo "make bench-jump   benchmark jump detection against stcal (BENCH_ARGS as above)"
	@echo "make bench-detector1  benchmark the detector1 steps against jwst/stcal (BENCH_ARGS as above)"
	@echo "make bench-resample   benchmark pixel maps and drizzle against stcal/drizzle (BENCH_ARGS as above)"
	@echo "make gpu-check    on a lent GPU: pytest -m gpu and every bench on cpu,gpu in ~7 min -> gpu-check.md (\$$OUT or bench/out/gpu-check)"
	@echo "make gpu-check-rehearsal  the same against the CuPy stand-in, tiny cases (no GPU)"
	@echo "make gpu-check-wheels     fetch what gpu-check needs on a GPU machine that cannot download into .whl/"
	@echo "make kernels-registers  compile every kernel as CuPy does (NVRTC, ptxas) -> docs/kernels_registers.md"
	@echo "make venv | install | install-test | nvrtc-env | clean | distclean"

venv: $(VPY)

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip

install: $(STAMP_INSTALL)

$(STAMP_INSTALL): pyproject.toml | $(VPY)
	$(VPY) -m pip install -e '.[plot,progress]'
	@touch $@

install-test: $(STAMP_TEST)

$(STAMP_TEST): pyproject.toml | $(VPY)
	$(VPY) -m pip install -e '.[test]'
	@touch $@

nvrtc-env: $(STAMP_NVRTC)

$(STAMP_NVRTC): tools/nvrtc-requirements.txt
	rm -rf $(NVRTC_VENV) $(NVRTC_VENV).unavailable
	$(PYTHON) -m venv $(NVRTC_VENV)
	@if $(NVRTC_VENV)/bin/python -m pip install -q --disable-pip-version-check -r tools/nvrtc-requirements.txt \
	    >$(NVRTC_VENV)/pip.log 2>&1; then touch $@; \
	else tail -n 5 $(NVRTC_VENV)/pip.log >$(NVRTC_VENV).unavailable; \
	    echo "NVRTC wheels did not install (see $(NVRTC_VENV)/pip.log); the NVRTC kernel test will skip"; fi

kernels-registers: nvrtc-env
	$(NVRTC_VENV)/bin/python tools/nvrtc_kernels.py --markdown docs/kernels_registers.md

demo: install
	$(BIN)/gpucal demo -o demo_out --overwrite

test: install-test nvrtc-env
	$(VPY) -m pytest -q $(PYTEST_ARGS)

test-gpu: install-test
	$(VPY) -m pytest -q -m gpu $(PYTEST_ARGS)

# Fresh throwaway venvs, one per CUDA major: the GPU extras install, import and agree (no device needed).
test-install:
	$(PYTHON) tools/check_install.py

# For a lent GPU machine (no package index there): run from the repository root with the image's
# python3, no venv; .whl/ (make gpu-check-wheels, here) travels with the call and installs offline.
gpu-check:
	$(PYTHON) tools/gpu_check/run.py

gpu-check-rehearsal: install-test
	$(VPY) tools/gpu_check/run.py --rehearsal --out bench/out/gpu-check-rehearsal

gpu-check-wheels:
	rm -rf .whl && mkdir -p .whl
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	    --platform manylinux2014_x86_64 -d .whl -r tools/gpu_check/device-wheels.txt

bench: install-test
	$(VPY) bench/ramp_fit.py $(BENCH_ARGS)

bench-jump: install-test
	$(VPY) bench/jump.py $(BENCH_ARGS)

bench-detector1: install-test
	$(VPY) bench/detector1.py $(BENCH_ARGS)

bench-resample: install-test
	$(VPY) bench/resample.py $(BENCH_ARGS)

clean:
	rm -rf demo_out bench/out .pytest_cache build dist
	find $(wildcard gpucal cpu_fallback tests bench) -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(NVRTC_VENV) $(NVRTC_VENV).unavailable
