"""A synthetic arithmetic word-problem task in the tutorial's exact format.

The embedded tiny model cannot learn GSM8K on a CPU in minutes, but it can learn one- and
two-step problems with small integers ("Tom has 3 apples. He buys 5 more. ..."). The
problems use the same system prompt, chat messages and `<reasoning>`/`<answer>` format as
the GSM8K pipeline, so the rewards, trainer and evaluation code are exactly the same.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass

from datasets import Dataset

from data import build_prompt

NAMES = ("Tom", "Mia", "Sam", "Lily", "Ben", "Emma", "Leo", "Zoe")
ITEMS = ("apples", "books", "coins", "cards", "pens", "shells", "stickers", "marbles")


@dataclass(frozen=True)
class ToyProblem:
    question: str
    answer: str
    reasoning: str  # one "a + b = c" line per step

    def solution(self) -> str:
        """The completion a careful solver writes: reasoning first, then the answer."""
        return f"<reasoning>\n{self.reasoning}\n</reasoning>\n<answer>\n{self.answer}\n</answer>"


def _step(rng: random.Random, total: int) -> tuple[str, str, int]:
    """One change to the running total: (clause, reasoning line, new total)."""
    if total > 1 and rng.random() < 0.5:
        amount = rng.randint(1, min(9, total - 1))
        return f"gives away {amount}", f"{total} - {amount} = {total - amount}", total - amount
    amount = rng.randint(1, 9)
    return f"gets {amount} more", f"{total} + {amount} = {total + amount}", total + amount


def make_problem(rng: random.Random) -> ToyProblem:
    """A one- or two-step problem whose answer is a small non-negative integer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start = rng.randint(1, 9)
    clauses, lines, total = [], [], start
    for _ in range(rng.choice((1, 2))):
        clause, line, total = _step(rng, total)
        clauses.append(clause)
        lines.append(line)
    question = (
        f"{name} has {start} {item}. {name} {' and then '.join(clauses)}. "
        f"How many {item} does {name} have now?"
    )
    return ToyProblem(question=question, answer=str(total), reasoning="\n".join(lines))


def make_problems(count: int, seed: int) -> list[ToyProblem]:
    """`count` problems from a seeded generator: the same seed gives the same problems."""
    rng = random.Random(seed)
    return [make_problem(rng) for _ in range(count)]


def unseen_problems(count: int, seed: int, seen: Collection[str]) -> list[ToyProblem]:
    """`count` distinct problems whose questions are not in `seen`: a true held-out set."""
    rng = random.Random(seed)
    questions = set(seen)
    problems: list[ToyProblem] = []
    while len(problems) < count:
        problem = make_problem(rng)
        if problem.question not in questions:
            questions.add(problem.question)
            problems.append(problem)
    return problems


def as_dataset(problems: list[ToyProblem]) -> Dataset:
    """The same columns as `data.load_gsm8k`: question, answer, prompt."""
    return Dataset.from_dict(
        {
            "question": [p.question for p in problems],
            "answer": [p.answer for p in problems],
            "prompt": [build_prompt(p.question) for p in problems],
        }
    )


def toy_dataset(count: int, seed: int) -> Dataset:
    """`count` seeded problems (repeats possible, like any sample from the task)."""
    return as_dataset(make_problems(count, seed))


def held_out_dataset(count: int, seed: int, train: Dataset) -> Dataset:
    """`count` distinct problems, none of which appears in `train`."""
    return as_dataset(unseen_problems(count, seed, train["question"]))


def toy_splits(train_size: int, eval_size: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The demo's training prompts and its held-out evaluation problems, drawn from `seed`.

    `train_grpo.py` and `evaluate_model.py --dataset toy` both call this, so the same seed
    gives the same two sets everywhere.
    """
    train = toy_dataset(train_size, seed=seed + 1)
    return train, held_out_dataset(eval_size, seed=seed + 10_000, train=train)
