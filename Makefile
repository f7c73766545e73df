# Quick start: `make run` (set up + dvc repro) and `make test` (set up + lint + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build that installs offline here; on a GPU machine override, e.g.
# `make run TORCH_SPEC="torch==2.9.1"` or install torch into .venv yourself first.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,lm-eval]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	@test -d .dvc || (echo "no .dvc directory: run this from the project root" && exit 1)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

lint: $(STAMP)
	$(BIN)/ruff check sae_unlearn pipeline tests benchmarks
	$(BIN)/ruff format --check sae_unlearn pipeline tests benchmarks

test: $(STAMP) lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV)
