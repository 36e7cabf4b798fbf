"""Shared fixtures: the tiny random model, built once per test session in a temporary cache.

Heavy modules (torch, transformers) are imported inside the fixtures, so test files that
never use them do not pay for the import.
"""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny random model, built once (a few seconds) in a temporary GRPO_CACHE_DIR."""
    from grpo.cache import CACHE_ENV_VAR
    from offline_demo.tiny_model import tiny_random_path

    cache = tmp_path_factory.mktemp("grpo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV_VAR, str(cache))
        return tiny_random_path()


@pytest.fixture
def tiny_cache(monkeypatch, tiny_model_dir) -> Path:
    """Point GRPO_CACHE_DIR at the session's cache, so `tiny_random_path()` finds the model."""
    from grpo.cache import CACHE_ENV_VAR

    cache = tiny_model_dir.parent
    monkeypatch.setenv(CACHE_ENV_VAR, str(cache))
    return cache


@pytest.fixture(scope="session")
def warm_start_model() -> Path:
    """The warm start in the default cache, built once (about 3 CPU minutes on a fresh
    machine) before any test launches processes that need it."""
    from offline_demo import warm_start

    return warm_start.warm_start_path()
