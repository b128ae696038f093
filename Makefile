# The two set-up commands (README): `make demo` and `make test`. Each creates .venv if missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU build that installs from local disk; cluster users install a CUDA build (README)
TORCH_PIN ?= torch==2.13.0
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo test test-fast lint bench slurm-profile slurm-test clean-tiny

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

# the unit tests only (no Snakemake runs): for a quick check while editing
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

# engine vs a released-code-style loop on Gowalla from ../shared/data (skips where it is absent)
BENCH_ARGS ?= --epochs 2
bench: $(VENV)/.installed
	$(PY) -m prism_repro.bench $(BENCH_ARGS)

lint: $(VENV)/.installed
	ruff format --check .
	ruff check .
	snakefmt --check .
	snakemake --lint
	snakemake --lint --config preset=tiny

# `snakemake --profile slurm` finds profiles only in ./, ~/.config/snakemake and /etc/xdg/snakemake:
# link ours there. An existing profile named slurm is left alone.
PROFILE_HOME ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
slurm-profile:
	@src="$(abspath profiles/slurm)"; dest="$(PROFILE_HOME)/slurm"; \
	if [ "$$(readlink "$$dest")" = "$$src" ]; then echo "$$dest already links to $$src"; \
	elif [ -e "$$dest" ] || [ -L "$$dest" ]; then \
	  echo "$$dest exists: left alone (move it away, or use --profile $$src)" >&2; exit 1; \
	else mkdir -p "$(PROFILE_HOME)" && ln -s "$$src" "$$dest" && echo "linked $$dest -> $$src"; fi

# one-node SLURM cluster (as root): bring up, the tiny preset through --profile slurm, tear down
slurm-test: $(VENV)/.installed
	.ci/slurm/test.sh

clean-tiny:
	rm -rf results/tiny
