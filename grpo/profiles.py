"""What a run trains on, with which GRPO settings, and how it is evaluated: one dataclass.

Standard library only, so the command lines can check arguments and print a plan before
torch, transformers and TRL are imported.

* ``real``: Qwen2.5-0.5B-Instruct on all of GSM8K with the seed tutorial's hyper-parameters,
  mapped onto the pinned TRL (see `REAL_GRPO`): one epoch, about a day on a T4;
* ``learner``: the same model and settings for 250 steps with a fixed 250-question GSM8K
  test sample, about an hour on one 24 GB GPU (see `LEARNER` for the estimate);
* ``tiny``: the embedded demo model on the toy task, a few CPU minutes, so a learner
  without a GPU (and CI) can watch rewards and accuracy rise.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class EvalSettings:
    """Greedy evaluation of one dataset: how many questions, how long an answer, batch size."""

    dataset: str  # "gsm8k" or "toy"
    size: int | None  # None: the whole test split
    max_new_tokens: int
    batch_size: int
    also_scored_at: tuple[int, ...] = ()  # shorter budgets, scored from the same completions


# Up to 512 new tokens, as the seed generated, and also scored at the 200 that training
# allows: Qwen's untrained answers often need more than 200 tokens, so part of a "gain" at
# 200 can be the model learning to be brief rather than to be right.
GSM8K_EVAL = EvalSettings(
    "gsm8k", size=None, max_new_tokens=512, batch_size=64, also_scored_at=(200,)
)
TOY_EVAL = EvalSettings("toy", size=200, max_new_tokens=48, batch_size=100)
EVAL_SETTINGS = {settings.dataset: settings for settings in (GSM8K_EVAL, TOY_EVAL)}


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a real run and the offline demonstration."""

    name: str
    dataset: str  # "gsm8k" or "toy": the training prompts
    train_size: int | None  # None: the whole training split
    grpo: MappingProxyType  # GRPOConfig keyword arguments
    evaluation: EvalSettings

    def with_grpo(self, **changes: Any) -> dict:
        """The profile's GRPOConfig arguments with `changes` applied (a fresh dict)."""
        return {**self.grpo, **changes}


# The seed tutorial's GRPO settings, translated to the pinned TRL:
# * `per_device_train_batch_size` counts completions, not prompts: the seed's 16 already
#   equals `num_generations`, so one micro-batch is one prompt's group of 16, and 4
#   accumulation steps make 64 completions (4 prompts) per optimiser step.
# * `max_prompt_length` and `vllm_device` no longer exist: prompts are kept short in
#   `data.py` (no few-shot examples), and vLLM runs inside the training process.
# * `beta` now defaults to 0 (no reference model); the seed's TRL used 0.04, as does the
#   DeepSeekMath paper, and so do we.
# * `loss_type` now defaults to "dapo"; we keep the original "grpo" objective that the
#   tutorial derives (per-sequence mean over tokens, then mean over the group).
REAL_GRPO = MappingProxyType(
    dict(
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
        # The seed's TRL sampled at 0.9 (TRL now defaults to 1.0): slightly sharper samples,
        # fewer incoherent completions from a 0.5B model, still diverse within a group of 16.
        temperature=0.9,
        # The seed's TRL sampled through transformers' default top_k of 50; TRL 1.16 turns
        # top-k off (0). We keep the seed's 50: it cuts the long tail of junk tokens that a
        # 0.5B model's 151,936-entry vocabulary puts at temperature 0.9.
        top_k=50,
        # The objective the tutorial derives (DeepSeekMath, and the seed's TRL): the k3 KL
        # estimate on its own. TRL 1.16 defaults to multiplying it by the importance ratio,
        # which leaves its value unchanged on-policy but adds k3 * grad(log pi) to the gradient.
        use_bias_correction_kl=False,
        # Always explicit: TRL's GRPOConfig defaults it to True. On for the 0.5B model: it
        # keeps one layer's activations instead of 24 (see grpo.plan for the arithmetic).
        gradient_checkpointing=True,
        # A checkpoint of the 0.5B model is about 6 GB (fp32 weights + AdamW state); the
        # Trainer writes the new one before deleting the oldest, so 2 kept means 3 on disk.
        save_total_limit=2,
    )
)

# The warm-started tiny model: larger steps, short answers, few steps, and no gradient
# checkpointing (a 4-layer model has no activations worth recomputing).
TINY_GRPO = MappingProxyType(
    dict(
        REAL_GRPO,
        learning_rate=2e-4,
        per_device_train_batch_size=32,
        gradient_accumulation_steps=1,
        num_generations=8,
        max_completion_length=48,
        num_train_epochs=1,
        max_steps=80,
        max_grad_norm=1.0,
        temperature=1.0,  # the tiny model's learning tests were measured at TRL's default
        top_k=0,  # likewise TRL's default (off): the tiny vocabulary has no long tail
        gradient_checkpointing=False,
    )
)

# GRPO visibly working on the real model in about an hour on one 24 GB GPU: the real
# settings for 250 optimiser steps (1,000 prompts, 16,000 completions) instead of an epoch
# (1,868 steps), with the cosine schedule and warm-up fitted to those 250 steps.
# Estimate, not a measurement: 250 steps x 12 s (grpo.plan.SECONDS_PER_STEP["bf16"], for a
# bf16 card) = 50 min, plus two evaluations of 250 questions and loading, a few minutes.
# benchmarks/bench_gpu_real.py measures the seconds per step on the card at hand.
LEARNER_GRPO = MappingProxyType(dict(REAL_GRPO, max_steps=250, save_steps=50))
# A fixed sample: the first 250 questions of GSM8K's test split, before and after.
GSM8K_SAMPLE_EVAL = EvalSettings(
    "gsm8k", size=250, max_new_tokens=512, batch_size=64, also_scored_at=(200,)
)

REAL = Profile("real", dataset="gsm8k", train_size=None, grpo=REAL_GRPO, evaluation=GSM8K_EVAL)
LEARNER = Profile(
    "learner", dataset="gsm8k", train_size=1000, grpo=LEARNER_GRPO, evaluation=GSM8K_SAMPLE_EVAL
)
TINY = Profile("tiny", dataset="toy", train_size=2000, grpo=TINY_GRPO, evaluation=TOY_EVAL)
PROFILES = {profile.name: profile for profile in (REAL, LEARNER, TINY)}
# Profiles that train Qwen2.5-0.5B-Instruct: asking for one never falls back to the tiny model.
REAL_MODEL_PROFILES = ("real", "learner")
