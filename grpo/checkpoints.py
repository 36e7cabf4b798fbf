"""Which checkpoint can a run resume from? The newest one whose every part is really there.

A run killed while saving, a full disk or a hand-deleted file leaves a checkpoint folder
that looks fine by name. Resuming from it either crashes (weights, optimizer) or, worse,
goes on quietly with a restarted learning-rate schedule or other random numbers
(scheduler, RNG state). So each part is checked, from cheap to thorough:

* `trainer_state.json` parses, names the folder's step as a whole number and holds a
  log history (a list of records), as the Trainer reads it; a config.json parses;
* the weights open with `safetensors.safe_open` (header valid, file as long as it says);
  with `load=True` every tensor is read and must hold finite numbers (a block of 0xff
  bytes reads as NaN);
* the optimizer, scheduler and RNG files are intact zip archives (torch.save's format),
  the small ones with their CRCs checked; with `load=True` the optimizer's CRCs are
  checked too, and every file is loaded by `torch.load(weights_only=True)`, as the Trainer
  itself will (the optimizer memory-mapped: its values are covered by the CRCs), and must
  hold what the Trainer reads from it (an optimizer's state, a scheduler's, RNG states);
* a run that trains a LoRA adapter resumes only from an adapter's checkpoint, a full run
  only from a full model's.

`problem` never raises: whatever is wrong with a checkpoint is a reason to skip it.
Standard library and safetensors only, except `load=True`, which imports torch and
transformers.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from safetensors import SafetensorError, safe_open

PREFIX = "checkpoint-"


class NoCheckpoint(ValueError):
    """`--resume` has nothing to resume from (a user problem, not a bug)."""

    is_user_error = True  # grpo.cli.run_main shows it as one line


MODEL_WEIGHTS, ADAPTER_WEIGHTS = "model.safetensors", "adapter_model.safetensors"
WEIGHT_FILES = (MODEL_WEIGHTS, ADAPTER_WEIGHTS)
SHARD_INDEX = "model.safetensors.index.json"
STATE_FILE = "trainer_state.json"
# Written by train_grpo.py beside each checkpoint: the training settings of the run that
# saved it, so that a checkpoint copied in from another run is not resumed silently.
SETTINGS_FILE = "run_settings.json"
# What the Trainer's resume reads besides the model: not part of a saved model (final/).
TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", STATE_FILE, "global_step*")
# The keys the Trainer reads from each file it loads (torch.load of a dict).
EXPECTED_KEYS = {
    "optimizer.pt": ("state", "param_groups"),
    "scheduler.pt": ("last_epoch",),
    "rng_state": ("python", "numpy", "cpu"),
}


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


def _weights_problem(checkpoint: Path, thorough: bool, lora: bool | None) -> str | None:
    if lora is not None:
        wrong = MODEL_WEIGHTS if lora else ADAPTER_WEIGHTS
        if (checkpoint / wrong).exists():
            kind, run = (
                ("a full model's", "a LoRA run") if lora else ("a LoRA adapter's", "a full run")
            )
            return f"it is {kind} checkpoint ({wrong}), and this is {run}"
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
                loaded = torch.load(path, weights_only=True, mmap=mmap, map_location="cpu")
        except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError) as error:
            return f"{path.name} does not load ({type(error).__name__})"
        kind = "rng_state" if path.name.startswith("rng_state") else path.name
        expected = EXPECTED_KEYS[kind]
        if not isinstance(loaded, dict) or any(key not in loaded for key in expected):
            return f"{path.name} is not {kind}'s contents (no {', '.join(expected)})"
    return None


def _state_problem(checkpoint: Path, expected: Mapping[str, object]) -> str | None:
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        step, history = state["global_step"], state.get("log_history", [])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return f"{STATE_FILE} is missing or unreadable"
    if type(step) is not int or step != int(checkpoint.name[len(PREFIX) :]):
        return f"{STATE_FILE} says step {step!r}"
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        return f"{STATE_FILE}'s log_history is not a list of records"
    other = [f"{k} {state.get(k)!r}, here {v!r}" for k, v in expected.items() if state.get(k) != v]
    if other:
        return f"it was saved by a run with other settings ({'; '.join(other)})"
    return None


def differences(before: dict, now: dict, prefix: str = "") -> list[str]:
    """Each setting that differs, by its dotted name (`grpo.learning_rate`), not the whole
    dictionary it sits in: for a checkpoint's run here, for run.json's in grpo.run_dir."""
    before = before if isinstance(before, dict) else {}  # a hand-edited run.json
    lines = []
    for key in sorted(set(before) | set(now), key=str):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            lines.append(f"{prefix}{key}: {old!r} there, {new!r} here")
    return lines


def _settings_problem(checkpoint: Path, settings: Mapping[str, object] | None) -> str | None:
    """Why the run that saved `checkpoint` is not this one, or None. A checkpoint without
    the file (saved before it existed) is judged by trainer_state.json alone."""
    path = checkpoint / SETTINGS_FILE
    if settings is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return f"{SETTINGS_FILE} is unreadable"
    other = differences(saved, json.loads(json.dumps(settings)))
    if other:
        return f"it was saved by a run with other settings ({'; '.join(other[:3])})"
    return None


def _config_problem(checkpoint: Path) -> str | None:
    """A config.json that is there must be a JSON object (the Trainer reads it on resume)."""
    try:
        config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        return "config.json is unreadable"
    return None if isinstance(config, dict) else "config.json is not a model's config"


def problem(
    checkpoint: Path,
    load: bool = False,
    lora: bool | None = None,
    expected: Mapping[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
) -> str | None:
    """Why `checkpoint` cannot be resumed from, or None if it is complete; `lora` (when
    known) says whether the run trains an adapter, `expected` holds trainer_state.json
    values and `settings` the training settings the run must share (a checkpoint copied in
    from another run). Never raises."""
    found = (
        _state_problem(checkpoint, expected or {})
        or _settings_problem(checkpoint, settings)
        or _config_problem(checkpoint)
        or _weights_problem(checkpoint, thorough=load, lora=lora)
    )
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
    folder: Path,
    load: bool = False,
    report: Callable[[str], None] | None = None,
    lora: bool | None = None,
    expected: Mapping[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
) -> Path | None:
    """The newest complete checkpoint in `folder`; each newer one skipped is reported."""
    for checkpoint in steps(folder):
        why = problem(checkpoint, load, lora, expected, settings)
        if why is None:
            return checkpoint
        if report:
            report(f"Skipping {checkpoint.name}: {why}.")
    return None


def resume_point(
    folder: Path,
    load: bool = False,
    report: Callable[[str], None] | None = None,
    lora: bool | None = None,
    expected: Mapping[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
) -> Path:
    """The checkpoint `--resume` continues from; NoCheckpoint naming every checkpoint
    skipped and why, or saying that none was saved."""
    skipped: list[str] = []

    def note(line: str) -> None:
        skipped.append(line.removeprefix("Skipping ").rstrip("."))
        if report:
            report(line)

    found = newest_complete(folder, load, note, lora, expected, settings)
    if found is not None:
        return found
    if not skipped:
        raise NoCheckpoint(
            f"--resume: {folder} holds no checkpoint: the run stopped before its first save "
            "(see --save-steps); start afresh with --overwrite"
        )
    raise NoCheckpoint(f"--resume: no complete checkpoint in {folder} (" + "; ".join(skipped) + ")")


def training_finished(checkpoint: Path) -> bool:
    """True if `checkpoint` (a complete one) was saved at the last step of its training: a
    resume from it has nothing left to train (the Trainer would run one step past the end)."""
    state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    max_steps = state.get("max_steps")
    return type(max_steps) is int and 0 < max_steps <= state["global_step"]


def export_model(checkpoint: Path, target: Path) -> Path:
    """The model of `checkpoint` written into `target` as `save_model` writes it (every file
    but the training state, over what is there): the final model of a finished training."""
    shutil.copytree(
        checkpoint, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*TRAINING_STATE)
    )
    return target
