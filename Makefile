# scpln Planning Hub — the two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: run test lint bench soak install clean lock test-latest

# Installs exactly what requirements.lock pins (hash-checked), then the hub itself without resolving again.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
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

## Benchmarks (engine, storage, plan run, API, rollback, diff, UI tabs); figures go to docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python bench/engine.py --write docs/benchmarks.md
	$(BIN)/python bench/storage.py --write docs/benchmarks.md
	$(BIN)/python bench/generations.py --write docs/benchmarks.md
	$(BIN)/python bench/plan_run.py --write docs/benchmarks.md
	$(BIN)/python bench/api.py --write docs/benchmarks.md
	$(BIN)/python bench/rollback.py --write docs/benchmarks.md
	$(BIN)/python bench/diff.py --write docs/benchmarks.md
	$(BIN)/python bench/ui_tabs.py --write docs/benchmarks.md

## Long property runs and kill loops, then 10 minutes of 20 clients against a live hub with memory and
## file descriptors sampled (not part of `make test`).
soak: $(STAMP)
	HYPOTHESIS_PROFILE=soak $(BIN)/python -m pytest -q -m "slow or not slow"
	$(BIN)/python bench/soak.py --minutes 10

## Refresh requirements.lock: the newest releases within pyproject.toml's ranges, with hashes.
lock:
	@test -x .venv-tools/bin/pip-compile || ($(PYTHON) -m venv .venv-tools && .venv-tools/bin/pip install --quiet pip-tools)
	.venv-tools/bin/pip-compile --quiet --upgrade --generate-hashes --extra dev --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

## The whole suite on the newest releases (no lock), in a throwaway venv: breakage seen before users meet it.
test-latest:
	rm -rf .venv-latest && $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip
	.venv-latest/bin/python -m pip install --quiet --upgrade -e '.[dev]'
	.venv-latest/bin/ruff check app tests bench scripts
	.venv-latest/bin/python -m pytest -q

clean:
	rm -rf $(VENV) .venv-latest .venv-tools out .pytest_cache .ruff_cache .hypothesis
