# pixline: everything a fresh machine needs is installed from this repository's own files.
#   make run    set up, then serve on the embedded default (./data, in-process queue) at 127.0.0.1:8080
#   make test   set up, start what the tests need, run every test
#   make bench  our server against thumbor and raw pyvips on the same work (bench/RESULTS.md); PEER=none skips thumbor
#   make cluster  the whole topology on loopback: nginx front, media, two resizers, two workers,
#               RabbitMQ, SeaweedFS (docs/deploy.md); the front at 127.0.0.1:${CLUSTER_PORT:-8090}
#   make docs   docs/recipes.md from the installed plugins' schemas (tests/test_docs.py checks it)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGINS := $(patsubst %/setup.cfg,%,$(wildcard plugins/*/setup.cfg))
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
PEER   ?= thumbor

.PHONY: install run test rabbitmq nginx browser screenshot cluster bench docs clean

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

browser:
	@bash scripts/ensure-browser.sh

nginx:
	@bash scripts/ensure-nginx.sh

cluster: install rabbitmq nginx
	$(BIN)/python scripts/cluster.py

test: install rabbitmq nginx browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The README's picture of the page, from a real run of the browser test.
screenshot: install browser
	PIXLINE_SCREENSHOT=docs/screenshot.png $(BIN)/python -m pytest -q tests/browser

bench: install
	$(BIN)/python bench/run.py --peer $(PEER)

docs: install
	$(BIN)/pixline docs --output docs/recipes.md

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info
