"""Writing run outputs atomically: a file is either complete or absent, never half-written.

Each writer fills a temporary file in the target folder and renames it over the target.
A rename within one file system is atomic, so a run killed mid-write leaves the previous
version (or nothing) instead of a truncated JSON that a notebook would then misread.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_SUFFIX = ".tmp"  # temp names: .<name>.<random>.tmp (grpo.run_dir removes only its own)


def _write_atomically(path: Path, write: Callable[[IO], None], mode: str = "w") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = None if "b" in mode else "utf-8"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp creates files owner-only
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: object) -> Path:
    """`data` as indented JSON (keys kept in insertion order, non-ASCII kept readable)."""
    return _write_atomically(
        path, lambda f: f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    )


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    """One JSON object per line, the format of GSM8K itself and of the completion logs."""
    return _write_atomically(
        path, lambda f: f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )


def save_figure(figure, path: Path) -> Path:
    """A matplotlib figure as PNG (the format is given explicitly: the temp name has none)."""
    return _write_atomically(
        path, lambda f: figure.savefig(f, format="png", dpi=120, bbox_inches="tight"), "wb"
    )
