# tap-commerce-exports: one entry point for people and CI.
#
#   make demo         venv + Meltano + plugins, sandbox, both providers into DuckDB, row table
#   make test         make check, then the test suite (what CI runs, through .ci/run)
#   make check        ruff (lint + format check) and mypy on the package
#   make lock         refresh every lock file to the newest releases allowed (then make test)
#   make test-latest  the canary: unit tests against the newest releases, no lock
#   make sandbox      the sandbox API emulator in the foreground (port $(SANDBOX_PORT))
#   make bench        scripts/bench.py
#   make faults       scripts/fault_matrix.py
#   make rates        scripts/rate_limits.py: the 429s of a busy run at the published limit
#   make stress       scripts/stress.py: race specs x50 and the suite, two CPU hogs beside
#   make install      only the install steps (cached by stamp files)
#   make release-check  build both distributions (sdist + wheel), twine check, clean-venv install
#   make plugin-definition  regenerate plugin/tap-commerce-exports.yml from --about
#   make dagster-venv .venv-dagster: Dagster + Meltano for orchestration/ (make test needs it)
#   make clean        remove every venv, Meltano's .meltano/ (plugins, state), output/
#
# Needs only Python 3.11 and make. Everything installs from the committed locks (uv.lock,
# requirements/*.txt) with uv, itself pinned below; each step leaves a stamp file and is
# redone only when its lock changes.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.11 where it exists (the project's Python), else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
MELTANO_VENV := .venv-meltano
MELTANO := $(MELTANO_VENV)/bin/meltano
# Dagster (orchestration/) in its own venv, with a Meltano that has PostgreSQL's driver.
DAGSTER_VENV := .venv-dagster
# uv installs every venv from a lock: measured from a fresh clone, `make demo` 61 s (README,
# "Quick start"); it also resolves the locks (`make lock`). Pinned, in a venv of its own.
UV_VERSION := 0.13.9
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
LATEST_VENV := .venv-latest
# twine for the release check, from requirements/release.txt (the release workflow's too).
RELEASE_VENV := .venv-release
SANDBOX_PORT ?= 8000
SANDBOX_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist. Four workers on the 2-core machine, not one per core: much of the suite
# waits on subprocesses (Meltano, the tap, targets, PostgreSQL), so 2 workers left a core
# idle (measured 8m47s with -n auto = 2, 6m46s with -n 4, same code). tests/conftest.py
# schedules them: longest first, one at a time to whichever worker is free (xdist's
# default sent the first worker every Meltano test). XDIST= to turn off.
XDIST ?= -n 4
ARGS ?=

# Meltano never reports usage from this project, nor asks anything on a terminal.
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# uv: no progress bars in logs; copies, not hard links (the cache may be on another disk).
export UV_NO_PROGRESS := 1
export UV_LINK_MODE := copy
# uv installs without bytecode unless asked (pip byte-compiles by default): with
# PYTHONDONTWRITEBYTECODE set, as here and in many CI images, every start of the tap or a
# loader then compiled the SDK from source: measured 1.4 s -> 0.6 s of CPU per process
# start (issue 27). Meltano's plugin installs run uv too and inherit this.
export UV_COMPILE_BYTECODE := 1
# CI installs every service its tests need itself: scripts/postgres.py may install Debian's
# PostgreSQL there (as root); on a developer's machine it only says what to install.
ifeq ($(CI),true)
export POSTGRES_INSTALL_PACKAGES := 1
endif

# The DuckDB loader (loader/, a workspace member): its plugin venv's constraints are its
# part of uv.lock, the same versions the project venv tests it with.
LOADER_EXPORT := --package target-duckdb-exports --no-emit-workspace --no-header
DEV_STAMP := $(VENV)/.stamp-dev
MELTANO_STAMP := $(MELTANO_VENV)/.stamp-meltano
PLUGINS_STAMP := .meltano/.stamp-plugins
DAGSTER_STAMP := $(DAGSTER_VENV)/.stamp-dagster
RELEASE_STAMP := $(RELEASE_VENV)/.stamp-release
LOCKS := uv.lock requirements/tap.txt requirements/meltano.txt requirements/target-duckdb.txt \
	requirements/target-jsonl.txt requirements/target-postgres.txt

