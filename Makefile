# m3-profiles: the targets are the user interface. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INPUT ?= data/raw
OUT ?= data/out
CITIZENS ?= 10000
SEED ?= 42
BENCH_CITIZENS ?= 1000000

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.PHONY: install
install: $(STAMP) ## set up .venv with the package and its test tools

.PHONY: demo
demo: $(STAMP) ## write demo data into data/raw/ (CITIZENS=10000 SEED=42)
	$(BIN)/m3-profiles demo --out data/raw --citizens $(CITIZENS) --seed $(SEED)

.PHONY: report
report: $(STAMP) ## run the pipeline on INPUT (default data/raw, demo data if empty) into data/out/
	@if [ "$(INPUT)" = "data/raw" ] && [ -z "$$(ls -A data/raw | grep -v '^.gitkeep$$')" ]; then \
		$(BIN)/m3-profiles demo --out data/raw --citizens $(CITIZENS) --seed $(SEED); fi
	$(BIN)/m3-profiles run --input $(INPUT) --out $(OUT)

.PHONY: test
test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest -q

.PHONY: faults
faults: $(STAMP) ## stop real runs at every fault point with every signal, fill a disk, cap memory; print the table (~10 min; mounts need root)
	$(BIN)/python tests/faults.py

.PHONY: lint
lint: $(STAMP) ## check style with ruff
	$(BIN)/ruff check pipeline tests bench

.PHONY: bench
bench: $(STAMP) ## benchmark ingest/segment at BENCH_CITIZENS (default 1,000,000) into bench/results/
	$(BIN)/python bench/run.py --citizens $(BENCH_CITIZENS)

.PHONY: disclosure
disclosure: $(STAMP) ## attack the demo's releases (60-1,000 citizens, seeds 1-3) into bench/results/
	$(BIN)/python bench/disclosure.py

.PHONY: clean
clean: ## remove outputs and caches (keeps data/raw and .venv)
	rm -rf data/out data/.out.* data/out.failed data/.out.lock .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
