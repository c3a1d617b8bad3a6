# Two commands for a fresh clone: `make run` and `make test`. Both install what
# is missing first: a virtualenv in .venv with the locked Python packages, and
# the web page's assets in web/dist (built with npm from web/package-lock.json).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WEB_SOURCES := $(wildcard web/src/*) web/build.mjs web/package.json web/package-lock.json

.PHONY: install run test lint bench soak clean

install: $(VENV)/.installed web/dist/index.html

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Tickwork needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $@

# After the virtualenv, whose Strawberry the build checks GraphiQL's files against.
web/dist/index.html: $(WEB_SOURCES) | $(VENV)/.installed
	cd web && npm ci --no-audit --no-fund --loglevel=error \
		&& PYTHON=../$(BIN)/python node build.mjs

run: install
	$(BIN)/tickwork up

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check api daemon shared tests
	$(BIN)/ruff format --check api daemon shared tests

# Minutes of real processes under kills and a PostgreSQL restart; not in `test`.
# Options go in SOAK_ARGS, e.g. `make soak SOAK_ARGS="--minutes 2 --seed 7"`.
soak: install
	$(BIN)/python -m tests.soak.run $(SOAK_ARGS)

# Every benchmark scenario against an embedded PostgreSQL (about 16 minutes);
# not in `test`. Options go in BENCH_ARGS, e.g. `make bench BENCH_ARGS="--quick"`
# or `BENCH_ARGS="--only throughput"`.
bench: install
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) web/node_modules web/dist test-output
