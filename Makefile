# `make demo` and `make test` each create .venv when missing and install everything pinned.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DB ?= demo-ledger.db
TEST_WORKERS ?= 2  # pytest-xdist workers; a file's tests stay on one worker, in order

.PHONY: install demo test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml $(wildcard package-lock.json)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,parquet]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import eventsourcing, sqlalchemy, psycopg, ccxt, web3, hypothesis, typer, rich, msgspec"
	@if [ -f package-lock.json ]; then npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; fi
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/ledger backtest --db $(DEMO_DB) --force --report demo-report

test: install
	$(VENV)/bin/ruff check aggregates projections executors replays ledger
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(VENV)/bin/ruff check aggregates projections executors replays ledger tests

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/ledger_bench.py --json bench/results/latest.json
	$(PY) bench/backtest_bench.py --json bench/results/backtest-latest.json
	$(PY) bench/replay_bench.py --json bench/results/replay-latest.json
	$(PY) bench/live_overhead.py --orders 1000 --json bench/results/live-latest.json

clean:
	rm -rf $(VENV) node_modules demo-report $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
