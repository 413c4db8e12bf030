# The README's two commands: `make run` (a working Parity with demo content) and
# `make test` (the whole suite). Both create the virtualenv when needed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install --quiet --no-compile --disable-pip-version-check
PYTEST_ARGS ?=
# `make test` runs the suite on this many pytest-xdist workers (0: in this process
# only; PYTEST_ARGS="-n 0" does the same). Each worker has its own test database,
# Redis and torch thread (tests/conftest.py). `worksteal`, not `loadscope` or
# `loadgroup`: those key tests by node id, and schemathesis gives its 40 API operations
# one node id, so all but one would silently not run. Worksteal lets an idle worker
# take tests queued behind the demo's long one.
PYTEST_WORKERS ?= 2
PYTEST_XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist worksteal)

.PHONY: run test migrate demo serve screenshots bench-import clean

run: $(VENV)/.installed-run
	$(PY) manage.py serve --setup

test: $(VENV)/.installed-dev
	$(PY) tests/services.py run -- $(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

migrate: $(VENV)/.installed-run
	$(PY) manage.py migrate --noinput -v 0

demo: $(VENV)/.installed-run
	$(PY) manage.py demo

serve: $(VENV)/.installed-run
	$(PY) manage.py serve

# PNG files of the annotator page and the study's plots under docs/screenshots/, from
# the data in the database (the demo's by default), with Debian's /usr/bin/chromium.
screenshots: $(VENV)/.installed-dev
	$(PY) manage.py screenshots

bench-import: $(VENV)/.installed-dev
	$(PY) bench/import_corpus.py

$(PY):
	$(PYTHON) -m venv $(VENV)

# The stamps make a second `make run` skip the install; editing pyproject.toml redoes it.
$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP_INSTALL) -e ".[generation]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP_INSTALL) -e ".[generation,dev]"
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) var
