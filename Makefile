# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-dev
DEMO_DB ?= .demo/clisight.db

.PHONY: demo test lint typecheck bench clean install install-postgres install-chromium screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-cli: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[cli]'
	touch $@

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# Server binaries for the throw-away PostgreSQL clusters the tests start (tests/pg_cluster.py):
# Debian's postgresql, installed only when no initdb is found.  `make test` fails if it cannot be
# installed (the conformance suite must run against PostgreSQL); pytest run directly skips them.
install-postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "install-postgres: PostgreSQL server binaries found"; \
	else \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "install-postgres: no initdb; running: $${sudo:+$$sudo }apt-get update && $${sudo:+$$sudo }apt-get install -y --no-install-recommends postgresql"; \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
	fi

# Debian's chromium for the dashboard's browser tests (Playwright drives it through executable_path;
# no browser is downloaded), installed only when /usr/bin/chromium is missing.  pytest run directly
# skips the browser tests without it.
install-chromium:
	@if [ -x /usr/bin/chromium ]; then \
		echo "install-chromium: /usr/bin/chromium found"; \
	else \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "install-chromium: no /usr/bin/chromium; running: $${sudo:+$$sudo }apt-get update && $${sudo:+$$sudo }apt-get install -y --no-install-recommends chromium"; \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	fi

# A PNG of each dashboard page (and of `clisight top` when its script exists) under docs/screenshots/.
screenshots: $(STAMP) install-chromium
	$(PY) scripts/screenshots_web.py
	@if [ -f scripts/screenshots_tui.py ]; then $(PY) scripts/screenshots_tui.py; fi

demo: $(VENV)/.installed-cli
	mkdir -p .demo
	$(VENV)/bin/clisight demo --store $(DEMO_DB)
	$(VENV)/bin/clisight report --store $(DEMO_DB)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) install-postgres install-chromium lint typecheck
	CLISIGHT_RAISE_INTERNAL=1 $(VENV)/bin/pytest -n 2 --timeout=300 tests

bench: $(STAMP)
	$(PY) bench/bench_logging.py
	$(PY) bench/bench_import.py
	$(PY) bench/bench_sqlite.py
	$(PY) bench/bench_detect.py
	$(PY) bench/bench_perf.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
