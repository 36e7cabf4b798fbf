"""Recipes: the YAML files in configs/ that say what a run trains on, with which GRPO
settings, and how it is evaluated. The command line and notebook 05 read the same files.

* ``configs/real.yaml``: Qwen2.5-0.5B-Instruct on all of GSM8K with the seed tutorial's
  hyper-parameters on the pinned TRL: one epoch, about a day on a T4;
* ``configs/learner.yaml``: the same for 250 steps with a fixed 250-question test sample,
  about an hour on one 24 GB GPU; the default on a CUDA GPU;
* ``configs/tiny.yaml``: the embedded demo model on the toy task, a few CPU minutes; the
  default without one.

A recipe may start from another (`extends: learner.yaml`) and may set the command's own
flags (`lora: true`). Files are read defensively: no YAML aliases, bounded size and depth,
no duplicate keys. Standard library and PyYAML only, so a mistake is answered before torch
and TRL load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PROFILE_NAMES = ("tiny", "learner", "real")
DATASETS = ("gsm8k", "toy")
# What a recipe says besides GRPOConfig fields and run flags: the data and the evaluation.
RECIPE_KEYS = frozenset(
    {"extends", "dataset", "train_size", "eval_size", "eval_max_new_tokens",
     "eval_also_scored_at", "eval_batch_size"}
)  # fmt: skip
# Keys that control this invocation or describe the machine, not the run: never taken from
# a file, so that a recipe cannot delete or continue a run by itself.
COMMAND_ONLY = frozenset(
    {"output_dir", "overwrite", "resume", "dry_run", "debug", "config", "help_grpo", "profile",
     "gpu_memory_gb"}
)  # fmt: skip
MAX_RECIPE_BYTES = 64 * 1024
MAX_DEPTH = 8  # YAML nesting; a recipe is flat, with at most a list or a small dict per key
MAX_EXTENDS = 8


class RecipeError(ValueError):
    """A recipe file that cannot be used: one line saying which file and why."""


@dataclass(frozen=True)
class EvalSettings:
    """Greedy evaluation of one dataset: how many questions, how long an answer, batch size."""

    dataset: str  # "gsm8k" or "toy"
    size: int | None  # None: the whole test split
    max_new_tokens: int
    batch_size: int
    also_scored_at: tuple[int, ...] = ()  # shorter budgets, scored from the same completions


@dataclass(frozen=True)
class Profile:
    """A recipe, read: the data, the GRPOConfig keywords, the evaluation, the run flags."""

    name: str  # the profile it builds on (tiny, learner, real), else the file's name
    dataset: str  # "gsm8k" or "toy": the training prompts
    train_size: int | None  # None: the whole training split
    grpo: MappingProxyType  # GRPOConfig keyword arguments, as YAML typed them
    evaluation: EvalSettings
    path: Path | None = None
    run_flags: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def with_grpo(self, **changes: Any) -> dict:
        """The recipe's GRPOConfig arguments with `changes` applied (a fresh dict)."""
        return {**self.grpo, **changes}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases (a 342-byte alias bomb expands without end), with a
    nesting limit, and refusing a key given twice (YAML would keep the last silently)."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "nested too deeply", mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """The `name: value` settings of one YAML file, keys spelled with `_`; RecipeError."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError:
        raise RecipeError(f"no recipe file at {path}") from None
    except OSError as error:
        raise RecipeError(f"{path}: unreadable ({error.strerror or error})") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: larger than {MAX_RECIPE_BYTES // 1024} KB, not a recipe")
    try:
        settings = yaml.load(raw.decode("utf-8"), Loader=_StrictLoader)  # noqa: S506 (strict safe)
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise RecipeError(f"{path}: {problem}{where}") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
        raise RecipeError(f"{path}: expected 'name: value' lines, one per setting")
    named = {key.replace("-", "_"): value for key, value in settings.items()}
    if len(named) < len(settings):
        raise RecipeError(f"{path}: a key is given twice (once with '-', once with '_')")
    for key, value in named.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise RecipeError(f"{path}: {key} must be a finite number, got {value}")
    return named


def _extended(path: Path, parent: str) -> Path:
    """The file an `extends:` names: next to the recipe, else in configs/ (a profile)."""
    for candidate in (path.parent / parent, CONFIGS / parent, CONFIGS / f"{parent}.yaml"):
        if candidate.is_file():
            return candidate
    raise RecipeError(f"{path}: extends {parent!r}, which is neither next to it nor in configs/")


def _chain(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The recipe files from the root to `path`, following `extends:`, each read once."""
    chain = [(path, read_yaml(path))]
    while True:
        first, settings = chain[0]
        parent = settings.get("extends")
        if parent is None:
            return chain
        if not isinstance(parent, str) or len(chain) > MAX_EXTENDS:
            raise RecipeError(f"{first}: extends takes one recipe file name")
        found = _extended(first, parent)
        if found.resolve() in {p.resolve() for p, _ in chain}:
            raise RecipeError(f"{first}: extends {parent!r}, which extends it back")
        chain.insert(0, (found, read_yaml(found)))


def _size(path: Path, key: str, value: Any, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RecipeError(f"{path}: {key} must be a whole number >= {minimum} (or null)")
    return value


def load_recipe(path: Path, run_flags: frozenset[str] = frozenset()) -> Profile:
    """The recipe at `path` (and those it extends), merged: later files win. Keys must be
    recipe keys, `run_flags` (the command's own flags) or GRPOConfig fields (which TRL's
    parser types and checks when the run is resolved)."""
    chain = _chain(Path(path))
    merged: dict[str, Any] = {}
    for file, settings in chain:
        refused = sorted(COMMAND_ONLY & set(settings))
        if refused:
            hint = " (a recipe starts from another with `extends: learner.yaml`)"
            raise RecipeError(
                f"{file}: {', '.join(refused)} is a command-line choice, not a recipe key"
                + (hint if "profile" in refused else "")
            )
        merged.update(settings)
    merged.pop("extends", None)
    if merged.get("dataset") not in DATASETS:
        raise RecipeError(
            f"{path}: dataset must be one of {', '.join(DATASETS)} "
            "(or start from a profile: extends: learner.yaml)"
        )
    scored_at = merged.get("eval_also_scored_at") or []
    if not isinstance(scored_at, list):
        raise RecipeError(f"{path}: eval_also_scored_at must be a list of token counts")
    evaluation = EvalSettings(
        merged["dataset"],
        size=_size(path, "eval_size", merged.get("eval_size")),
        max_new_tokens=_size(path, "eval_max_new_tokens", merged.get("eval_max_new_tokens", 512)),
        batch_size=_size(path, "eval_batch_size", merged.get("eval_batch_size", 64)),
        also_scored_at=tuple(_size(path, "eval_also_scored_at", n) for n in scored_at),
    )
    names = [f.stem for f, _ in chain if f.resolve().parent == CONFIGS]
    profiles = [n for n in names if n in PROFILE_NAMES]
    own = {k: v for k, v in merged.items() if k in run_flags}
    grpo = {k: v for k, v in merged.items() if k not in RECIPE_KEYS and k not in own}
    return Profile(
        name=profiles[-1] if profiles else Path(path).stem,
        dataset=merged["dataset"],
        train_size=_size(path, "train_size", merged.get("train_size")),
        grpo=MappingProxyType(grpo),
        evaluation=evaluation,
        path=Path(path),
        run_flags=MappingProxyType(own),
    )


REAL, LEARNER, TINY = (
    load_recipe(CONFIGS / f"{name}.yaml") for name in ("real", "learner", "tiny")
)
PROFILES = {profile.name: profile for profile in (TINY, LEARNER, REAL)}
# LoRA's defaults, for `--lora` and the planner alike: rank, scale and learning rate.
LORA_FLAGS = frozenset({"lora", "lora_r", "lora_alpha", "lora_target_modules"})
LORA = load_recipe(CONFIGS / "learner_lora.yaml", LORA_FLAGS)
# Evaluation by dataset, for evaluate_model.py: the real recipe's for GSM8K, the demo's for toy.
EVAL_SETTINGS = {"gsm8k": REAL.evaluation, "toy": TINY.evaluation}
