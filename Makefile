# Two commands set everything up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-browser browser-deps lint typecheck pytest bench clean pg-deps clip-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

## demo: a scripted tour on a new SQLite vault in a temporary folder (never your own vault)
demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## test: lint, type-check and run the whole suite (PostgreSQL tier and the clipboard under Xvfb included)
test: $(VENV)/.installed-dev pg-deps clip-deps lint typecheck pytest

## test-browser: render the audit reports (now, and a period with its PDF print) in headless Chromium and check them
test-browser: $(VENV)/.installed-dev browser-deps
	$(BIN)/python scripts/browser_check.py

browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing Debian's chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

## pytest: the suite in parallel (pytest-xdist; PYTEST_WORKERS=0 runs it in one process)
PYTEST_WORKERS ?= auto
pytest: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS)

## pg-deps: PostgreSQL server binaries for the test cluster (installed with apt when missing)
pg-deps:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then \
		echo "installing PostgreSQL server binaries"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

## clip-deps: Xvfb and xclip for the real clipboard tests of --clip (installed with apt when missing)
clip-deps:
	@if ! command -v Xvfb >/dev/null 2>&1 || ! command -v xclip >/dev/null 2>&1; then \
		echo "installing Xvfb and xclip"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xclip >/dev/null; \
	fi

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/unlock.py
	$(BIN)/python bench/offboard.py --grants 500
	$(BIN)/python bench/audit_log.py --events 1000000 --sizes 100000,300000
	$(BIN)/python bench/trust.py --events 200000 --profile-events 0
	$(BIN)/python bench/period_report.py --accounts 100 --events 100000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

## test-future: the whole suite with every process's clock a year ahead (no test may depend on today's date)
CLOCK_SHIFT ?= 366d
.PHONY: test-future
test-future: $(VENV)/.installed-dev pg-deps
	GOVERN_TEST_CLOCK_SHIFT=$(CLOCK_SHIFT) $(BIN)/pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

## fuzz: the fault campaign of issue 10 at full size (concurrency 8x50, 50 crashes per command, 5,000+ fuzzed
## invocations, disk full); `make test` runs a fast seeded sample. FUZZ_SEED replays another seed.
FUZZ ?= full
FUZZ_SEED ?=
.PHONY: fuzz
fuzz: $(VENV)/.installed-dev pg-deps
	GOVERN_FUZZ=$(FUZZ) GOVERN_FUZZ_SEED=$(FUZZ_SEED) $(BIN)/pytest -n $(PYTEST_WORKERS) -p no:cacheprovider \
		tests/test_fault_concurrency.py tests/test_fault_crash.py tests/test_fault_fuzz.py tests/test_fault_disk_full.py
