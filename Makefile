# The two commands a newcomer needs: `make demo` and `make test` (`make test-fast` for the unit tests alone).
# Everything is installed into .venv; browser tests use Debian's Chromium.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: all install browser test test-fast demo bench docs screenshots lint clean

all: test

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, this is " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools<81' wheel

# Installed again whenever the requirements or setup.py change.
$(VENV)/.installed: $(BIN)/python requirements.txt setup.py
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

# Debian's chromium and its matching chromedriver for the browser tests, and
# nginx for the test of the shipped nginx.conf; only what is missing.
browser:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

test: install browser
	$(BIN)/ruff check pyramid_notebook tests benchmarks
	$(BIN)/pytest tests $(PYTEST_ARGS)

# The unit tests only (marked `unit`, see tests/conftest.py): no notebook,
# server or browser, so no Chromium either; well under 30 s.
test-fast: install
	$(BIN)/ruff check pyramid_notebook tests benchmarks
	$(BIN)/pytest -m unit tests $(PYTEST_ARGS)

demo: install
	$(BIN)/pserve development.ini

# Every benchmark beside its baseline, then the summary against the targets;
# JSON and PNG charts in benchmarks/results/ (see docs/benchmarks.rst).
bench: install browser
	$(BIN)/pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks.run

# The manual (docs/), as HTML in docs/_build/html; any Sphinx warning fails the build.
docs: install
	$(BIN)/pip install --quiet -r docs/requirements.txt
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# The manual's pictures of the demo (docs/_static/screenshots/), taken again
# in Chromium by tests/test_screenshots.py; a plain test run keeps its own.
screenshots: install browser
	PYRAMID_NOTEBOOK_SCREENSHOTS=docs/_static/screenshots $(BIN)/pytest tests/test_screenshots.py $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check pyramid_notebook tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build
