# Two commands do everything on a fresh machine: `make run` and `make test`.
# `make run` installs only what the gateway needs; the tests and benchmarks install their own extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
DB ?= var/gateway.db
PORT ?= 8080
HOST ?= 127.0.0.1

.PHONY: run test fuzz bench-history bench-create bench-feed bench-webhooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): setup.cfg | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): setup.cfg client/pyproject.toml $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[test]' -e ./client
	touch $(TEST_STAMP)

$(BENCH_STAMP): setup.cfg $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

# The demo gateway on http://$(HOST):$(PORT) (`make run PORT=9000` for another port), with demo data in $(DB).
run: $(RUN_STAMP)
	$(BIN)/order-gateway --database sqlite:///$(DB) serve --demo --host $(HOST) --port $(PORT)

# Three processes, a test file each at a time (a file's module-scoped gateway is started once): the suite's
# processes wait on sockets, timers and subprocesses much of the time: on two cores, two processes used 1.1
# of them (383 s), three kept the machine 84 % busy (291 s). Files go out in the order tests/conftest.py
# gives them, the longest first (xdist's own order, by number of tests, left long files of few tests last).
TEST_PROCESSES ?= 3
test: $(TEST_STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

# Schemathesis against a gateway on a loopback port, as in `make test` but long: FUZZ_EXAMPLES examples for
# each of the six /v3 and token operations (6 x 1667, about 10,000 requests), stopped after FUZZ_SECONDS.
# Then RAW_FUZZ_REQUESTS malformed requests through raw sockets (tests/test_raw_fuzz.py), as long.
FUZZ_EXAMPLES ?= 1667
FUZZ_SECONDS ?= 1800
RAW_FUZZ_REQUESTS ?= 10000
fuzz: $(TEST_STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) timeout $(FUZZ_SECONDS) $(BIN)/python -m pytest -q tests/test_fuzz.py
	RAW_FUZZ_REQUESTS=$(RAW_FUZZ_REQUESTS) RAW_FUZZ_SECONDS=$$(($(FUZZ_SECONDS) - 60)) timeout $(FUZZ_SECONDS) \
		$(BIN)/python -m pytest -q tests/test_raw_fuzz.py

bench-history: $(BENCH_STAMP)
	$(BIN)/python bench/history.py

bench-create: $(BENCH_STAMP)
	$(BIN)/python bench/create.py

bench-feed: $(BENCH_STAMP)
	$(BIN)/python bench/feed.py

bench-webhooks: $(BENCH_STAMP)
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV) var *.egg-info
