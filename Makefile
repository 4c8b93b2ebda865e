# One-command set-up, training and tests. Every target creates the virtual
# environment first when it is missing (or when pyproject.toml changed).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup browser train test test-fast lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(STAMP)

setup: $(STAMP) browser  ## create .venv and install deeper with every extra, and Chromium for the browser tests

# The web app's browser tests drive the system's Chromium through Playwright (never a browser that
# Playwright downloads). Installed here with apt-get when it is missing and apt-get can be run (as
# root); otherwise those tests are skipped and say why. DEEPER_CHROMIUM may name another browser.
CHROMIUM_NAMES := chromium chromium-browser google-chrome google-chrome-stable
browser:  ## the system's Chromium for tests/test_app_browser.py (apt-get install chromium, when missing)
	@if [ -n "$$DEEPER_CHROMIUM" ] || (for b in $(CHROMIUM_NAMES); do command -v $$b >/dev/null 2>&1 && exit 0; done; exit 1); then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "make: installing chromium with apt-get (for the web app's browser tests)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "make: apt-get could not install chromium: the browser tests will be skipped"; \
	else \
	  echo "make: no Chromium, and apt-get cannot be run here: the browser tests will be skipped (install chromium)"; \
	fi

train: $(STAMP)  ## the main job: train the chapter's DeepConvNet on MNIST (fast recipe)
	$(BIN)/deeper train --model deep-convnet --data mnist

test: $(STAMP) browser  ## the whole test suite, slow tests included (what CI runs)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## unit tests only
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
