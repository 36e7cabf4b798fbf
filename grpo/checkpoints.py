"""Which checkpoint can a run resume from? The newest one whose every part is really there.

A run killed while saving, a full disk or a hand-deleted file leaves a checkpoint folder
that looks fine by name. Resuming from it either crashes (weights, optimizer) or, worse,
goes on quietly with a restarted learning-rate schedule or other random numbers
(scheduler, RNG state). So each part is checked, from cheap to thorough:

* `trainer_state.json` parses and names the folder's step;
* the weights open with `safetensors.safe_open` (header valid, file as long as it says);
  with `load=True` every tensor is read and must hold finite numbers (a block of 0xff
  bytes reads as NaN);
* the optimizer, scheduler and RNG files are intact zip archives (torch.save's format),
  the small ones with their CRCs checked; with `load=True` the optimizer's CRCs are
  checked too, and every file is loaded by `torch.load(weights_only=True)`, as the Trainer
  itself will (the optimizer memory-mapped: its values are covered by the CRCs).

`problem` never raises: whatever is wrong with a checkpoint is a reason to skip it.
Standard library and safetensors only, except `load=True`, which imports torch and
transformers.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from safetensors import SafetensorError, safe_open

PREFIX = "checkpoint-"


class NoCheckpoint(ValueError):
    """`--resume` has nothing to resume from (a user problem, not a bug)."""

    is_user_error = True  # grpo.cli.run_main shows it as one line


WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")  # full model, LoRA adapter
SHARD_INDEX = "model.safetensors.index.json"


def steps(folder: Path) -> list[Path]:
    """The checkpoint folders in `folder`, newest (highest step) first."""
    found = [p for p in Path(folder).glob(f"{PREFIX}*") if p.name[len(PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]), reverse=True)


def _safetensors_problem(path: Path, thorough: bool) -> str | None:
    """None if `path` opens as safetensors (and, when `thorough`, every tensor reads back
    finite)."""
    try:
        with safe_open(path, framework="pt" if thorough else "numpy") as weights:
            for name in weights.keys() if thorough else ():
                if not _finite(weights.get_tensor(name)):
                    return f"{path.name} holds values that are not finite numbers ({name})"
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (SafetensorError, OSError, ValueError, RuntimeError, MemoryError) as error:
        reason = "truncated" if "not fully covered" in str(error) else "unreadable"
        return f"{path.name} is {reason} ({str(error)[:120]})"
    return None


def _finite(tensor) -> bool:
    import torch

    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def _weights_problem(checkpoint: Path, thorough: bool) -> str | None:
    for name in WEIGHT_FILES:
        if (checkpoint / name).exists():
            return _safetensors_problem(checkpoint / name, thorough)
    try:
        index = json.loads((checkpoint / SHARD_INDEX).read_text(encoding="utf-8"))
        shards = sorted(set(index["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"the weights are missing ({', '.join(WEIGHT_FILES)} or {SHARD_INDEX})"
    problems = (_safetensors_problem(checkpoint / str(shard), thorough) for shard in shards)
    return next((problem for problem in problems if problem), None)


def _zip_problem(path: Path, verify: bool, load: bool, mmap: bool = False) -> str | None:
    """None if `path` is an intact torch.save archive (CRCs checked when `verify`) that
    `torch.load(weights_only=True)` reads when `load`."""
    try:
        with zipfile.ZipFile(path) as archive:
            if verify and archive.testzip() is not None:
                return f"{path.name} is corrupt (a checksum does not match)"
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError):
        return f"{path.name} is missing or truncated"
    if load:
        import pickle

        import torch
        from transformers.trainer_pt_utils import safe_globals  # the Trainer's NumPy allowlist

        try:
            with safe_globals():
                torch.load(path, weights_only=True, mmap=mmap, map_location="cpu")
        except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError) as error:
            return f"{path.name} does not load ({type(error).__name__})"
    return None


def _state_problem(checkpoint: Path) -> str | None:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        step = state["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "trainer_state.json is missing or unreadable"
    if step != int(checkpoint.name[len(PREFIX) :]):
        return f"trainer_state.json says step {step}"
    return None


def problem(checkpoint: Path, load: bool = False) -> str | None:
    """Why `checkpoint` cannot be resumed from, or None if it is complete. Never raises."""
    found = _state_problem(checkpoint) or _weights_problem(checkpoint, thorough=load)
    if found:
        return found
    deepspeed = any(checkpoint.glob("global_step*"))  # DeepSpeed keeps its optimizer there
    if not deepspeed:  # gigabytes: its CRCs and values are read only when `load`
        found = _zip_problem(checkpoint / "optimizer.pt", verify=load, load=load, mmap=True)
    rng_files = sorted(checkpoint.glob("rng_state*.pth")) or [checkpoint / "rng_state.pth"]
    for path in [checkpoint / "scheduler.pt", *rng_files]:
        found = found or _zip_problem(path, verify=True, load=load)
    return found


def newest_complete(
    folder: Path, load: bool = False, report: Callable[[str], None] | None = None
) -> Path | None:
    """The newest complete checkpoint in `folder`; each newer one skipped is reported."""
    for checkpoint in steps(folder):
        why = problem(checkpoint, load)
        if why is None:
            return checkpoint
        if report:
            report(f"Skipping {checkpoint.name}: {why}.")
    return None


def resume_point(
    folder: Path, load: bool = False, report: Callable[[str], None] | None = None
) -> Path:
    """The checkpoint `--resume` continues from; NoCheckpoint naming every checkpoint
    skipped and why, or saying that none was saved."""
    skipped: list[str] = []

    def note(line: str) -> None:
        skipped.append(line.removeprefix("Skipping ").rstrip("."))
        if report:
            report(line)

    found = newest_complete(folder, load, note)
    if found is not None:
        return found
    if not skipped:
        raise NoCheckpoint(
            f"--resume: {folder} holds no checkpoint: the run stopped before its first save "
            "(see --save-steps); start afresh with --overwrite"
        )
    raise NoCheckpoint(f"--resume: no complete checkpoint in {folder} (" + "; ".join(skipped) + ")")
