"""One output folder, one run: a lock, a manifest written first and a completion mark written last.

`run.json` says what the run is (the command that owns the folder, its settings) and how
far it got: its status goes "running" -> "complete", or "failed"/"interrupted". A run
killed outright (SIGKILL, power cut) leaves "running" behind, with its lock released, so a
half-finished folder is never mistaken for a finished one. The lock (`.lock`, taken with
`filelock`, which works on Linux, macOS and Windows) keeps a second run out while the first
is alive; the operating system drops it when its process dies.

The rules (docs/command_lines.md states them for the user):

* a folder belongs to the command that made it: no command takes over, clears or resumes
  another command's folder, whatever the flags;
* `--overwrite` clears only what a run of this project wrote: a non-empty folder without
  run.json is refused, and nothing in it is touched;
* `--overwrite` never removes an input of the new run (a model inside final/ or
  checkpoints/), nor another run nested inside an output, nor a user's file that merely
  looks like a temp file;
* before removing anything, `--overwrite` marks run.json "replacing": an interruption or a
  file that cannot be deleted leaves that mark, never a "complete" over a half-cleared
  folder, and `--overwrite` (or `--resume`, which then starts afresh; not under a
  multi-process launch, see check_launch_resume) finishes the job;
* `--resume` removes nothing up front, and resuming a complete run changes nothing.

Standard library, `filelock` and `safetensors` only: the checks run before the command lines
import torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from grpo import artifacts, checkpoints
from grpo.cli import NothingToDo, UserError

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
REUSE_HINT = "pass --resume to continue it, --overwrite to replace it"
REPLACING = "replacing"  # run.json's status while --overwrite removes the old outputs


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_owner() -> str:
    """The running script's file name (`train_grpo.py`), the owner when none is given."""
    return Path(sys.argv[0]).name


def launch_world_size() -> int:
    """How many processes a launcher (accelerate launch, torchrun) started: WORLD_SIZE, or 1
    when it is unset. UserError if it is not a positive whole number."""
    text = os.environ.get("WORLD_SIZE", "").strip()
    if not text:
        return 1
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise UserError(
            f"WORLD_SIZE={text!r} is not a number of processes: unset it, or start the run "
            "with `accelerate launch` or `torchrun`, which set it"
        )
    return size


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a multi-process launch (WORLD_SIZE > 1).

    A stray RANK alone does not make a launch: without WORLD_SIZE > 1 this process is the
    only one, and it must take the lock and write run.json."""
    if launch_world_size() == 1:
        return True
    text = os.environ.get("RANK", "").strip() or "0"
    try:
        return int(text) == 0
    except ValueError:
        raise UserError(f"RANK={text!r} is not a process number: unset it") from None


def check_launch_resume(folder: Path, processes: int) -> None:
    """UserError for --resume under a multi-process launch (`processes`, WORLD_SIZE as
    resolved) of a folder whose --overwrite was cut short: the main process would start
    afresh (and delete the checkpoints) while the others, which claim nothing, resumed from
    them. Every process reads the same run.json, since the main one refuses before writing it."""
    if processes == 1:
        return
    record = read_record(folder)
    if record and record.get("status") == REPLACING:
        raise UserError(
            f"--resume: an --overwrite of the run in {folder} was cut short, so nothing is left "
            "to resume; a multi-process launch must finish it with --overwrite instead"
        )


class UnreadableRecord(UserError):
    """A run.json that is there but is no run's record (hand-edited, garbage)."""


def read_record(folder: Path) -> dict | None:
    """The run.json of `folder`, or None if there is none; UnreadableRecord if it is there
    but does not parse as a run's record (nothing then shows whose folder it is)."""
    path = Path(folder) / RUN_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # a folder named run.json, not UTF-8, no access
        raise UnreadableRecord(_unreadable(path, type(error).__name__)) from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise UnreadableRecord(_unreadable(path, "not valid JSON")) from None
    if not isinstance(record, dict) or not isinstance(record_owner(record), str):
        raise UnreadableRecord(_unreadable(path, "no run's record: it names no owner"))
    return record


def _unreadable(path: Path, why: str) -> str:
    return (
        f"{path} is unreadable ({why}), so nothing shows which run the folder holds: "
        "nothing in it is touched, whatever the flags. Restore the file or choose another "
        "--output-dir"
    )


def record_owner(record: dict) -> str | None:
    """The command a run.json belongs to (older records name it only in "command")."""
    command = record.get("command")
    fallback = command[0] if isinstance(command, list) and command else None
    return record.get("owner") or fallback


