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
# nights of the nightly series `make bench` adds (100,000 citizens; 0: none)
BENCH_NIGHTS ?= 30

# setuptools (>= 80) ends every editable install with an "Editable installation. Please be
# careful with folders in your working directory with the same name as your package" notice,
# which pip shows as a 10-line BuildBackendWarning even with --quiet. Here the folder of that
# name is the package itself, so that one notice is silenced (by its text, in the build
# backend's process too); any other warning still shows.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e '.[dev]'
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
report: $(STAMP) ## run the pipeline on INPUT (default data/raw, demo data if empty) into data/out/ (publishable: data/out/publish/)
	@if [ "$(INPUT)" = "data/raw" ] && [ -z "$$(ls -A data/raw | grep -v '^.gitkeep$$')" ]; then \
		$(BIN)/m3-profiles demo --out data/raw --citizens $(CITIZENS) --seed $(SEED); fi
	$(BIN)/m3-profiles run --input $(INPUT) --out $(OUT)

.PHONY: test
test: $(STAMP) browser ## run the test suite
	$(BIN)/python -m pytest -q

# The page tests drive Debian's headless Chromium through its driver, and read the printed
# page with poppler's pdftotext. Installed where this machine allows it (apt, as root or with
# sudo); elsewhere the page tests skip, saying how to install them (in CI they fail instead).
BROWSER_PACKAGES := chromium chromium-driver poppler-utils
.PHONY: browser
browser: ## install the headless browser the page tests use (apt, as root or with sudo)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && command -v pdftotext >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "browser: no apt-get here; the page tests will skip (install Chromium, chromedriver and poppler-utils)"; exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; else \
		echo "browser: not root and no sudo; the page tests will skip (sudo apt-get install $(BROWSER_PACKAGES))"; exit 0; fi; \
	echo "browser: installing $(BROWSER_PACKAGES) with apt-get"; \
	{ $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); } >/dev/null 2>&1 || \
		echo "browser: apt-get could not install $(BROWSER_PACKAGES); the page tests will skip"

.PHONY: faults
faults: $(STAMP) ## stop real runs at every fault point with every signal, fill a disk, cap memory; print the table (~15 min; mounts need root)
	$(BIN)/python tests/faults.py

.PHONY: lint
lint: $(STAMP) ## check style with ruff
	$(BIN)/ruff check pipeline tests bench

.PHONY: bench
bench: $(STAMP) ## benchmark ingest/segment/report and the model at BENCH_CITIZENS (default 1,000,000), then BENCH_NIGHTS (30) nights of the nightly batch at 100,000, into bench/results/
	$(BIN)/python bench/run.py --citizens $(BENCH_CITIZENS)
	@if [ "$(BENCH_NIGHTS)" -gt 0 ]; then \
		$(BIN)/python bench/series.py --citizens 100000 --nights $(BENCH_NIGHTS) --every 1; fi

.PHONY: bench-model
bench-model: $(STAMP) ## the profile model alone at 10,000, 100,000 and 1,000,000 citizens (80 % unreviewed) into bench/results/ (make bench runs it too)
	$(BIN)/python bench/model.py --citizens 10000 100000 $(BENCH_CITIZENS)

.PHONY: disclosure
disclosure: $(STAMP) ## attack the demo's releases (60-1,000 citizens, seeds 1-3) into bench/results/
	$(BIN)/python bench/disclosure.py

.PHONY: oracle-page
oracle-page: $(STAMP) ## the independent attacker on every number of the page (60-1,000 citizens, seeds 1-3) into bench/results/oracle-page-*.md (~20 min)
	$(BIN)/python tests/oracle_sweep.py

NIGHTS ?= 12
EVERY ?= 30
.PHONY: series
series: $(STAMP) ## an evolving demo (NIGHTS=12 exports EVERY=30 days) run night by night into data/out-series/; then its history
	@ref=$$(date +%F); rm -rf data/series; \
	$(BIN)/m3-profiles demo --out data/series --series $(NIGHTS) --every $(EVERY) \
		--citizens $(CITIZENS) --seed $(SEED) --reference-date $$ref && \
	for night in $$(ls data/series); do \
		$(BIN)/m3-profiles run --input data/series/$$night --out data/out-series \
			--reference-date $$night --quiet || exit $$?; echo "night $$night done"; done && \
	$(BIN)/m3-profiles history --out data/out-series

.PHONY: bench-series
bench-series: $(STAMP) ## the nightly batch alone over BENCH_NIGHTS (30) nights of an evolving 100,000-citizen demo: per-night time and sizes into bench/results/ (make bench runs it too)
	$(BIN)/python bench/series.py --citizens 100000 --nights $(BENCH_NIGHTS) --every 1

.PHONY: clean
clean: ## remove outputs and caches (keeps data/raw, .venv and the histories data/*.history)
	rm -rf data/out data/.out.* data/out.failed data/.out.lock .pytest_cache .ruff_cache .hypothesis
	rm -rf data/series data/out-series data/.out-series.* data/out-series.failed
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
