"""GRPO training setup shared by notebook 05 and `train_grpo.py`: config, data, trainer.

The profiles themselves (hyper-parameters, data sizes, evaluation settings) are plain data
in `grpo.profiles`; this module turns one into a `GRPOConfig`, datasets and a trainer.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

import netcheck
from data import load_gsm8k
from grpo.models import gpu_supports_bf16, is_embedded, resolve_model
from grpo.profiles import PROFILES, REAL, REAL_MODEL_PROFILES, TINY, Profile
from grpo.progress import use_compact_progress
from offline_demo import warm_start
from offline_demo.toy_task import toy_splits
from rewards import REWARD_FUNCS


def report_to() -> list[str]:
    """TensorBoard always (local files, no account); wandb only when the user opts in.

    Opting in means setting `WANDB_API_KEY` (or having run `wandb login`) *and*
    `GRPO_USE_WANDB=1`; the key itself never appears in code or notebooks.
    """
    targets = ["tensorboard"]
    if os.environ.get("GRPO_USE_WANDB") == "1":
        netcheck.wandb_offline_fallback()  # no network: log offline, not a 100 s hang
        targets.append("wandb")
    return targets


def make_config(profile: Profile, output_dir: str | Path, **overrides) -> GRPOConfig:
    """A `GRPOConfig` for `profile`, with the hardware-dependent settings filled in.

    `bf16=True` is autocast only: the model's own weights stay float32 (see `grpo.models`).
    """
    kwargs = profile.with_grpo(
        output_dir=str(output_dir),
        bf16=gpu_supports_bf16(),
        use_cpu=not torch.cuda.is_available(),
        report_to=report_to(),
        save_total_limit=2,
        seed=0,
        disable_tqdm=False,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


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
    use_compact_progress(trainer)  # a bar and short lines, not the raw metric dictionaries
    return trainer


def select_policy(model: str | None = None, profile: str = "auto") -> tuple[Path, Profile]:
    """The model to train and its profile.

    Asking for a real-model profile (real, learner) makes the automatic model choice strict:
    it fails instead of quietly training the tiny model on GSM8K. The embedded models get
    the toy profile.
    """
    path = resolve_model(model, require_real=profile in REAL_MODEL_PROFILES)
    if profile == "auto":
        return path, TINY if is_embedded(path) else REAL
    return path, PROFILES[profile]


def load_datasets(
    profile: Profile, train_size: int | None = None, eval_size: int | None = None, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Training prompts and held-out evaluation questions for `profile`."""
    train_size = train_size or profile.train_size
    eval_size = eval_size or profile.evaluation.size
    if profile.dataset == "toy":
        return toy_splits(train_size, eval_size, seed)
    return load_gsm8k("train", limit=train_size), load_gsm8k("test", limit=eval_size)


def eval_overlap_with_training(profile: Profile, train_set: Dataset, eval_set: Dataset) -> int:
    """Evaluation questions that training has seen; an honest evaluation reports 0.

    The toy task also counts the warm start's data and same-arithmetic rewordings; GSM8K
    counts questions that appear word for word in the training rows.
    """
    if profile.dataset == "toy":
        return warm_start.eval_overlap_with_training(eval_set["question"], train_set["question"])
    return len(set(eval_set["question"]) & set(train_set["question"]))
