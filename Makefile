# The README's two commands. Both create .venv when it is missing and are fast when it is warm: an install
# step re-runs only when pyproject.toml is newer than its stamp file.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned: this machine class has a local CPU wheel of 2.13.0; an unpinned torch pulls GBs of CUDA.
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test lint bench fidelity clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_PIN)" -e ".[measure,test]"
	touch $@ $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	$(BIN)/tpplan recommend --model llama-70b --gpus 8

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[bench]"
	touch $@

# Predicted vs measured (benchmarks/data): README "Accuracy" figures, benchmarks/results/, docs/fidelity.png.
fidelity: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/fidelity.py

bench: $(VENV)/.installed-core
	$(BIN)/python benchmarks/bench_recommend.py

clean:
	rm -rf $(VENV) build dist *.egg-info
