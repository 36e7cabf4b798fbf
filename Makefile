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
	$(BIN)/pip install --quiet --no-compile -c requirements.txt -e ".[notebooks,wandb,dev]"
	touch $(BIN)/activate

setup: $(BIN)/activate

train: setup
	$(BIN)/python train_grpo.py --output-dir $(OUTPUT_DIR) $(TRAIN_FLAGS)

# Two pytest-xdist workers, one test file (or notebook: nbval keeps one kernel per file) per
# worker at a time; then notebook 06, which evaluates the model notebook 05 trained.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=notebooks/06_evaluation.ipynb
	$(BIN)/python -m pytest notebooks/06_evaluation.ipynb

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
