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

.DEFAULT_GOAL := help
.PHONY: help venv install install-test demo test test-gpu bench bench-jump bench-detector1 bench-resample clean distclean

help:
	@echo "make demo         install gpucal into $(VENV) and run detector1 on the built-in raw exposure (-> demo_out/)"
	@echo "make test         install the test extras and run the whole test suite (CPU; GPU tests skip)"
	@echo "make test-gpu     run only the tests marked gpu (needs CuPy and a CUDA device)"
	@echo "make bench        benchmark ramp fitting against stcal (BENCH_ARGS='--quick' for a smoke run)"
	@echo "make bench-jump   benchmark jump detection against stcal (BENCH_ARGS as above)"
	@echo "make bench-detector1  benchmark the detector1 steps against jwst/stcal (BENCH_ARGS as above)"
	@echo "make bench-resample   benchmark pixel maps and drizzle against stcal/drizzle (BENCH_ARGS as above)"
	@echo "make venv | install | install-test | clean | distclean"

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

demo: install
	$(BIN)/gpucal demo -o demo_out --overwrite

test: install-test
	$(VPY) -m pytest -q $(PYTEST_ARGS)

test-gpu: install-test
	$(VPY) -m pytest -q -m gpu $(PYTEST_ARGS)

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
	rm -rf $(VENV)
