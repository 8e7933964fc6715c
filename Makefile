# Three commands matter: `make demo` (the main job), `make test` (the unit tests and the fast
# integration tests: a few minutes) and `make test-all` (every test: the slow ones, the fault
# drills and the two-node cluster tests too; what CI runs). All run `make setup` first; both test
# commands run `make lint` first (ruff's checks and formatting, mypy's types; `make format` fixes
# what ruff can).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The data root: $ROFT_DATA if set, else the shared data folder beside this checkout when it
# exists; with neither, files are downloaded into ~/.cache/roft (sha256-checked).
ROFT_DATA ?= $(if $(wildcard ../shared/data/SOURCES.md),$(abspath ../shared/data),)
export ROFT_DATA
STORE ?= results

.PHONY: setup demo lint format test test-all clean cluster-up cluster-down

setup: $(VENV)/.roft-installed

$(VENV)/.roft-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,mlflow]'
	touch $@

demo: setup
	$(BIN)/roft sweep search_spaces/mini.yaml --store $(STORE)
	$(BIN)/roft reading --store $(STORE) --spec search_spaces/mini.yaml

# The checked sources; ruff's and mypy's settings are in pyproject.toml.
SOURCES := orchestrator trainables search_spaces deploy

lint: setup
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy $(SOURCES)

format: setup
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

# The markers (pyproject.toml): slow (longer tests), drill (fault drills), cluster (multi-node Ray).
test: lint
	$(BIN)/python -m pytest -m "not slow and not drill and not cluster"

# HYPOTHESIS_PROFILE=full: the generated hostile-input tests run many more examples (tests/conftest.py).
test-all: lint
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-full} $(BIN)/python -m pytest

# A Ray head on this machine, on loopback only (docs/cluster.md, "One machine"). Started from
# .venv, first on its PATH: a Ray job's entry point runs the `python` it finds there. Token
# authentication is on (the token: ~/.ray/auth_token, made if missing); Ray's INFO logs are off
# (its runtime-env agent logs every job's environment variables, credentials included); the head
# keeps none of this shell's roft settings or credentials (roft submit gives each job its own).
# `ray start --block` runs in a session of its own, so that cluster-down stops this head only
# (`ray stop` would stop every Ray on the machine). HEAD_OPTIONS: more `ray start` options.
HEAD_DIR ?= /tmp/roft-head
HEAD_PORT ?= 6379
DASHBOARD_PORT ?= 8265
HEAD_OPTIONS ?=
HEAD_PID = $(HEAD_DIR)/head.pid

cluster-up: setup
	@if [ -e $(HEAD_PID) ] && kill -0 $$(cat $(HEAD_PID)) 2>/dev/null; then \
	  echo "a head of make cluster-up runs already (pid $$(cat $(HEAD_PID))); make cluster-down stops it"; exit 1; fi
	@rm -rf $(HEAD_DIR)/ray $(HEAD_DIR)/head.log && mkdir -p $(HEAD_DIR)
	@$(BIN)/ray get-auth-token --generate > /dev/null
	@env -u ROFT_DATA -u ROFT_CACHE -u ROFT_STORE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
	  PATH="$(abspath $(BIN)):$$PATH" RAY_AUTH_MODE=token RAY_LOGGER_LEVEL=warning RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 \
	  setsid $(BIN)/ray start --head --block --node-ip-address 127.0.0.1 --port $(HEAD_PORT) \
	  --dashboard-host 127.0.0.1 --dashboard-port $(DASHBOARD_PORT) --temp-dir $(HEAD_DIR)/ray --disable-usage-stats \
	  $(HEAD_OPTIONS) > $(HEAD_DIR)/head.log 2>&1 < /dev/null & echo $$! > $(HEAD_PID)
	@for i in $$(seq 180); do grep -q "Ray runtime started" $(HEAD_DIR)/head.log && break; \
	  kill -0 $$(cat $(HEAD_PID)) 2>/dev/null || { cat $(HEAD_DIR)/head.log; rm -f $(HEAD_PID); exit 1; }; sleep 1; done
	@grep -q "Ray runtime started" $(HEAD_DIR)/head.log || { echo "the head did not start in 180 s: $(HEAD_DIR)/head.log"; exit 1; }
	@sleep 3; kill -0 $$(cat $(HEAD_PID)) 2>/dev/null || { tail -30 $(HEAD_DIR)/head.log; rm -f $(HEAD_PID); exit 1; }
	@echo "Ray head on 127.0.0.1 (pid $$(cat $(HEAD_PID))): its Jobs API is http://127.0.0.1:$(DASHBOARD_PORT); log: $(HEAD_DIR)/head.log"

cluster-down:
	@if [ ! -e $(HEAD_PID) ]; then echo "no head of make cluster-up in $(HEAD_DIR)"; exit 0; fi; \
	pid=$$(cat $(HEAD_PID)); kill -TERM $$pid 2>/dev/null; \
	for i in $$(seq 60); do kill -0 $$pid 2>/dev/null || break; sleep 1; done; \
	kill -KILL -- -$$pid 2>/dev/null; rm -rf $(HEAD_DIR); echo "Ray head (pid $$pid) stopped"

clean:
	rm -rf $(VENV) $(STORE) results-cluster .pytest_cache .mypy_cache .ruff_cache
