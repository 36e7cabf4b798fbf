"""A warm start for the tiny model: learn to solve the toy task, then pick up a bad habit.

GRPO learns only from differences inside a group of completions. A random-weight model
scores 0 on every reward, every group has zero spread, every advantage is 0, and nothing
is learned. So before GRPO the tiny model gets two short supervised passes:

1. *learn to solve*: imitate careful solutions (`<reasoning>` with the arithmetic, then
   `<answer>`), until it can do the arithmetic;
2. *pick up a habit*: imitate a sloppy teacher who usually skips the reasoning and blurts
   out the last number of the question, and only sometimes reasons.

The result mirrors a real instruct model before GRPO: the skill is there, but greedy
decoding follows the habit (no reasoning, mostly wrong), while sampling still produces the
reasoning path now and then. That variety inside each group is what GRPO amplifies.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

from datasets import Dataset

from data import build_prompt
from grpo.cache import build_once, cache_root
from offline_demo.tiny_model import tiny_random_path
from offline_demo.toy_task import ToyProblem, make_problems

WARM_START_VERSION = "v2"
HABIT_REASONING_SHARE = 0.3  # how often the sloppy teacher still writes out its reasoning


def blurted_answer(problem: ToyProblem) -> str:
    """The teacher's shortcut: answer with the last number mentioned in the question."""
    last_number = re.findall(r"\d+", problem.question)[-1]
    return f"<answer>\n{last_number}\n</answer>"


def teacher_dataset(count: int, seed: int, reasoning_share: float) -> Dataset:
    """Prompt/completion pairs for `SFTTrainer`: a full solution in `reasoning_share` of them,
    a blurted answer in the rest."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"prompt": [], "completion": []}
    for problem in make_problems(count, seed):
        reasons = rng.random() < reasoning_share
        text = problem.solution() if reasons else blurted_answer(problem)
        rows["prompt"].append(build_prompt(problem.question))
        rows["completion"].append([{"role": "assistant", "content": text}])
    return Dataset.from_dict(rows)


def supervised_pass(
    base: Path,
    dataset: Dataset,
    output_dir: Path,
    epochs: int,
    learning_rate: float,
    schedule: str,
    seed: int,
) -> None:
    """One `SFTTrainer` run from `base`, saved to `output_dir` (loss on the answer only)."""
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=32,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        lr_scheduler_type=schedule,
        warmup_steps=10 if schedule == "cosine" else 0,
        logging_steps=25,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,  # TRL's default bf16 autocast is ~10x slower on a CPU
        seed=seed,
        max_length=256,
    )
    trainer = SFTTrainer(model=str(base), args=config, train_dataset=dataset)
    trainer.train()
    trainer.save_model(str(output_dir))


def train_warm_start(output_dir: Path, seed: int = 0) -> None:
    """Both supervised passes, about 3 minutes on a 2-core CPU."""
    solver_dir = output_dir / "solver"
    print("[warm start] 1/2: learning to solve the toy task (careful solutions) ...")
    supervised_pass(
        tiny_random_path(),
        teacher_dataset(4000, seed=seed + 1, reasoning_share=1.0),
        solver_dir,
        epochs=3,
        learning_rate=3e-3,
        schedule="cosine",
        seed=seed,
    )
    print("[warm start] 2/2: picking up the blurting habit (sloppy teacher) ...")
    supervised_pass(
        solver_dir,
        teacher_dataset(640, seed=seed + 2, reasoning_share=HABIT_REASONING_SHARE),
        output_dir,
        epochs=1,
        learning_rate=3e-4,  # small and constant: shift the habit, keep the arithmetic
        schedule="constant",
        seed=seed,
    )
    shutil.rmtree(solver_dir)


def warm_start_dir() -> Path:
    """Where the warm start is cached (it may not be built yet)."""
    return cache_root() / f"tiny-qwen2-warm-{WARM_START_VERSION}"


def warm_start_path() -> Path:
    """The warm-started tiny model, trained once (a few CPU minutes) and cached on disk."""
    return build_once(warm_start_dir(), train_warm_start)


if __name__ == "__main__":  # `python -m offline_demo.warm_start`: build before a multi-GPU launch
    print(warm_start_path())
