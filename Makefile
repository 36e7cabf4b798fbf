# Two commands do everything on a fresh machine:
#   make train   set up .venv and run the GRPO pipeline (embedded tiny model when offline)
#   make test    set up .venv and run lint, every test and all six notebooks
#   make test-fast   the unit tests that build no model (well under a minute)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUTPUT_DIR ?= runs/main
# make train re-runs the demo from scratch; TRAIN_FLAGS=--resume continues an interrupted one.
TRAIN_FLAGS ?= --overwrite

.PHONY: setup train test test-fast lint

# pyproject.toml's dependencies and extras, each at requirements.txt's exact pin.
$(BIN)/activate: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.txt -e ".[notebooks,wandb,dev]"
	touch $(BIN)/activate

setup: $(BIN)/activate

train: setup
	$(BIN)/python train_grpo.py --output-dir $(OUTPUT_DIR) $(TRAIN_FLAGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
