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

Both teachers draw only from the toy task's training split, so no evaluation problem's
computation is ever trained on. The result ships in `assets/tiny_qwen2_warm/` with the
`recipe.json` that made it (3 CPU minutes saved on every fresh machine); when the code's
recipe no longer matches that file, the warm start is rebuilt into the cache instead.
`python -m offline_demo.warm_start --rebuild` regenerates the shipped copy.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import random
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from data import build_prompt
from offline_demo.cache import build_once, cache_root, rebuild
from offline_demo.tiny_model import TINY_BUILD_VERSION, tiny_random_path
from offline_demo.toy_task import ToyProblem, overlap, split_problems

HABIT_REASONING_SHARE = 0.3  # how often the sloppy teacher still writes out its reasoning
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny_qwen2_warm"
RECIPE_FILE = "recipe.json"


@dataclass(frozen=True)
class Stage:
    """One supervised pass: its teacher data and its optimiser settings."""

    count: int  # teacher examples, drawn from the toy task's training split
    data_seed: int
    reasoning_share: float  # the share of full solutions; the rest are blurted answers
    epochs: int
    learning_rate: float
    schedule: str
    warmup_steps: int
    batch_size: int = 32


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the warm start's weights, recorded next to them."""

    version: str
    base: str  # the random-weight model it starts from
    seed: int
    solve: Stage
    habit: Stage


RECIPE = Recipe(
    version="v3",  # v3: teachers draw from the training split only
    base=f"tiny-qwen2-random-{TINY_BUILD_VERSION}",
    seed=0,
    solve=Stage(4000, 1, 1.0, epochs=3, learning_rate=3e-3, schedule="cosine", warmup_steps=10),
    # Small and constant: shift the habit, keep the arithmetic.
    habit=Stage(640, 2, HABIT_REASONING_SHARE, 1, 3e-4, schedule="constant", warmup_steps=0),
)


def blurted_answer(problem: ToyProblem) -> str:
    """The teacher's shortcut: answer with the last number mentioned in the question."""
    last_number = re.findall(r"\d+", problem.question)[-1]
    return f"<answer>\n{last_number}\n</answer>"


def teacher_rows(stage: Stage) -> list[tuple[str, str]]:
    """(question, completion) pairs: a full solution in `reasoning_share` of them, a
    blurted answer in the rest."""
    rng = random.Random(stage.data_seed)
    rows = []
    for problem in split_problems(stage.count, stage.data_seed, "train"):
        reasons = rng.random() < stage.reasoning_share
        rows.append((problem.question, problem.solution() if reasons else blurted_answer(problem)))
    return rows


def teacher_dataset(stage: Stage) -> Dataset:
    """The stage's teacher rows as prompt/completion chat messages for `SFTTrainer`."""
    rows = teacher_rows(stage)
    return Dataset.from_dict(
        {
            "prompt": [build_prompt(question) for question, _ in rows],
            "completion": [[{"role": "assistant", "content": text}] for _, text in rows],
        }
    )


def recipe_record(recipe: Recipe) -> dict:
    """The recipe as `recipe.json` stores it, with a hash of both stages' teacher data as
    the trainer sees it (so a change to the toy task or the system prompt shows up even
    when no number in the recipe changed)."""
    teacher_data = json.dumps(
        [
            [[build_prompt(question), completion] for question, completion in teacher_rows(stage)]
            for stage in (recipe.solve, recipe.habit)
        ]
    )
    return {
        **dataclasses.asdict(recipe),
        "teacher_data_sha256": hashlib.sha256(teacher_data.encode("utf-8")).hexdigest(),
    }


@functools.cache
def _current_record() -> dict:
    return recipe_record(RECIPE)


def shipped_record() -> dict | None:
    """The recipe the shipped weights were built with, or None without a readable file."""
    try:
        return json.loads((SHIPPED_DIR / RECIPE_FILE).read_text(encoding="utf-8"))["recipe"]
    except (OSError, ValueError, KeyError):
        return None


def supervised_pass(base: Path, stage: Stage, output_dir: Path, seed: int) -> None:
    """One `SFTTrainer` run from `base`, saved to `output_dir` (loss on the answer only)."""
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=stage.batch_size,
        num_train_epochs=stage.epochs,
        learning_rate=stage.learning_rate,
        lr_scheduler_type=stage.schedule,
        warmup_steps=stage.warmup_steps,
        logging_steps=25,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,  # TRL's default bf16 autocast is ~10x slower on a CPU
        seed=seed,
        max_length=256,
    )
    trainer = SFTTrainer(model=str(base), args=config, train_dataset=teacher_dataset(stage))
    trainer.train()
    trainer.save_model(str(output_dir))
    (output_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; not worth shipping


def train_warm_start(output_dir: Path) -> None:
    """Both supervised passes of RECIPE (about 3 minutes on a 2-core CPU), then `recipe.json`."""
    recipe = RECIPE
    solver_dir = output_dir / "solver"
    print("[warm start] 1/2: learning to solve the toy task (careful solutions) ...")
    supervised_pass(tiny_random_path(), recipe.solve, solver_dir, recipe.seed)
    print("[warm start] 2/2: picking up the blurting habit (sloppy teacher) ...")
    supervised_pass(solver_dir, recipe.habit, output_dir, recipe.seed)
    shutil.rmtree(solver_dir)
    record = {"recipe": recipe_record(recipe), "built_with": _library_versions()}
    (output_dir / RECIPE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _library_versions() -> dict[str, str]:
    """For the record only, not part of the recipe: other versions may round differently."""
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "trl")}


def warm_start_dir() -> Path:
    """Where the warm start of the current recipe is: the shipped copy when it matches,
    else its cache folder (which may not be built yet)."""
    if shipped_record() == _current_record():
        return SHIPPED_DIR
    digest = hashlib.sha256(json.dumps(_current_record(), sort_keys=True).encode("utf-8"))
    return cache_root() / f"tiny-qwen2-warm-{digest.hexdigest()[:12]}"  # one per recipe


def warm_start_path() -> Path:
    """The warm-started tiny model: the shipped copy, or built once into the cache."""
    folder = warm_start_dir()
    if folder == SHIPPED_DIR:
        return folder
    if not folder.exists():
        print(
            f"[warm start] {SHIPPED_DIR.name}/{RECIPE_FILE} does not match the current recipe: "
            f"training the warm start into {folder} (about 3 CPU minutes, once). "
            "`python -m offline_demo.warm_start --rebuild` updates the shipped copy."
        )
    return build_once(folder, train_warm_start)


def eval_overlap_with_training(eval_questions: Iterable[str], grpo_questions: Iterable[str]) -> int:
    """How many evaluation questions any training source has seen, word for word or as the
    same computation: the warm start's two teachers and the GRPO prompts. 0 is honest."""
    training = [
        question for stage in (RECIPE.solve, RECIPE.habit) for question, _ in teacher_rows(stage)
    ]
    return overlap(eval_questions, [*training, *grpo_questions])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print (or rebuild) the tiny model's warm start.")
    parser.add_argument(
        "--rebuild", action="store_true", help=f"retrain the shipped copy in {SHIPPED_DIR}"
    )
    args = parser.parse_args(argv)
    if args.rebuild:
        rebuild(SHIPPED_DIR, train_warm_start)
    print(warm_start_path())


if __name__ == "__main__":
    main()
