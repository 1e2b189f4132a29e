# tap-commerce-exports: one entry point for people and CI.
#
#   make demo      venv + Meltano + plugins, sandbox, both providers into DuckDB, row table
#   make test      the test suite (what CI runs, through .ci/run)
#   make sandbox   the sandbox API emulator in the foreground (port $(SANDBOX_PORT))
#   make bench     scripts/bench.py
#   make faults    scripts/fault_matrix.py
#   make rates     scripts/rate_limits.py: 429s of a busy run at the published limit
#   make install   only the install steps (cached by stamp files)
#   make clean     remove every venv, Meltano's .meltano/ (plugins, state), output/
#
# Needs only Python 3.11 and make. Each install step leaves a stamp file and is redone
# only when what it depends on changes (pyproject.toml, meltano.yml, the pins below).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.11 where it exists (the project's Python), else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
MELTANO_VENV := .venv-meltano
MELTANO_VERSION := 4.4.1
MELTANO := $(MELTANO_VENV)/bin/meltano
SANDBOX_PORT ?= 8000
SANDBOX_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist, one worker per core: measured ~140 s vs ~200 s in one process on the
# 2-core machine (the Meltano end-to-end test runs beside the rest). XDIST= to turn off.
XDIST ?= -n auto
ARGS ?=

# Meltano never reports usage from this project, nor asks anything on a terminal.
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DEV_STAMP := $(VENV)/.stamp-dev
MELTANO_STAMP := $(MELTANO_VENV)/.stamp-meltano-$(MELTANO_VERSION)
PLUGINS_STAMP := .meltano/.stamp-plugins

.PHONY: help install demo test sandbox bench faults rates clean

help:
	@sed -n '3,10p' Makefile | sed 's/^# \{0,1\}//'

# The project and its [dev] extras (pytest, duckdb, ...), editable.
$(DEV_STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Meltano in its own venv: its many pinned dependencies never constrain the tap's, and
# the tap is tested with exactly the dependencies a user of the tap gets.
$(MELTANO_STAMP):
	@test -x $(MELTANO_VENV)/bin/python || $(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet 'meltano==$(MELTANO_VERSION)'
	@rm -f $(MELTANO_VENV)/.stamp-meltano-*
	@touch $@

# Plugins as meltano.yml declares them (no hub): the tap (-e .), target-duckdb, target-jsonl.
$(PLUGINS_STAMP): meltano.yml pyproject.toml $(MELTANO_STAMP)
	$(MELTANO) --log-level=warning install
	@mkdir -p output
	@touch $@

# The project venv and the Meltano side are independent: build them side by side.
install:
	@$(MAKE) --no-print-directory -j2 --output-sync=target $(DEV_STAMP) $(PLUGINS_STAMP)

demo: install
	$(VENV)/bin/python scripts/demo.py --port $(SANDBOX_PORT) $(ARGS)

# Exit code 5 (no test collected) is not a failure of the suite's plumbing; say it loudly.
test: install
	@rc=0; $(VENV)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no test"; rc=0; fi; \
	exit $$rc

sandbox: $(DEV_STAMP)
	exec $(VENV)/bin/tap-commerce-exports-sandbox --port $(SANDBOX_PORT) $(SANDBOX_ARGS)

bench: install
	$(VENV)/bin/python scripts/bench.py $(ARGS)

faults: install
	$(VENV)/bin/python scripts/fault_matrix.py $(ARGS)

rates: $(DEV_STAMP)
	$(VENV)/bin/python scripts/rate_limits.py $(ARGS)

clean:
	rm -rf $(VENV) $(MELTANO_VENV) .meltano output .pytest_cache .hypothesis .bench build dist
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	rm -rf *.egg-info
