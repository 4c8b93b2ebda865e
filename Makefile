# One-command set-up, training and tests. Every target creates the virtual
# environment first when it is missing (or when pyproject.toml changed).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup train test test-fast lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install deeper with every extra

train: $(STAMP)  ## the main job: train the chapter's DeepConvNet on MNIST (fast recipe)
	$(BIN)/deeper train --model deep-convnet --data mnist

test: $(STAMP)  ## the whole test suite, slow tests included (what CI runs)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## unit tests only
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
