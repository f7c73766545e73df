# Quick start: `make run` (set up + dvc repro) and `make test` (set up + lint + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build that installs offline here; on a GPU machine override, e.g.
# `make run TORCH_SPEC="torch==2.9.1"` or install torch into .venv yourself first.
TORCH_SPEC ?= torch==2.13.0
# `make run` installs what the pipeline needs; tests, lint and bench add the dev tools,
# lm-eval (the parity tests and the benchmark's reference) and Ray (the cache's `ray` engine,
# tested against the local one), which `make run` never imports.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# The versions the tests passed on (scripts/write_constraints.py says why); torch is left to
# TORCH_SPEC. `make constraints` resolves them afresh.
CONSTRAINTS := constraints.txt
EXTRAS := dev,lm-eval,ray,remote

.PHONY: setup run test lint bench clean constraints

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $(DEV_STAMP)

constraints:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --dry-run --ignore-installed \
		--report $(VENV)/resolve.json -e ".[$(EXTRAS)]" "$(TORCH_SPEC)"
	$(BIN)/python scripts/write_constraints.py $(VENV)/resolve.json $(CONSTRAINTS)

setup: $(DEV_STAMP)

run: $(STAMP)
	@test -d .dvc || (echo "no .dvc directory: run this from the project root" && exit 1)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

lint: $(DEV_STAMP)
	$(BIN)/ruff check sae_unlearn pipeline tests benchmarks
	$(BIN)/ruff format --check sae_unlearn pipeline tests benchmarks

test: $(DEV_STAMP) lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: $(DEV_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV)
