"""One output folder, one run: a lock, a manifest written first and a completion mark written last.

`run.json` says what the run is (command, settings) and how far it got: its status goes
"running" -> "complete", or "failed"/"interrupted". A run killed outright (SIGKILL, power
cut) leaves "running" behind, with its lock released, so a half-finished folder is never
mistaken for a finished one. The lock (`.lock`, an fcntl lock holding the pid) keeps a
second run out while the first is alive; the kernel drops it when its process dies.

Standard library only: the checks run before the command lines import torch.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from grpo import artifacts
from grpo.cli import UserError

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
REUSE_HINT = "pass --resume to continue it, --overwrite to replace it"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_record(folder: Path) -> dict | None:
    """The run.json of `folder`, or None if there is none (or it cannot be read)."""
    try:
        record = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _lock(folder: Path) -> int:
    """An open, exclusively locked `.lock` in `folder` holding our pid; UserError if taken."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise UserError(f"cannot write to output folder {folder}: {error.strerror}") from None
    holder = os.read(fd, 32).decode(errors="replace").strip()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserError(_in_use(folder, holder)) from None
    if holder:
        print(f"Taking over the lock of {folder} left by pid {holder}, which is gone.")
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _differences(before: dict, now: dict) -> list[str]:
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return [f"{k}: {before.get(k)!r} there, {now.get(k)!r} here" for k in changed]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _check_folder(folder: Path) -> None:
    """UserError unless `folder` is, or can be created as, a writable folder."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output-dir {folder} is a file, not a folder")
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=existing):  # gone when closed: nothing is left
            pass
    except OSError as error:
        raise UserError(f"cannot write to output folder {folder}: {error.strerror}") from None


def _in_use(folder: Path, holder: str) -> str:
    return (
        f"{folder} is in use by another run (pid {holder or '?'}); wait for it to finish "
        "or choose another --output-dir"
    )


def _live_holder(folder: Path) -> str | None:
    """The pid in `folder`'s lock file if a live process holds the lock, else None."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return os.read(fd, 32).decode(errors="replace").strip()
    finally:
        os.close(fd)  # also drops the shared lock, if it was granted
    return None


def _outputs_to_remove(
    folder: Path,
    previous: dict | None,
    outputs: tuple[str, ...],
    settings: dict,
    resume: bool,
    overwrite: bool,
    keep: tuple[str, ...],
    reuse_hint: str,
) -> list[str]:
    """The earlier outputs a new attempt must remove; UserError if it may not reuse them."""
    leftovers = [name for name in outputs if (folder / name).exists()]
    if resume:
        _check_same_run(folder, previous, settings)
        return [name for name in leftovers if name not in keep]
    if leftovers and not overwrite:
        status = (previous or {}).get("status", f"unknown, no {RUN_FILE}")
        raise UserError(
            f"{folder} already holds a run (status: {status}; {', '.join(leftovers)}): "
            f"{reuse_hint}, or choose another --output-dir"
        )
    return leftovers


def _check_same_run(folder: Path, previous: dict | None, settings: dict) -> None:
    if previous is None:
        raise UserError(
            f"--resume: {folder} holds no {RUN_FILE}, so nothing shows which run its "
            "checkpoints belong to; start afresh with --overwrite"
        )
    changed = _differences(previous.get("settings", {}), settings)
    if changed:
        raise UserError(
            f"--resume: the run in {folder} was started with other settings ("
            + "; ".join(changed)
            + "): repeat its command with --resume, or start afresh with --overwrite"
        )


class RunDir:
    """A claimed output folder: hold it while the run works, `finish()` it when done.

    `outputs` names what the run writes there. A folder that holds any of them is reused
    only with `resume` (the settings must match run.json's; `keep` survives, the rest is
    removed) or `overwrite` (all of them are removed first); `reuse_hint` says so to the
    user. Other files are never touched.
    """

    def __init__(
        self,
        folder: Path,
        outputs: tuple[str, ...],
        settings: dict,
        *,
        resume: bool = False,
        overwrite: bool = False,
        keep: tuple[str, ...] = (),
        reuse_hint: str = REUSE_HINT,
    ):
        self.folder = Path(folder)
        _check_folder(self.folder)
        self._lock_fd: int | None = _lock(self.folder)
        self._started = time.monotonic()
        try:
            settings = json.loads(json.dumps(settings))  # compare what run.json can hold
            previous = self._previous = read_record(self.folder)
            stale = _outputs_to_remove(
                self.folder, previous, outputs, settings, resume, overwrite, keep, reuse_hint
            )
            for name in stale:
                _remove(self.folder / name)
            artifacts.remove_temp_files(self.folder)
            self._prior_wall_time = float((previous or {}).get("wall_time_s", 0)) if resume else 0
            attempts = (previous or {}).get("attempts", 0) + 1 if resume else 1
            self.record = {
                "status": "running",
                "pid": os.getpid(),
                "attempts": attempts,
                "started_at": _now(),
                "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
                "settings": settings,
            }
            self.update(wall_time_s=self._prior_wall_time)
        except BaseException:
            self.release()
            raise

    @staticmethod
    def preflight(
        folder: Path,
        outputs: tuple[str, ...],
        settings: dict,
        *,
        resume: bool = False,
        overwrite: bool = False,
        keep: tuple[str, ...] = (),
        reuse_hint: str = REUSE_HINT,
    ) -> None:
        """The checks of claiming `folder`, without writing anything: a command line can
        refuse a folder it will not get before it spends time loading a model. The claim
        itself checks again, under the lock."""
        folder = Path(folder)
        _check_folder(folder)
        holder = _live_holder(folder)
        if holder is not None:
            raise UserError(_in_use(folder, holder))
        settings = json.loads(json.dumps(settings))
        previous = read_record(folder)
        _outputs_to_remove(folder, previous, outputs, settings, resume, overwrite, keep, reuse_hint)

    def check_resolved(self, resolved: dict, resume: bool) -> None:
        """Record what the names resolved to (model folder, profile); on --resume they must
        match the first attempt's ("auto" may have found another model since)."""
        before = (self._previous or {}).get("resolved")
        if resume and before and before != resolved:
            raise UserError(
                f"--resume: the run in {self.folder} used "
                + "; ".join(_differences(before, resolved))
                + ": pass the same --model/--profile, or start afresh with --overwrite"
            )
        self.update(resolved=resolved)

    def wall_time_s(self) -> float:
        """Seconds this run has worked, added up over the attempts that resumed it."""
        return round(self._prior_wall_time + time.monotonic() - self._started, 1)

    def update(self, **fields) -> None:
        """Merge `fields` into run.json and rewrite it (atomically)."""
        self.record.update(fields, updated_at=_now())
        artifacts.write_json(self.folder / RUN_FILE, self.record)

    def finish(self, status: str = "complete", **fields) -> None:
        self.update(status=status, wall_time_s=self.wall_time_s(), **fields)

    def release(self) -> None:
        """Give the folder up: the lock file stays, empty, for the next run to take."""
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Mark a run that ended without `finish()` as failed or interrupted, then unlock."""
        try:
            if self.record["status"] == "running":
                failed = error is None or isinstance(error, Exception | SystemExit)
                reason = f"{type(error).__name__}: {error}"[:500] if error else "ended early"
                self.finish("failed" if failed else "interrupted", error=reason)
        finally:
            self.release()
