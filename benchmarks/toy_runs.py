"""One short GRPO run of the warm-started tiny model on the toy task, as a plain function.

Shared by the ablations in this folder (`ablation_loss_types.py`, `reward_hacking.py`):
every run starts from the same weights, trains on the same prompts with the same seed,
and differs only in the `GRPOConfig` overrides or the reward functions it is given.
Each run records the per-step training log and a greedy evaluation of the result.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from grpo import artifacts
from grpo.evaluation import evaluate
from grpo.models import load_policy
from grpo.profiles import TINY
from grpo.training import load_datasets, make_config, make_trainer
from rewards import REWARD_FUNCS, shows_work

# The training-log keys kept per step (TRL's names).
LOGGED = (
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "completions/mean_length",
    "kl",
    "entropy",
    "clip_ratio/region_mean",
)


def _round(value):
    return round(value, 5) if isinstance(value, float) else value


def train_toy(
    steps: int = 80, seed: int = 0, reward_funcs=None, label: str = "", **overrides
) -> dict:
    """Train the tiny warm start for `steps` GRPO steps and evaluate it greedily.

    `overrides` go to `GRPOConfig` on top of the tiny profile; `reward_funcs` replaces
    the five default rewards. Returns a JSON-ready dict.
    """
    import torch
    from transformers import set_seed

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    set_seed(seed)
    reward_funcs = list(reward_funcs or REWARD_FUNCS)
    train_set, eval_set = load_datasets(TINY, seed=seed)
    model, tokenizer, _ = load_policy("tiny", device="cpu", for_training=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        config = make_config(
            TINY,
            scratch,
            max_steps=steps,
            seed=seed,
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
            **overrides,
        )
        trainer = make_trainer(model, tokenizer, train_set, config, reward_funcs=reward_funcs)
        trainer.train()
    train_seconds = time.perf_counter() - started
    settings = TINY.evaluation
    result = evaluate(
        trainer.model,
        tokenizer,
        eval_set,
        settings.max_new_tokens,
        settings.batch_size,
        progress=False,
    )
    completions = [row["completion"] for row in result.rows]
    per_step = [
        {"step": entry["step"], **{key: _round(entry.get(key)) for key in LOGGED}}
        | {
            k: _round(v)
            for k, v in entry.items()
            if k.startswith("rewards/") and k.endswith("/mean")
        }
        for entry in trainer.state.log_history
        if "reward" in entry
    ]
    return {
        "label": label,
        "seed": seed,
        "steps": steps,
        "overrides": overrides,
        "reward_funcs": [f.__name__ for f in reward_funcs],
        "train_seconds": round(train_seconds, 1),
        "eval": {
            **{k: round(v, 4) for k, v in result.metrics.items()},
            "shows_work": round(sum(map(shows_work, completions)) / len(completions), 4),
        },
        "per_step": per_step,
    }


def run_grid(setups: dict[str, dict], seeds: list[int], steps: int) -> list[dict]:
    """Every setup under every seed; `setups` maps a label to `train_toy`'s keyword arguments."""
    runs = []
    for seed in seeds:
        for label, kwargs in setups.items():
            print(f"--- {label} seed={seed}", flush=True)
            run = train_toy(steps, seed, label=label, **kwargs)
            print(f"    {run['eval']} in {run['train_seconds']} s", flush=True)
            runs.append(run)
    return runs


def save_results(path: Path, command: str, runs: list[dict]) -> dict:
    """The runs with the command that made them and the library versions, as JSON."""
    import torch
    import transformers
    import trl

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }
    machine = f"{platform.machine()} {platform.processor() or 'CPU'}, {os.cpu_count()} cores"
    results = {"command": command, "machine": machine, "versions": versions, "runs": runs}
    artifacts.write_json(path, results)
    print(f"wrote {path}")
    return results
