# The two set-up commands (README): `make demo` and `make test`. Each creates .venv if missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU build that installs from local disk; cluster users install a CUDA build (README)
TORCH_PIN ?= torch==2.13.0
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo test lint bench slurm-profile slurm-test clean-tiny

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	snakemake --cores $(CORES) --config preset=tiny

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	snakefmt --check .
	snakemake --lint
	snakemake --lint --config preset=tiny

clean-tiny:
	rm -rf results/tiny
