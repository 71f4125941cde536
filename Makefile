# Atelier: `make run` starts the server (`atelier-server serve`), `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PROTOS := $(shell find proto -name '*.proto')
GEN_DIR := clients/python/atelier/v1
GEN_STAMP := $(GEN_DIR)/__init__.py
# The Connect handlers of the web port (protoc-gen-connectrpc, from the dev extra), owned by the
# generator as GEN_DIR is.
CONNECT_GEN_DIR := server/web/_generated
# The Node.js client (clients/node) and its pinned packages, which its test runs.
NODE_CLIENT := clients/node/node_modules/.installed
# The TypeScript client and web console (clients/web): its pinned packages (buf, protoc-gen-es,
# esbuild, vitest, playwright-core), its generated code and the console's bundle. Both are
# committed, so `make run` serves the console from a fresh clone without npm.
WEB_CLIENT := clients/web/node_modules/.installed
CONSOLE_SOURCES := $(shell find clients/web/src clients/web/console/src -type f 2>/dev/null)
CONSOLE_JS := clients/web/console/public/console.js
# Debian's Chromium, for the console's browser test (Playwright drives it; it downloads no browser).
CHROMIUM := /usr/bin/chromium

.PHONY: run demo test lint proto bench chaos fuzz docs clean-venv console chromium

run: $(VENV)/.installed $(GEN_STAMP)
	$(VENV)/bin/atelier-server serve

# As `run`, with the offline provider pausing in each stage: stages, Cancel and Ctrl-C can be seen.
demo: $(VENV)/.installed $(GEN_STAMP)
	ATELIER_OFFLINE_PACE_SECONDS=$${ATELIER_OFFLINE_PACE_SECONDS:-1} $(VENV)/bin/atelier-server serve

# Most tests wait on a real server (a subprocess) rather than on a core, so the suite runs in
# TEST_WORKERS processes (pytest-xdist); TEST_WORKERS=0 runs it in this one.
TEST_WORKERS ?= 3

test: lint $(NODE_CLIENT) $(WEB_CLIENT) $(CHROMIUM)
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.installed $(GEN_STAMP) $(BUF)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy server storage clients/python/atelier clients/python/examples support tests bench
	$(BUF) lint

bench: $(VENV)/.installed $(GEN_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Regenerates what the docs quote from the code: the settings table (docs/OPERATIONS.md, README.md)
# from server/config.py. tests/test_settings_docs.py fails when it is stale. The defaults are
# documented, so the caller's own ATELIER_* variables are left out.
docs: $(VENV)/.installed
	env $$(env | grep -o '^ATELIER_[A-Z_]*' | sed 's/^/-u /') $(VENV)/bin/atelier-server settings --update docs/OPERATIONS.md README.md

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

$(WEB_CLIENT): clients/web/package.json clients/web/package-lock.json
	cd clients/web && npm install --silent --no-audit --no-fund
	touch $@

# Rebuilds the console's bundle (clients/web/console/public/console.js) after a change to it or to
# the client.
console: $(CONSOLE_JS)

$(CONSOLE_JS): $(WEB_CLIENT) $(CONSOLE_SOURCES)
	cd clients/web && node console/build.mjs

# Installs Debian's chromium when it is missing (as root, or with sudo).
chromium: $(CHROMIUM)

$(CHROMIUM):
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) \
		apt-get install -y -qq --no-install-recommends chromium

# Regenerates the code under clients/python/atelier/v1 (messages and gRPC stubs),
# server/web/_generated (Connect handlers) and clients/web/src/gen (TypeScript, by buf generate with
# the protoc-gen-es in clients/web/node_modules) from proto/. The generators own those
# directories: they are wiped and rewritten, never edited by hand.
proto: $(VENV)/.installed $(WEB_CLIENT)
	rm -rf $(GEN_DIR) $(CONNECT_GEN_DIR) .proto-out
	mkdir -p .proto-out/connect
	$(PY) -m grpc_tools.protoc -Iproto -Ithird_party/proto \
		--python_out=.proto-out --pyi_out=.proto-out --grpc_python_out=.proto-out \
		--plugin=protoc-gen-connectrpc=$(VENV)/bin/protoc-gen-connectrpc \
		--connectrpc_out=.proto-out/connect \
		$(shell find proto -name '*.proto' | sed 's|^proto/||' | sort)
	mv .proto-out/atelier/v1 $(GEN_DIR)
	mv .proto-out/connect/atelier/v1 $(CONNECT_GEN_DIR)
	rm -rf .proto-out
	touch $(GEN_DIR)/py.typed
	printf '"""Generated from proto/atelier/v1 by `make proto`. Do not edit."""\n' > $(GEN_STAMP)
	printf '"""Generated from proto/atelier/v1 by `make proto`. Do not edit."""\n' > $(CONNECT_GEN_DIR)/__init__.py
	cd clients/web && node_modules/.bin/buf generate ../.. --template buf.gen.yaml

$(GEN_STAMP): $(PROTOS)
	$(MAKE) proto
