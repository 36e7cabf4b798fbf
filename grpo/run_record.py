"""What metrics.json records about a run, so that a number can be traced to its setup.

Which model and data, how many rows, the precision the weights were really held in, the
decoding used for evaluation, the device, the library versions and the git commit: enough
to tell a real run from a silent fallback, and to reproduce it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "trl")
REPO = Path(__file__).resolve().parents[1]


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries whose behaviour the results depend on."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit(folder: Path = REPO) -> str | None:
    """The checked-out commit (with "-dirty" when files differ), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def data_source(dataset) -> str:
    """Where a dataset's rows came from, as its loader recorded in `dataset.info.description`."""
    return getattr(getattr(dataset, "info", None), "description", "") or "unknown"


def data_sources(train_set, eval_set) -> dict[str, str]:
    """The origin of each split: they may differ (one from the hub, the other its cache)."""
    return {"train": data_source(train_set), "eval": data_source(eval_set)}


def trainer_precision(trainer) -> dict[str, Any]:
    """The precision the trainer really used: the dtype(s) of its model's parameters, the
    autocast mode of its accelerator, and whether activations were recomputed."""
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in trainer.model.parameters()})
    return {
        "param_dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
        "mixed_precision": str(trainer.accelerator.mixed_precision),
        "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
    }


def run_metrics(
    *,
    model: str,
    model_source: str,
    profile: str,
    train_set,
    eval_set,
    precision: Mapping[str, Any],
    eval_generation: Mapping[str, Any],
    device: str,
) -> dict[str, Any]:
    """The setup part of metrics.json (results are added by the caller).

    `model_source` is where the model's folder came from (`grpo.models.origin`);
    `precision` comes from `trainer_precision`; `eval_generation` is the exact decoding of
    the before/after evaluation (grpo.evaluation.GREEDY_GENERATION).
    """
    return {
        "model": model,
        "model_source": model_source,
        "profile": profile,
        "data_source": data_source(train_set),
        "data_sources": data_sources(train_set, eval_set),
        "train_rows": len(train_set),
        "eval_rows": len(eval_set),
        **precision,
        "eval_generation": dict(eval_generation),
        "device": device,
        "versions": versions(),
        "git_commit": git_commit(),
    }
