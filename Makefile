# lmrecsim -- everything installs into a local virtualenv ($(VENV)).
#
# TORCH_SPEC is the one place the PyTorch pin lives. It is installed *before* the project so pip
# takes the CPU build kept on these machines; an unpinned torch pulls gigabytes of CUDA packages.
# GPU users: make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lmrecsim-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-fast lint bench docs clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev,cluster]"
	touch $(STAMP)

install: $(STAMP)

## Train PPO on the default scenario and write runs/demo (model, report/report.html, summary.txt).
demo: install
	$(VENV)/bin/lmrecsim demo --out runs/demo

## The whole test suite (what CI runs), after lint and the import-layer contract.
test: install lint
	$(PY) -m pytest -q

## The suite without tests marked slow.
test-fast: install
	$(PY) -m pytest -q -m "not slow"

# import-linter cannot follow setuptools' package-dir mapping in the source tree, so the layer
# contract is checked on a regular (non-editable) install of the package in .cache/layers.
lint: install
	$(VENV)/bin/ruff check .
	rm -rf .cache/layers
	$(PY) -m pip install --quiet --no-deps --target .cache/layers . >/dev/null
	rm -rf build
	@# The regular install must carry the shipped data (pyproject's package-data).
	@for f in envs/data/* scenarios/*.yaml; do test -f .cache/layers/lmrecsim/$$f \
	  || { echo "lint: $$f is missing from a regular install (pyproject.toml package-data)"; exit 1; }; done
	cd .cache/layers && PYTHONPATH=. $(abspath $(VENV))/bin/lint-imports $(CURDIR)/pyproject.toml

bench: install
	$(VENV)/bin/lmrecsim bench --out runs/bench.json

docs: install
	$(PY) -m lmrecsim.scenarios.docgen

clean:
	rm -rf $(VENV) runs .pytest_cache