def _number_field(record: dict, name: str, kind: type[int] | type[float]) -> int | float:
    """A count or a time from a run.json that may have been edited by hand: 0 if absent,
    UserError if it is not a number."""
    value = record.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UserError(
            f"{RUN_FILE}'s {name} is {value!r}, not a number: restore the file, or start "
            "afresh with --overwrite"
        )
    return kind(value)


def _lock(folder: Path, previous: dict | None) -> FileLock:
    """The held lock of `folder`; UserError if a live run holds it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / LOCK_FILE, timeout=0)
        lock.acquire()
    except Timeout:
        raise UserError(_in_use(folder, previous)) from None
    except OSError as error:
        raise UserError(f"cannot write to output folder {folder}: {error.strerror}") from None
    return lock


def _live_holder(folder: Path) -> bool:
    """True if a live process holds `folder`'s lock (nothing is created to find out)."""
    if not (folder / LOCK_FILE).is_file():
        return False
    probe = FileLock(folder / LOCK_FILE, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:
        return False  # an unreadable lock file: the claim itself will say why
    probe.release()
    return False


def _in_use(folder: Path, record: dict | None) -> str:
    holder = (record or {}).get("pid", "?")
    return (
        f"{folder} is in use by another run (pid {holder}); wait for it to finish "
        "or choose another --output-dir"
    )


def _remove(path: Path) -> None:
    """Remove an earlier output; UserError naming what could not be removed (run.json still
    says "replacing", so a later --overwrite finishes the job)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as error:
        where = error.filename or path
        raise UserError(
            f"could not remove {where} ({error.strerror or error}) while replacing the run in "
            f"{path.parent}: its {RUN_FILE} says {REPLACING!r}; fix that and pass --overwrite "
            "again to finish"
        ) from None


def _nested_runs(path: Path) -> list[Path]:
    """The run folders (holding a run.json) inside `path`, a folder about to be removed."""
    if not path.is_dir() or path.is_symlink():
        return []
    return [Path(root) for root, _, files in os.walk(path) if RUN_FILE in files]


def _check_not_nested(folder: Path) -> None:
    """UserError if `folder` lies inside an output of another run (R/final/eval): that run's
    --overwrite would delete it, its resume would write over it."""
    absolute = folder.absolute()
    for parent in absolute.parents:
        try:
            record = read_record(parent)
        except UserError:
            continue  # not a run this project can read: its own claim refuses it
        outputs = (record or {}).get("outputs")
        inside = absolute.relative_to(parent).parts[0]
        if isinstance(outputs, list) and inside in outputs:
            raise UserError(
                f"{folder} lies inside {parent / inside}, an output of the run in {parent}, "
                "which that run replaces: choose an --output-dir outside it"
            )


def _inside(path: Path, container: Path) -> bool:
    path, container = path.resolve(), container.resolve()
    return path == container or path.is_relative_to(container)


def _temp_file_pattern(names: tuple[str, ...]) -> re.Pattern:
    """The names grpo.artifacts gives its temp files (`.metrics.json.k3j9x1ab.tmp`) for the
    files in `names`: only those are ours to delete."""
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"\.(?:{alternatives})\.[a-z0-9_]+{re.escape(artifacts.TEMP_SUFFIX)}")


def _our_temp_files(folder: Path, outputs: tuple[str, ...]) -> list[Path]:
    """The temp files that a killed writer of run.json or of an output left in `folder`."""
    if not folder.is_dir():
        return []
    pattern = _temp_file_pattern((RUN_FILE, *outputs))
    return [p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file()]


def _check_folder(folder: Path) -> None:
    """UserError unless `folder` is, or can be created as, a writable folder."""
    try:
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--output-dir {folder} is a file, not a folder")
        existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
        with tempfile.TemporaryFile(dir=existing):  # gone when closed: nothing is left
            pass
    except OSError as error:
        raise UserError(f"cannot write to output folder {folder}: {error.strerror}") from None


def _foreign_entries(folder: Path, outputs: tuple[str, ...]) -> list[str]:
    """What `folder` holds besides a lock file and the temp files of our killed writers."""
    if not folder.is_dir():
        return []
    ours = {LOCK_FILE, *(p.name for p in _our_temp_files(folder, outputs))}
    return sorted(p.name for p in folder.iterdir() if p.name not in ours)


class _Claim:
    """The decision about one folder: what a new attempt may do with it (nothing written)."""

    def __init__(self, folder: Path, outputs: tuple[str, ...], settings: dict, owner: str):
        self.folder, self.outputs, self.settings, self.owner = folder, outputs, settings, owner

    def decide(
        self,
        previous: dict | None,
        resume: bool,
        overwrite: bool,
        keep: tuple[str, ...],
        hint: str,
        inputs: tuple[Path, ...] = (),
    ) -> tuple[list[str], bool]:
        """(the earlier outputs to remove before the new attempt, whether the attempt
        continues the earlier one); UserError (or NothingToDo) if the folder may not be used
        as asked."""
        if previous is None:
            self._check_not_foreign(resume)
            return [], False
        self._check_owner(previous)
        self._check_inputs(inputs)
        replacing = previous.get("status") == REPLACING
        if resume:
            self._check_same_run(previous)
            if previous.get("status") == "complete":
                raise NothingToDo(
                    f"{self.folder} holds a complete run: nothing to resume, nothing changed. "
                    "To run it again, pass --overwrite or choose another --output-dir."
                )
            _number_field(previous, "wall_time_s", float)
            _number_field(previous, "attempts", int)
            if not replacing:  # nothing is removed: the resumed run replaces each result
                return [], True
            # An --overwrite was cut short: nothing is left to resume, finish replacing.
        leftovers = [name for name in self.outputs if (self.folder / name).exists()]
        if leftovers and not (overwrite or resume):
            if replacing:
                hint = (
                    "an --overwrite of it was cut short, part of the old run is gone: pass "
                    "--overwrite to finish replacing it"
                )
            elif keep and not any(checkpoints.newest_complete(self.folder / n) for n in keep):
                hint = (
                    f"it holds no complete checkpoint in {' or '.join(keep)} to resume from: "
                    "pass --overwrite to replace it"
                )
            raise UserError(
                f"{self.folder} already holds a run (status: {previous.get('status', '?')}; "
                f"{', '.join(leftovers)}): {hint}, or choose another --output-dir"
            )
        for name in leftovers:
            nested = [p for p in _nested_runs(self.folder / name) if p != self.folder]
            if nested:
                raise UserError(
                    f"{self.folder / name} holds another run ({nested[0]}), which --overwrite "
                    "would delete with it: move that run out first, or choose another "
                    "--output-dir"
                )
        return leftovers, False

    def _check_inputs(self, inputs: tuple[Path, ...]) -> None:
        """The inputs of a run are never its outputs: a model inside final/ or checkpoints/
        would be overwritten (or, with --overwrite, deleted) by the run that reads it."""
        for source in inputs:
            for name in self.outputs:
                if _inside(Path(source), self.folder / name):
                    raise UserError(
                        f"the model {source} lies inside {self.folder / name}, which this run "
                        "writes (--overwrite would delete it first): copy the model out of "
                        f"{self.folder}, or choose another --output-dir"
                    )

    def _check_not_foreign(self, resume: bool) -> None:
        if resume:
            raise UserError(
                f"--resume: {self.folder} holds no {RUN_FILE}, so nothing shows which run it "
                "belongs to; choose another --output-dir"
            )
        foreign = _foreign_entries(self.folder, self.outputs)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise UserError(
                f"{self.folder} is not empty ({shown}) and holds no {RUN_FILE}, so no run of "
                "this project made it: nothing in it is touched, not even with --overwrite. "
                "Choose a new or empty --output-dir"
            )

    def _check_owner(self, previous: dict) -> None:
        owner = record_owner(previous)
        if owner != self.owner:
            raise UserError(
                f"{self.folder} holds a run of {owner} (status: {previous.get('status', '?')}), "
                f"not of {self.owner}: a command never takes over, clears or resumes another "
                "command's folder, whatever the flags. Choose another --output-dir"
            )

    def _check_same_run(self, previous: dict) -> None:
        changed = checkpoints.differences(previous.get("settings", {}), self.settings)
        if changed:
            raise UserError(
                f"--resume: the run in {self.folder} was started with other settings ("
                + "; ".join(changed)
                + "): repeat its command with --resume, or start afresh with --overwrite"
            )


class RunDir:
    """A claimed output folder: hold it while the run works, `finish()` it when done.

    `outputs` names what the run writes there. A folder that holds any of them is reused
    only with `resume` (the settings must match run.json's; nothing is removed, and a
    complete run raises NothingToDo) or `overwrite` (all of them are removed first; `keep`
    names what a resume continues from, for the hint); `reuse_hint` says so to the user.
    Other files are never touched. `owner` is the command that owns the folder (default:
    the running script's name); another command's folder is always refused. `inputs` are
    the folders the run reads (its model): one inside an output is refused.
    """

    def __init__(
        self,
        folder: Path,
        outputs: tuple[str, ...],
        settings: dict,
        *,
        owner: str | None = None,
        resume: bool = False,
        overwrite: bool = False,
        keep: tuple[str, ...] = (),
        reuse_hint: str = REUSE_HINT,
        inputs: tuple[Path, ...] = (),
    ):
        self.folder = Path(folder)
        owner = owner or default_owner()
        settings = json.loads(json.dumps(settings))  # compare what run.json can hold
        flags = dict(
            resume=resume, overwrite=overwrite, keep=keep, reuse_hint=reuse_hint, inputs=inputs
        )
        RunDir.preflight(self.folder, outputs, settings, owner=owner, **flags)
        self._lock: FileLock | None = _lock(self.folder, read_record(self.folder))
        self._started = time.monotonic()
        try:
            previous = self._previous = read_record(self.folder)  # again, under the lock
            claim = _Claim(self.folder, outputs, settings, owner)
            stale, self.resumes = claim.decide(
                previous, resume, overwrite, keep, reuse_hint, inputs
            )
            if previous and previous.get("status") == "running":
                dead = previous.get("pid")
                print(f"Taking over the lock of {self.folder} from pid {dead}, which is gone.")
            if previous and previous.get("status") == REPLACING and stale:
                print(f"Finishing the replacement of the run in {self.folder}, cut short before.")
            self._prior_wall_time = (
                _number_field(previous, "wall_time_s", float) if self.resumes else 0
            )
            attempts = _number_field(previous, "attempts", int) + 1 if self.resumes else 1
            self.record = {
                "status": REPLACING if stale else "running",
                "owner": owner,
                "pid": os.getpid(),
                "attempts": attempts,
                "started_at": _now(),
                "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
                "settings": settings,
                "outputs": list(outputs),
            }
            try:  # the mark comes first: nothing is removed unless run.json says so
                self.update(wall_time_s=self._prior_wall_time)
            except OSError as error:
                raise UserError(
                    f"cannot write {self.folder / RUN_FILE} ({error.strerror or error}): "
                    "nothing in the folder was changed"
                ) from None
            for name in stale:
                _remove(self.folder / name)
            for path in _our_temp_files(self.folder, outputs):
                path.unlink(missing_ok=True)
            if stale:
                self.update(status="running")
        except BaseException:
            self.release()
            raise

    @staticmethod
    def preflight(
        folder: Path,
        outputs: tuple[str, ...],
        settings: dict,
        *,
        owner: str | None = None,
        resume: bool = False,
        overwrite: bool = False,
        keep: tuple[str, ...] = (),
        reuse_hint: str = REUSE_HINT,
        inputs: tuple[Path, ...] = (),
    ) -> bool:
        """The checks of claiming `folder`, without writing anything: a command line can
        refuse a folder it will not get before it spends time loading a model. The claim
        itself checks again, under the lock. Returns whether the claim will continue the
        earlier attempt (False for --resume of a replacement that was cut short: it starts
        afresh). Raises UserError, or NothingToDo for a resumed run that is complete."""
        folder = Path(folder)
        _check_folder(folder)
        _check_not_nested(folder)
        previous = read_record(folder)
        if _live_holder(folder):
            raise UserError(_in_use(folder, previous))
        settings = json.loads(json.dumps(settings))
        claim = _Claim(folder, outputs, settings, owner or default_owner())
        return claim.decide(previous, resume, overwrite, keep, reuse_hint, inputs)[1]

    def check_resolved(self, resolved: dict, resume: bool) -> None:
        """Record what the names resolved to (model folder, profile); on --resume they must
        match the first attempt's ("auto" may have found another model since)."""
        before = (self._previous or {}).get("resolved")
        if resume and before and before != resolved:
            raise UserError(
                f"--resume: the run in {self.folder} used "
                + "; ".join(checkpoints.differences(before, resolved))
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

    def finish(self, status: str = "complete", **fields) -> float:
        """Mark the run `status` and return the wall time recorded; pass `wall_time_s` to
        record the figure already printed or written to metrics.json."""
        fields.setdefault("wall_time_s", self.wall_time_s())
        self.update(status=status, **fields)
        return fields["wall_time_s"]

    def release(self) -> None:
        """Give the folder up: the lock file stays, for the next run to take."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

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
