# scpln Planning Hub — the two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: run test lint bench soak install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start the hub on http://127.0.0.1:8000 (API docs at /docs); the sample is planned on first start.
run: $(STAMP)
	@mkdir -p data backup tmp
	$(BIN)/scpln serve --host 127.0.0.1 --port 8000 --plan-sample-if-empty

## Lint, then the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check app tests bench scripts
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check app tests bench scripts
	$(BIN)/ruff format --check app tests bench scripts

## Benchmarks (engine, storage, plan run, API, rollback); figures go to docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python bench/engine.py --write docs/benchmarks.md
	$(BIN)/python bench/storage.py --write docs/benchmarks.md
	$(BIN)/python bench/generations.py --write docs/benchmarks.md
	$(BIN)/python bench/plan_run.py --write docs/benchmarks.md
	$(BIN)/python bench/api.py --write docs/benchmarks.md
	$(BIN)/python bench/rollback.py --write docs/benchmarks.md
	$(BIN)/python bench/diff.py --write docs/benchmarks.md

## Long property runs and kill loops (not part of `make test`).
soak: $(STAMP)
	HYPOTHESIS_PROFILE=soak $(BIN)/python -m pytest -q -m "slow or not slow"

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
