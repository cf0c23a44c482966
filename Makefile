# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DB ?= var/gateway.db

.PHONY: run test fuzz bench-history bench-create bench-feed clean

$(STAMP): setup.cfg client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/pip install --quiet -e ./client
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/order-gateway --database sqlite:///$(DB) serve --demo

test: $(STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Schemathesis against a gateway on a loopback port, as in `make test` but long: FUZZ_EXAMPLES examples for
# each of the six /v3 and token operations (6 x 1667, about 10,000 requests), stopped after FUZZ_SECONDS.
# Then RAW_FUZZ_REQUESTS malformed requests through raw sockets (tests/test_raw_fuzz.py), as long.
FUZZ_EXAMPLES ?= 1667
FUZZ_SECONDS ?= 1800
RAW_FUZZ_REQUESTS ?= 10000
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) timeout $(FUZZ_SECONDS) $(BIN)/python -m pytest -q tests/test_fuzz.py
	RAW_FUZZ_REQUESTS=$(RAW_FUZZ_REQUESTS) RAW_FUZZ_SECONDS=$$(($(FUZZ_SECONDS) - 60)) timeout $(FUZZ_SECONDS) \
		$(BIN)/python -m pytest -q tests/test_raw_fuzz.py

bench-history: $(STAMP)
	$(BIN)/python bench/history.py

bench-create: $(STAMP)
	$(BIN)/python bench/create.py

bench-feed: $(STAMP)
	$(BIN)/python bench/feed.py

clean:
	rm -rf $(VENV) var *.egg-info
