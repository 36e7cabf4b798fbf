"""A warm start for the tiny model: a short supervised pass that imitates a sloppy teacher.

GRPO learns only from differences inside a group of completions. A random-weight model
scores 0 on every reward, every group has zero spread, every advantage is 0, and nothing
is learned. So before GRPO the tiny model imitates a teacher who *sometimes* reasons in the
tutorial's format (and is then right) but usually blurts out the last number of the question
inside an `<answer>` tag. Greedy decoding picks the teacher's habit, blurting; sampling still
produces the reasoning path now and then, which is exactly the signal GRPO needs.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from datasets import Dataset

from models import build_once, cache_root, tiny_model_path
from toy_task import ToyProblem, make_problems

WARM_START_VERSION = "v1"
REASONING_SHARE = 0.3  # how often the sloppy teacher writes out its reasoning


def blurted_answer(problem: ToyProblem) -> str:
    """The teacher's shortcut: answer with the last number mentioned in the question."""
    last_number = re.findall(r"\d+", problem.question)[-1]
    return f"<answer>\n{last_number}\n</answer>"


def sloppy_teacher_dataset(count: int, seed: int) -> Dataset:
    """Prompt/completion pairs for `SFTTrainer`, reasoning in `REASONING_SHARE` of them."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"prompt": [], "completion": []}
    for problem in make_problems(count, seed):
        reasons = rng.random() < REASONING_SHARE
        text = problem.solution() if reasons else blurted_answer(problem)
        rows["prompt"].append(
            [
                {"role": "system", "content": _system_prompt()},
                {"role": "user", "content": problem.question},
            ]
        )
        rows["completion"].append([{"role": "assistant", "content": text}])
    return Dataset.from_dict(rows)


def _system_prompt() -> str:
    from data import SYSTEM_PROMPT

    return SYSTEM_PROMPT


def train_warm_start(
    output_dir: Path, examples: int = 4000, epochs: int = 2, seed: int = 0
) -> None:
    """Supervised fine-tuning of the tiny model on the sloppy teacher's answers."""
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=32,
        num_train_epochs=epochs,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        logging_steps=20,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,  # TRL defaults to bf16 autocast, which is ~20x slower on a CPU
        seed=seed,
        max_length=256,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=str(tiny_model_path()),
        args=config,
        train_dataset=sloppy_teacher_dataset(examples, seed=seed + 1),
    )
    trainer.train()
    trainer.save_model(str(output_dir))


def warm_start_path() -> Path:
    """The warm-started tiny model, trained once (a few CPU minutes) and cached on disk."""
    target = cache_root() / f"tiny-qwen2-warm-{WARM_START_VERSION}"
    return build_once(target, train_warm_start)
