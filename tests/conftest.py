"""Shared fixtures: the tiny embedded model, built once per test session in a temporary cache.

`models` (torch, transformers) is imported inside the fixtures, so test files that never
use them do not pay for the import.
"""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny model, built once (a few seconds) in a temporary GRPO_CACHE_DIR."""
    import models

    cache = tmp_path_factory.mktemp("grpo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(models.CACHE_ENV_VAR, str(cache))
        return models.tiny_model_path()


@pytest.fixture
def tiny_cache(monkeypatch, tiny_model_dir) -> Path:
    """Point GRPO_CACHE_DIR at the session's cache, so `tiny_model_path()` finds the model."""
    import models

    cache = tiny_model_dir.parent
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(cache))
    return cache


@pytest.fixture(scope="session")
def warm_start_model() -> Path:
    """The warm start in the default cache, built once (about 3 CPU minutes on a fresh
    machine) before any test launches processes that need it."""
    import warm_start

    return warm_start.warm_start_path()
