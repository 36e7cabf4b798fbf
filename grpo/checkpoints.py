"""Which checkpoint can a run resume from? The newest one whose every part is really there.

A run killed while saving, a full disk or a hand-deleted file leaves a checkpoint folder
that looks fine by name. Resuming from it either crashes (weights, optimizer) or, worse,
goes on quietly with a restarted learning-rate schedule or other random numbers
(scheduler, RNG state). So each part is checked, from cheap to thorough:

* `trainer_state.json` parses and names the folder's step;
* the weights' safetensors header parses and the file is as long as it says;
* the optimizer, scheduler and RNG files are intact zip archives (torch.save's format),
  the small ones with their CRCs checked; with `load=True` those small ones are also
  loaded by `torch.load(weights_only=True)`, as the Trainer itself will.

Standard library only, except `load=True`, which imports torch and transformers.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

PREFIX = "checkpoint-"
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")  # full model, LoRA adapter
SHARD_INDEX = "model.safetensors.index.json"


def steps(folder: Path) -> list[Path]:
    """The checkpoint folders in `folder`, newest (highest step) first."""
    found = [p for p in Path(folder).glob(f"{PREFIX}*") if p.name[len(PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]), reverse=True)


def _safetensors_problem(path: Path) -> str | None:
    """None if the header parses and the file holds every tensor it lists."""
    try:
        with path.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            header = json.loads(file.read(length))
        size = path.stat().st_size
    except (OSError, ValueError, struct.error, MemoryError):
        return f"{path.name} is missing or truncated (unreadable header)"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    if size < 8 + length + max(ends, default=0):
        return f"{path.name} is truncated"
    return None


def _weights_problem(checkpoint: Path) -> str | None:
    for name in WEIGHT_FILES:
        if (checkpoint / name).exists():
            return _safetensors_problem(checkpoint / name)
    try:
        index = json.loads((checkpoint / SHARD_INDEX).read_text(encoding="utf-8"))
        shards = sorted(set(index["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"the weights are missing ({', '.join(WEIGHT_FILES)} or {SHARD_INDEX})"
    problems = (_safetensors_problem(checkpoint / shard) for shard in shards)
    return next((problem for problem in problems if problem), None)


def _zip_problem(path: Path, verify: bool, load: bool) -> str | None:
    """None if `path` is an intact torch.save archive (CRCs checked when `verify`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if verify and archive.testzip() is not None:
                return f"{path.name} is corrupt"
    except (OSError, zipfile.BadZipFile, EOFError):
        return f"{path.name} is missing or truncated"
    if load:
        import torch
        from transformers.trainer_pt_utils import safe_globals  # the Trainer's NumPy allowlist

        try:
            with safe_globals():
                torch.load(path, weights_only=True)
        except Exception as error:  # any failure to load means: do not resume from here
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
    """Why `checkpoint` cannot be resumed from, or None if it is complete."""
    found = _state_problem(checkpoint) or _weights_problem(checkpoint)
    if found:
        return found
    deepspeed = any(checkpoint.glob("global_step*"))  # DeepSpeed keeps its optimizer there
    if not deepspeed:
        found = _zip_problem(checkpoint / "optimizer.pt", verify=False, load=False)
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
