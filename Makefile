# Three commands matter: `make demo` (the main job), `make test` (the unit tests and the fast
# integration tests: a few minutes) and `make test-all` (every test: the slow ones, the fault
# drills and the two-node cluster tests too; what CI runs). All run `make setup` first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The data root: $ROFT_DATA if set, else the shared data folder beside this checkout when it
# exists; with neither, files are downloaded into ~/.cache/roft (sha256-checked).
ROFT_DATA ?= $(if $(wildcard ../shared/data/SOURCES.md),$(abspath ../shared/data),)
export ROFT_DATA
STORE ?= results

.PHONY: setup demo test test-all clean

setup: $(VENV)/.roft-installed

$(VENV)/.roft-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/roft sweep search_spaces/mini.yaml --store $(STORE)
	$(BIN)/roft reading --store $(STORE) --spec search_spaces/mini.yaml

# The markers (pyproject.toml): slow (longer tests), drill (fault drills), cluster (multi-node Ray).
test: setup
	$(BIN)/python -m pytest -m "not slow and not drill and not cluster"

test-all: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(STORE) .pytest_cache
