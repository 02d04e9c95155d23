# pixline: everything a fresh machine needs is installed from this repository's own files.
#   make run    set up, then serve on the embedded default (./data, in-process queue) at 127.0.0.1:8080
#   make test   set up, start what the tests need, run every test
#   make bench  our server against thumbor and raw pyvips on the same work (bench/RESULTS.md); PEER=none skips thumbor

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGINS := $(patsubst %/setup.cfg,%,$(wildcard plugins/*/setup.cfg))
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
PEER   ?= thumbor

.PHONY: install run test rabbitmq bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(foreach p,$(PLUGINS),$(p)/setup.cfg)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install --quiet -e ".[test]" $(foreach p,$(PLUGINS),-e $(p))
	touch $(STAMP)

run: install
	$(BIN)/pixline serve

rabbitmq:
	@bash scripts/ensure-rabbitmq.sh

test: install rabbitmq
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py --peer $(PEER)

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info
