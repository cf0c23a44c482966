# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DB ?= var/gateway.db

.PHONY: run test bench-history bench-create clean

$(STAMP): setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/order-gateway --database sqlite:///$(DB) serve --demo

test: $(STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench-history: $(STAMP)
	$(BIN)/python bench/history.py

bench-create: $(STAMP)
	$(BIN)/python bench/create.py

clean:
	rm -rf $(VENV) var *.egg-info
