# Two commands do everything on a fresh machine:
#   make train   set up .venv and run the GRPO pipeline (embedded tiny model when offline)
#   make test    set up .venv and run lint, every test and all six notebooks
#   make test-fast   the unit tests that build no model (well under a minute)
PYTHON ?= python3
# One torch thread per process: the tiny models' matrices are too small to share between
# threads. On this project's 2-core machine, busy, one thread ran the demo's GRPO steps 7x
# faster than two; nearly idle, `make train` took the same with one or two (50.8 s, 51.6 s).
# benchmarks/RESULTS.md has the figures. `make train` and `make test` (and so .ci/run) get
# it from here; set OMP_NUM_THREADS to override.
export OMP_NUM_THREADS ?= 1
VENV := .venv
BIN := $(VENV)/bin
OUTPUT_DIR ?= runs/main
# make train re-runs the demo from scratch; TRAIN_FLAGS=--resume continues an interrupted one.
TRAIN_FLAGS ?= --overwrite
# Under `make test`, notebook 05 trains 20 GRPO steps instead of its 80 (about 85 s less on a
# 2-core CPU); tests/test_training.py asserts the learning. SMOKE_STEPS=0 trains all 80.
SMOKE_STEPS ?= 20
# Test processes (pytest-xdist), each taking whole files: with 2 on this project's 2-core CI
# machine the suite took 329 s (6 min 49 s for the whole fresh-clone CI, install included).
# TEST_WORKERS=auto uses every core.
TEST_WORKERS ?= 2
# Files are handed out in tests/conftest.py's order: notebook 05 first, the slowest test
# files next, then notebook 06 (which evaluates the model 05 trains).

.PHONY: setup train test test-fast lint hub

# pyproject.toml's dependencies and extras, each at requirements.txt's exact pin. torch comes
# first, through pip, which follows this machine's pip settings (a local wheel, a mirror, a
# PyTorch index); uv then installs the rest about 10x faster than pip would (measured in a
# fresh venv here: 9 s, against 122 s with pip) and keeps that torch. uv reads no pip.conf:
# behind a PyPI mirror, set UV_DEFAULT_INDEX to it too. Unlike pip, uv compiles no bytecode
# unless asked: --compile-bytecode does it once at install, so no process compiles
# transformers and TRL again where PYTHONDONTWRITEBYTECODE is set (issue 26 measured imports
# 1.6-1.8x faster with it).
$(BIN)/activate: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "uv==0.13.9"
	$(BIN)/pip install --quiet "$$(grep '^torch==' requirements.txt)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements.txt \
		-e ".[notebooks,wandb,dev]"
	touch $(BIN)/activate

setup: $(BIN)/activate

train: setup
	$(BIN)/python train_grpo.py --output-dir $(OUTPUT_DIR) $(TRAIN_FLAGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	GRPO_SMOKE_STEPS=$(SMOKE_STEPS) $(BIN)/python -m pytest -n $(TEST_WORKERS) \
		--dist loadfile --no-loadscope-reorder

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The online tests' hubs, started by hand on 127.0.0.1: olah (a Hugging Face mirror, installed
# once into its own venv under ~/.cache/grpo-tutorial) and tests/hub's ModelScope server, both
# serving the Qwen stand-in and the GSM8K excerpt under their real ids. Prints what to export.
hub: setup
	$(BIN)/python -m tests.hub
