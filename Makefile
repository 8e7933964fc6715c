# Two commands matter: `make demo` (the main job) and `make test`. Both run `make setup` first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The data root: $ROFT_DATA if set, else the shared data folder beside this checkout when it
# exists; with neither, files are downloaded into ~/.cache/roft (sha256-checked).
ROFT_DATA ?= $(if $(wildcard ../shared/data/SOURCES.md),$(abspath ../shared/data),)
export ROFT_DATA
STORE ?= results

.PHONY: setup demo test clean

setup: $(VENV)/.roft-installed

$(VENV)/.roft-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/roft sweep search_spaces/mini.yaml --store $(STORE)

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(STORE) .pytest_cache
