"""GRPO training setup shared by notebook 05 and `train_grpo.py`: config, data, trainer.

The profiles themselves (hyper-parameters, data sizes, evaluation settings) are plain data
in `grpo.profiles`; this module turns one into a `GRPOConfig`, datasets and a trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from data import load_gsm8k
from grpo.model_names import requested_name
from grpo.models import describe, resolve_model, say_loaded
from grpo.profiles import PROFILES, Profile
from grpo.progress import use_compact_progress
from grpo.run_config import RunConfig, choose_model_and_profile, detect_hardware, grpo_settings
from offline_demo import warm_start
from offline_demo.toy_task import toy_splits
from rewards import REWARD_FUNCS


def make_config(profile: Profile, output_dir: str | Path, **overrides) -> GRPOConfig:
    """A `GRPOConfig` for `profile` on this machine (see `grpo.run_config.grpo_settings`),
    with `overrides` applied: for notebooks and tests; the command line uses `grpo_config`.

    `bf16=True` is autocast only: the model's own weights stay float32 (see `grpo.models`).
    """
    settings = grpo_settings(profile, Path(output_dir), detect_hardware())
    return GRPOConfig(**{**settings, **overrides})


def grpo_config(run: RunConfig) -> GRPOConfig:
    """The GRPOConfig of a resolved run: exactly the keywords run.json records."""
    return GRPOConfig(**run.grpo)


def lora_config(settings: Mapping[str, Any] | None):
    """peft's LoraConfig for a run's LoRA settings (None: full fine-tuning)."""
    if settings is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        target_modules=list(settings["targets"]),
        task_type="CAUSAL_LM",
    )


def make_trainer(
    model,
    tokenizer,
    train_dataset: Dataset,
    config: GRPOConfig,
    peft_config=None,
    reward_funcs=REWARD_FUNCS,
) -> GRPOTrainer:
    """`GRPOTrainer` with the tutorial's five rewards (or `reward_funcs`), summed with
    equal weights."""
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=list(reward_funcs),
        args=config,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if trainer.ref_model is not None:  # TRL loads it itself, from the policy's folder
        reference = trainer.ref_model
        folder = describe(Path(reference.config.name_or_path))
        say_loaded(folder, reference.device, reference.dtype, "reference model, for the KL term")
    use_compact_progress(trainer)  # a bar and short lines, not the raw metric dictionaries
    return trainer


def select_policy(model: str | None = None, profile: str = "auto") -> tuple[Path, Profile]:
    """The model to train and its profile, by the command line's rule (grpo.run_config):
    without a CUDA GPU the offline demo unless the real model is asked for; with one the
    learner profile. Asking for a real-model profile never falls back to the tiny model."""
    recipe = None if profile == "auto" else PROFILES[profile]
    name, chosen, _ = choose_model_and_profile(requested_name(model), recipe, detect_hardware())
    return resolve_model(name, require_real=chosen.dataset == "gsm8k"), chosen


def load_datasets(
    profile: Profile, train_size: int | None = None, eval_size: int | None = None, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Training prompts and held-out evaluation questions for `profile`."""
    train_size = train_size or profile.train_size
    eval_size = eval_size or profile.evaluation.size
    if profile.dataset == "toy":
        return toy_splits(train_size, eval_size, seed)
    # GSM8K runs train the real model: the full data set or an error, never the excerpt.
    return (
        load_gsm8k("train", limit=train_size, allow_excerpt=False),
        load_gsm8k("test", limit=eval_size, allow_excerpt=False),
    )


def eval_overlap_with_training(profile: Profile, train_set: Dataset, eval_set: Dataset) -> int:
    """Evaluation questions that training has seen; an honest evaluation reports 0.

    The toy task also counts the warm start's data and same-arithmetic rewordings; GSM8K
    counts questions that appear word for word in the training rows.
    """
    if profile.dataset == "toy":
        return warm_start.eval_overlap_with_training(eval_set["question"], train_set["question"])
    return len(set(eval_set["question"]) & set(train_set["question"]))