.PHONY: help install demo test check bytecode lock test-latest sandbox bench faults rates stress clean dagster-venv \
	release-check plugin-definition

help:
	@sed -n '3,18p' Makefile | sed 's/^# \{0,1\}//'

$(UV):
	@test -x $(UV_VENV)/bin/python || $(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

# The project and its [dev] extra (pytest, ruff, mypy, duckdb, ...), editable, exactly as
# uv.lock has them (--frozen: the lock is used as it is, never re-resolved).
$(DEV_STAMP): uv.lock pyproject.toml sandbox/pyproject.toml loader/pyproject.toml | $(UV)
	$(UV) sync --quiet --frozen --extra dev --all-packages --python $(PYTHON)
	@touch $@

# Meltano in its own venv: its many pinned dependencies never constrain the tap's, and
# the tap is tested with exactly the dependencies a user of the tap gets.
$(MELTANO_STAMP): requirements/meltano.txt | $(UV)
	@test -x $(MELTANO_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(MELTANO_VENV)
	$(UV) pip sync --quiet --require-hashes --python $(MELTANO_VENV)/bin/python requirements/meltano.txt
	@touch $@

# Plugins as meltano.yml declares them (no hub): the tap (-e . with requirements/tap.txt as
# constraints), target-duckdb (-e ./loader, this repository's loader), target-postgres and
# target-jsonl (each with its requirements/target-*.txt).
# Meltano 4 builds plugin venvs with uv (its default venv backend).
$(PLUGINS_STAMP): meltano.yml pyproject.toml loader/pyproject.toml $(LOCKS) $(MELTANO_STAMP)
	$(MELTANO) --log-level=warning install
	@mkdir -p output
	@touch $@

# Dagster and its Meltano, only for orchestration/ and its test: the demo never needs it.
$(DAGSTER_STAMP): requirements/orchestration.txt | $(UV)
	@test -x $(DAGSTER_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(DAGSTER_VENV)
	$(UV) pip sync --quiet --require-hashes --python $(DAGSTER_VENV)/bin/python requirements/orchestration.txt
	@touch $@

dagster-venv: $(DAGSTER_STAMP)

$(RELEASE_STAMP): requirements/release.txt | $(UV)
	@test -x $(RELEASE_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(RELEASE_VENV)
	$(UV) pip sync --quiet --require-hashes --python $(RELEASE_VENV)/bin/python requirements/release.txt
	@touch $@

# What .github/workflows/release.yml does on a tag, short of publishing: both
# distributions built (each wheel from its sdist) into dist/, twine check --strict, the
# tap's wheel without the sandbox, both installed into a clean venv, --about from there.
release-check: $(RELEASE_STAMP) | $(UV)
	$(PYTHON) scripts/release_check.py --uv $(UV) --twine $(RELEASE_VENV)/bin/twine --python $(PYTHON)

# plugin/tap-commerce-exports.yml, Meltano's plugin definition (meltano add --from-ref),
# generated from --about --format json; tests/test_plugin_definition.py fails while stale.
plugin-definition: $(DEV_STAMP)
	$(VENV)/bin/python scripts/plugin_definition.py --write

# The project venv and the Meltano side are independent: build them side by side.
install:
	@$(MAKE) --no-print-directory -j2 --output-sync=target $(DEV_STAMP) $(PLUGINS_STAMP)

demo: install
	$(VENV)/bin/python scripts/demo.py --port $(SANDBOX_PORT) $(ARGS)

# The repository's own code as bytecode, before the suite: its packages are installed
# editable (the tap also in Meltano's plugin venv), so with PYTHONDONTWRITEBYTECODE set (as
# here and in many CI images) every process the suite starts (the tap hundreds of times,
# the loader, Dagster's code location) compiled them from source again: measured 0.70 s
# -> 0.49 s of CPU per start of the tap. compileall writes only what is missing or stale
# (about a second); a pyc older than its source is never used. `make clean` removes them.
BYTECODE_DIRS := tap_commerce_exports sandbox/commerce_sandbox loader/target_duckdb_exports orchestration scripts tests
bytecode: $(DEV_STAMP)
	@$(VENV)/bin/python -m compileall -q $(BYTECODE_DIRS)

# Exit code 5 (no test collected) is not a failure of the suite's plumbing; say it loudly.
test: install check bytecode $(DAGSTER_STAMP) $(RELEASE_STAMP)
	@rc=0; $(VENV)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no test"; rc=0; fi; \
	exit $$rc

# What maintained Python projects run before their tests; config in pyproject.toml.
# The locks too: uv.lock must match pyproject.toml, and requirements/tap.txt must be what
# uv.lock exports (Meltano's extractor venv installs from it).
check: $(DEV_STAMP)
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/mypy
	@$(UV) lock --check --quiet || { echo "uv.lock does not match pyproject.toml: run make lock"; exit 1; }
	@$(UV) export --quiet --frozen --no-emit-project --no-header \
	  | diff -q - requirements/tap.txt >/dev/null \
	  || { echo "requirements/tap.txt is not what uv.lock exports: run make lock"; exit 1; }
	@$(UV) export --quiet --frozen $(LOADER_EXPORT) | diff -q - requirements/target-duckdb.txt >/dev/null \
	  || { echo "requirements/target-duckdb.txt is not what uv.lock exports: run make lock"; exit 1; }
	@test "$$(grep -o '^meltano==[^ ;]*' requirements/meltano.txt)" = \
	  "$$(grep -o '^meltano==[^ ;]*' requirements/orchestration.txt)" \
	  || { echo "requirements/orchestration.txt pins another Meltano than requirements/meltano.txt: run make lock"; exit 1; }

# Every lock to the newest releases the ranges allow. Then run `make test`; commit together.
# Every requirements/*.txt carries the sha256 of each file it allows (--generate-hashes, and
# uv export's hashes): `uv pip sync --require-hashes` refuses anything else, and uv checks
# the hashes of the constraints files Meltano's plugin installs use.
lock: | $(UV)
	$(UV) lock --upgrade
	$(UV) export --quiet --frozen --no-emit-project --no-header -o requirements/tap.txt
	$(UV) export --quiet --frozen $(LOADER_EXPORT) -o requirements/target-duckdb.txt
	@for name in meltano target-jsonl target-postgres bench-target-postgres release; do \
	  $(UV) pip compile --quiet --upgrade --universal --python-version 3.10 --no-header --generate-hashes \
	    requirements/$$name.in -o requirements/$$name.txt || exit 1; \
	done
	$(UV) pip compile --quiet --upgrade --universal --python-version 3.10 --no-header --generate-hashes \
	  requirements/orchestration.in -c requirements/meltano.txt -o requirements/orchestration.txt

# The canary (not gating): the newest release of every dependency, no lock, unit tests only
# (no Meltano, no end-to-end processes), so drift shows up here before it reaches a lock.
test-latest: | $(UV)
	rm -rf $(LATEST_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip install --quiet --refresh --python $(LATEST_VENV)/bin/python -e ./sandbox -e ./loader -e '.[dev]'
	@$(UV) pip freeze --python $(LATEST_VENV)/bin/python \
	  | grep -iE '^(singer-sdk|requests|urllib3|msgspec|jsonschema|backoff|duckdb)==' | tr '\n' ' '; echo
	$(LATEST_VENV)/bin/python -m pytest $(XDIST) -m "not e2e and not meltano" $(PYTEST_ARGS)

sandbox: $(DEV_STAMP)
	exec $(VENV)/bin/tap-commerce-exports-sandbox --port $(SANDBOX_PORT) $(SANDBOX_ARGS)

bench: install
	$(VENV)/bin/python scripts/bench.py $(ARGS)

faults: install
	$(VENV)/bin/python scripts/fault_matrix.py $(ARGS)

rates: $(DEV_STAMP)
	$(VENV)/bin/python scripts/rate_limits.py $(ARGS)

# The race specs (marked `race`) N times and the suite, each with two CPU hogs beside it:
# a spec that depends on thread timing shows it here (issue 21). ARGS="--runs 200
# --races-only", or ARGS="-- tests/test_x.py" for a part of the suite.
stress: install bytecode $(DAGSTER_STAMP)
	$(VENV)/bin/python scripts/stress.py $(ARGS)

clean:
	rm -rf $(VENV) $(MELTANO_VENV) $(UV_VENV) $(LATEST_VENV) $(DAGSTER_VENV) $(RELEASE_VENV) .venv-bench-postgres .meltano output .pytest_cache .hypothesis .bench build dist
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	rm -rf *.egg-info
