"""GRPO training setup shared by notebook 05 and `train_grpo.py`: configs, data, trainer.

Two profiles, one code path:

* ``real``: Qwen2.5-0.5B-Instruct on GSM8K with the seed tutorial's hyper-parameters,
  mapped onto the pinned TRL (see `real_config_kwargs`);
* ``tiny``: the warm-started tiny model on the toy task, a few CPU minutes, so a learner
  without a GPU (and CI) can watch rewards and accuracy rise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from data import load_gsm8k
from models import gpu_supports_bf16, resolve_model, tiny_model_path
from rewards import REWARD_FUNCS
from toy_task import held_out_dataset, toy_dataset
from warm_start import warm_start_dir, warm_start_path


@dataclass(frozen=True)
class Profile:
    """What differs between a real run and the offline demonstration."""

    name: str
    train_size: int | None  # None: the whole training split
    eval_size: int | None
    max_new_tokens: int  # for evaluation; GRPO uses max_completion_length
    eval_batch_size: int


REAL = Profile("real", train_size=None, eval_size=None, max_new_tokens=200, eval_batch_size=64)
TINY = Profile("tiny", train_size=2000, eval_size=200, max_new_tokens=48, eval_batch_size=100)


def real_config_kwargs() -> dict:
    """The seed tutorial's GRPO settings, translated to the pinned TRL.

    * `per_device_train_batch_size` now counts completions, not prompts: the seed's
      1 prompt x 16 generations x 4 accumulation steps becomes 16 x 4 here, the same
      64 completions (4 prompts) per optimiser step.
    * `max_prompt_length` and `vllm_device` no longer exist: prompts are kept short in
      `data.py` (no few-shot examples), and vLLM runs inside the training process.
    * `beta` now defaults to 0 (no reference model); the seed's TRL used 0.04, as does
      the DeepSeekMath paper, and so do we.
    * `loss_type` now defaults to "dapo"; we keep the original "grpo" objective that the
      tutorial derives (per-sequence mean over tokens, then mean over the group).
    """
    return dict(
        learning_rate=5e-6,
        adam_beta1=0.9,
        adam_beta2=0.99,
        weight_decay=0.1,
        warmup_steps=0.1,  # a float < 1 is a ratio (warmup_ratio is gone in transformers 5)
        lr_scheduler_type="cosine",
        logging_steps=1,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=4,
        num_generations=16,
        max_completion_length=200,
        num_train_epochs=1,
        save_steps=100,
        max_grad_norm=0.1,
        beta=0.04,
        loss_type="grpo",
    )


def tiny_config_kwargs() -> dict:
    """Settings for the warm-started tiny model: larger steps, short answers, few steps."""
    return dict(
        learning_rate=2e-4,
        adam_beta1=0.9,
        adam_beta2=0.99,
        weight_decay=0.1,
        warmup_steps=0.1,  # a float < 1 is a ratio (warmup_ratio is gone in transformers 5)
        lr_scheduler_type="cosine",
        logging_steps=1,
        per_device_train_batch_size=32,
        gradient_accumulation_steps=1,
        num_generations=8,
        max_completion_length=48,
        max_steps=80,
        save_steps=100,
        max_grad_norm=1.0,
        beta=0.04,
        loss_type="grpo",
    )


def report_to() -> list[str]:
    """TensorBoard always (local files, no account); wandb only when the user opts in.

    Opting in means setting `WANDB_API_KEY` (or having run `wandb login`) *and*
    `GRPO_USE_WANDB=1`; the key itself never appears in code or notebooks.
    """
    targets = ["tensorboard"]
    if os.environ.get("GRPO_USE_WANDB") == "1":
        targets.append("wandb")
    return targets


def make_config(profile: Profile, output_dir: str | Path, **overrides) -> GRPOConfig:
    """A `GRPOConfig` for `profile`, with the hardware-dependent settings filled in."""
    on_gpu = torch.cuda.is_available()
    kwargs = real_config_kwargs() if profile.name == "real" else tiny_config_kwargs()
    kwargs.update(
        output_dir=str(output_dir),
        bf16=gpu_supports_bf16(),
        use_cpu=not on_gpu,
        report_to=report_to(),
        save_total_limit=2,
        seed=0,
        disable_tqdm=False,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def make_trainer(
    model, tokenizer, train_dataset: Dataset, config: GRPOConfig, peft_config=None
) -> GRPOTrainer:
    """`GRPOTrainer` with the tutorial's five rewards, summed with equal weights."""
    return GRPOTrainer(
        model=model,
        reward_funcs=REWARD_FUNCS,
        args=config,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def select_policy(model: str | None = None, profile: str = "auto") -> tuple[Path, Profile]:
    """The model to train and its profile.

    The tiny model is replaced by its warm start: GRPO cannot learn from a random policy
    whose every completion scores zero (see notebook 05).
    """
    path = resolve_model(model)
    is_tiny = path == tiny_model_path()
    if is_tiny and not warm_start_dir().exists() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError(
            "The tiny model's warm start is not built yet, and every process of a multi-process "
            "launch would train its own. Build it once with `python warm_start.py`, then launch."
        )
    if profile == "tiny" or (profile == "auto" and is_tiny):
        return (warm_start_path() if is_tiny else path), TINY
    return path, REAL


def load_datasets(
    profile: Profile, train_size: int | None = None, eval_size: int | None = None, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Training prompts and held-out evaluation questions for `profile`."""
    train_size = train_size or profile.train_size
    eval_size = eval_size or profile.eval_size
    if profile.name == "tiny":
        train = toy_dataset(train_size, seed=seed + 1)
        return train, held_out_dataset(eval_size, seed=seed + 10_000, train=train)
    return load_gsm8k("train", limit=train_size), load_gsm8k("test", limit=eval_size)
