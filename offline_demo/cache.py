"""Where locally built artefacts live, and how to build one without leaving half a folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV_VAR = "GRPO_CACHE_DIR"


class CacheUnwritable(RuntimeError):
    """The cache folder cannot be created or written (a user problem, not a bug)."""

    is_user_error = True  # grpo.cli.run_main shows it as one line


def cache_root() -> Path:
    """Where built artefacts (the tiny random model) live: $GRPO_CACHE_DIR (`~` expanded,
    as the shell would) or ~/.cache/grpo-tutorial."""
    root = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(root).expanduser() if root else Path.home() / ".cache" / "grpo-tutorial"


def _build_beside(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build` in a fresh temporary folder next to `target` (same disk: renames are atomic)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as error:
        raise CacheUnwritable(
            f"cannot build {target.name} in {target.parent} ({error.strerror or error}): set "
            f"{CACHE_ENV_VAR} to a folder you can write to"
        ) from None
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and move the result to `target` atomically, unless it exists.

    A half-built folder from an interrupted run never becomes `target`, so the next run
    rebuilds instead of loading broken files.
    """
    if target.exists():
        return target
    tmp = _build_beside(target, build)
    try:
        tmp.rename(target)
    except OSError:
        if not target.exists():  # a concurrent builder did not win the race either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def rebuild(target: Path, build: Callable[[Path], None]) -> Path:
    """Build a new `target` and swap it in only once the build succeeded.

    Until the swap the old folder stays in place, so a failed or interrupted rebuild of a
    committed artefact leaves the working copy as it was.
    """
    tmp = _build_beside(target, build)
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target
