"""Where locally built artefacts live, and how to build one without leaving half a folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV_VAR = "GRPO_CACHE_DIR"


def cache_root() -> Path:
    """Where built artefacts (the tiny random model) live: $GRPO_CACHE_DIR or ~/.cache."""
    root = os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "grpo-tutorial"
    return Path(root)


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and move the result to `target` atomically, unless it exists.

    A half-built folder from an interrupted run never becomes `target`, so the next run
    rebuilds instead of loading broken files.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        tmp.rename(target)
    except OSError:
        if not target.exists():  # a concurrent builder did not win the race either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
