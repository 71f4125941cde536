# Atelier: `make run` starts the server (`atelier-server serve`), `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PROTOS := $(shell find proto -name '*.proto')
GEN_DIR := clients/python/atelier/v1
GEN_STAMP := $(GEN_DIR)/__init__.py
# The Node.js client (clients/node) and its pinned packages, which its test runs.
NODE_CLIENT := clients/node/node_modules/.installed

.PHONY: run test lint proto bench chaos fuzz clean-venv

run: $(VENV)/.installed $(GEN_STAMP)
	$(VENV)/bin/atelier-server serve

test: lint $(NODE_CLIENT)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed $(GEN_STAMP) $(BUF)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy server storage clients/python/atelier clients/python/examples support tests bench
	$(BUF) lint

bench: $(VENV)/.installed $(GEN_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# kill -9 the real server at random moments while jobs run, and check that nothing is lost,
# stuck or changed (tests/chaos); fuzz every RPC with messages made from the proto descriptors
# (tests/fuzz). Each runs on SQLite and on PostgreSQL (required here: ATELIER_REQUIRE_POSTGRES=0
# skips it when absent), and prints its figures. `make test` runs a few trials and cases.
ATELIER_CHAOS_TRIALS ?= 100
ATELIER_FUZZ_CASES ?= 10000
# Both databases, unless the caller says otherwise.
CHAOS_ENV = ATELIER_REQUIRE_POSTGRES=$${ATELIER_REQUIRE_POSTGRES:-1}

chaos: $(VENV)/.installed $(GEN_STAMP)
	$(CHAOS_ENV) ATELIER_CHAOS_TRIALS=$(ATELIER_CHAOS_TRIALS) $(PY) -m pytest tests/chaos -q -s $(PYTEST_ARGS)

fuzz: $(VENV)/.installed $(GEN_STAMP)
	$(CHAOS_ENV) ATELIER_FUZZ_CASES=$(ATELIER_FUZZ_CASES) $(PY) -m pytest tests/fuzz -q -s $(PYTEST_ARGS)

# The venv is (re)built when the dependency lists change.
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e './clients/python[cli]' -e '.[dev]'
	touch $@

$(BUF): package.json package-lock.json
	# `npm ci` rejects this lock file (npm leaves out the other platforms' optional buf binaries),
	# so install from it with `npm install`, which keeps the pinned version.
	npm install --silent --no-audit --no-fund
	touch $@

$(NODE_CLIENT): clients/node/package.json clients/node/package-lock.json
	# As for buf above: `npm install` from the lock file keeps the pinned versions.
	cd clients/node && npm install --silent --no-audit --no-fund
	touch $@

# Regenerates the code under clients/python/atelier/v1 from proto/. The generator owns that
# directory: it is wiped and rewritten, never edited by hand.
proto: $(VENV)/.installed
	rm -rf $(GEN_DIR) .proto-out
	mkdir -p .proto-out
	$(PY) -m grpc_tools.protoc -Iproto -Ithird_party/proto \
		--python_out=.proto-out --pyi_out=.proto-out --grpc_python_out=.proto-out \
		$(shell find proto -name '*.proto' | sed 's|^proto/||' | sort)
	mv .proto-out/atelier/v1 $(GEN_DIR)
	rm -rf .proto-out
	touch $(GEN_DIR)/py.typed
	printf '"""Generated from proto/atelier/v1 by `make proto`. Do not edit."""\n' > $(GEN_STAMP)

$(GEN_STAMP): $(PROTOS)
	$(MAKE) proto
