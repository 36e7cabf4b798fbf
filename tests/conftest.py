"""Shared fixtures: the tiny random model, built once per test session in a temporary cache,
and the `slow` mark on every test that needs it.

Heavy modules (torch, transformers) are imported inside the fixtures, so test files that
never use them do not pay for the import.
"""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny random model, built once (a few seconds) in a temporary GRPO_CACHE_DIR."""
    from offline_demo.cache import CACHE_ENV_VAR
    from offline_demo.tiny_model import tiny_random_path

    cache = tmp_path_factory.mktemp("grpo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV_VAR, str(cache))
        return tiny_random_path()


@pytest.fixture
def tiny_cache(monkeypatch, tiny_model_dir) -> Path:
    """Point GRPO_CACHE_DIR at the session's cache, so `tiny_random_path()` finds the model."""
    from offline_demo.cache import CACHE_ENV_VAR

    cache = tiny_model_dir.parent
    monkeypatch.setenv(CACHE_ENV_VAR, str(cache))
    return cache


@pytest.fixture(scope="session")
def warm_start_model() -> Path:
    """The warm start: the shipped copy in assets/, or, after a recipe change not yet
    rebuilt, a copy built once into the default cache before any test launches processes."""
    from offline_demo import warm_start

    return warm_start.warm_start_path()


# Fixtures that build, train or launch a model (here and in the test files that define them).
MODEL_FIXTURES = {
    "tiny_model_dir",
    "qwen_standin_dir",
    "ddp_run",  # test_distributed.py
    "lora_run",  # test_evaluate_model_cli.py
    "interrupted_run",  # test_train_grpo_cli.py
}


# The files that run first, in this order, before all others (which keep theirs); pytest-xdist
# hands them out so (`make test`: --dist loadfile --no-loadscope-reorder). Notebook 05 starts
# at once; notebook 06, which evaluates the model 05 trains, comes after the slowest test
# files, by when 05 has long finished (if not, 06 trains a model of its own); the slowest
# early, so that the two workers end together.
RUN_FIRST = (
    "05_grpo_training.ipynb",
    "test_training.py",
    "test_dry_run.py",
    "test_train_grpo_cli.py",
    "test_online.py",  # olah's install, downloads over loopback, a learner run, notebooks 01-03
    "06_evaluation.ipynb",
)


def run_order(item: pytest.Item) -> int:
    name = item.path.name
    return RUN_FIRST.index(name) if name in RUN_FIRST else len(RUN_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a model fixture, directly or through another fixture, is slow by
    definition: mark it, so the fast lane (`make test-fast`) never builds a model. Tests
    that load one another way carry `pytest.mark.slow` themselves. Then the files go in
    `run_order` (a stable sort: each file's tests, a notebook's cells, keep theirs)."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    items.sort(key=run_order)


@pytest.fixture(scope="session")
def qwen_standin_dir(tmp_path_factory) -> Path:
    """Qwen2.5-0.5B-Instruct's real tokenizer, chat template and generation config on a
    2-layer, hidden-64 body (vocabulary 151,936, tied): the real-model path in seconds on a
    CPU. The files ship in assets/, so this runs in any clone."""
    from offline_demo.qwen_standin import build_standin

    return build_standin(tmp_path_factory.mktemp("qwen-standin") / "Qwen2.5-0.5B-Instruct-standin")


@pytest.fixture(scope="session")
def gsm8k_dir(tmp_path_factory) -> Path:
    """A GSM8K_DIR made of the embedded excerpt's rows: a full-data source as a user would
    give one, so real-model runs (which never fall back to the excerpt) can run offline."""
    import shutil

    folder = tmp_path_factory.mktemp("gsm8k")
    excerpt = Path(__file__).resolve().parents[1] / "assets" / "gsm8k_excerpt"
    for split in ("train", "test"):
        shutil.copy(excerpt / f"{split}.jsonl", folder / f"{split}.jsonl")
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module that runs the tiny models: their
    operations are too small to share, and on a 2-core machine under load two threads wait
    for each other at every operation (40 GRPO steps: 61 s with 1 thread vs 217-637 s with
    2 at load 3-5, see benchmarks/RESULTS.md). Results are identical either way."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


HOLD_FOLDER = """
import sys, time
from grpo.run_dir import RunDir
with RunDir(sys.argv[1], ("metrics.json",), {}):
    print("claimed", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def hold_folder():
    """`hold_folder(path)` starts another process that claims `path` as its run folder and
    keeps it until killed (at the latest when the test ends); returns that process."""
    import subprocess
    import sys

    holders: list[subprocess.Popen] = []

    def hold(folder: Path) -> subprocess.Popen:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_FOLDER, str(folder)],
            cwd=Path(__file__).resolve().parents[1],
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout.readline().strip() == "claimed"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()
        holder.stdout.close()
