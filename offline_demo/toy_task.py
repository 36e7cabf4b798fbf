"""A synthetic arithmetic word-problem task in the tutorial's exact format.

The embedded tiny model cannot learn GSM8K on a CPU in minutes, but it can learn one- and
two-step problems with small integers ("Tom has 3 apples. He gets 5 more. ..."). The
problems use the same system prompt, chat messages and `<reasoning>`/`<answer>` format as
the GSM8K pipeline, so the rewards, trainer and evaluation code are exactly the same.

An honest held-out set must not differ from training only in the name and the item: "Tom
has 3 apples and gets 5 more" and "Mia has 3 cards and gets 5 more" are the same sum. So
every problem has an arithmetic *signature*, its computation without the words ("3+5",
"7-5+2"), and a fixed hash of the signature puts one signature in `EVAL_BUCKETS` into the
evaluation split. Everything that trains the model (the warm start's teachers and the GRPO
prompts) draws from the training split only; the evaluation set draws from the other.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from data import build_prompt

if TYPE_CHECKING:  # `datasets` is imported where used: the command lines check sizes first
    from datasets import Dataset

NAMES = ("Tom", "Mia", "Sam", "Lily", "Ben", "Emma", "Leo", "Zoe")
ITEMS = ("apples", "books", "coins", "cards", "pens", "shells", "stickers", "marbles")
EVAL_BUCKETS = 8  # one arithmetic signature in 8 (240 of the 1,863) is kept for evaluation
MAX_AMOUNT, MAX_STEPS = 9, 2  # the numbers and steps `make_problem` draws

Split = Literal["train", "eval"]
_START = re.compile(r"\bhas (\d+) ")
_CHANGE = re.compile(r"\b(?:gets (\d+) more|gives away (\d+))")


@dataclass(frozen=True)
class ToyProblem:
    question: str
    answer: str
    reasoning: str  # one "a + b = c" line per step
    signature: str  # the computation without the words: "3+5", "7-5+2"

    def solution(self) -> str:
        """The completion a careful solver writes: reasoning first, then the answer."""
        return f"<reasoning>\n{self.reasoning}\n</reasoning>\n<answer>\n{self.answer}\n</answer>"


def _step(rng: random.Random, total: int) -> tuple[str, str, str, int]:
    """One change to the running total: (clause, reasoning line, signed amount, new total)."""
    if total > 1 and rng.random() < 0.5:
        amount = rng.randint(1, min(MAX_AMOUNT, total - 1))
        line = f"{total} - {amount} = {total - amount}"
        return f"gives away {amount}", line, f"-{amount}", total - amount
    amount = rng.randint(1, MAX_AMOUNT)
    return (
        f"gets {amount} more",
        f"{total} + {amount} = {total + amount}",
        f"+{amount}",
        total + amount,
    )


def make_problem(rng: random.Random) -> ToyProblem:
    """A one- or two-step problem whose answer is a small non-negative integer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start = rng.randint(1, MAX_AMOUNT)
    clauses, lines, signature, total = [], [], str(start), start
    for _ in range(rng.choice(range(1, MAX_STEPS + 1))):
        clause, line, change, total = _step(rng, total)
        clauses.append(clause)
        lines.append(line)
        signature += change
    question = (
        f"{name} has {start} {item}. {name} {' and then '.join(clauses)}. "
        f"How many {item} does {name} have now?"
    )
    return ToyProblem(
        question=question, answer=str(total), reasoning="\n".join(lines), signature=signature
    )


def question_signature(question: str) -> str | None:
    """The signature of a toy question read back from its text; None for any other text."""
    start = _START.search(question)
    changes = _CHANGE.findall(question)
    if start is None or not changes:
        return None
    return start.group(1) + "".join(f"+{gets}" if gets else f"-{gives}" for gets, gives in changes)


def split_of(signature: str) -> Split:
    """ "eval" for one signature in EVAL_BUCKETS, fixed by a hash (the same on every machine)."""
    digest = hashlib.sha256(signature.encode("ascii")).digest()
    return "eval" if digest[0] % EVAL_BUCKETS == 0 else "train"


def make_problems(count: int, seed: int) -> list[ToyProblem]:
    """`count` problems from a seeded generator, from both splits: for illustrations and the
    tiny tokenizer's corpus, never for training a model."""
    rng = random.Random(seed)
    return [make_problem(rng) for _ in range(count)]


def _continuations(signature: str, total: int, steps: int) -> Iterator[str]:
    """Every signature `make_problem` can reach from `signature` in 1..`steps` more steps."""
    if steps == 0:
        return
    changes = [f"+{a}" for a in range(1, MAX_AMOUNT + 1)]
    changes += [f"-{a}" for a in range(1, min(MAX_AMOUNT, total - 1) + 1)] if total > 1 else []
    for change in changes:
        yield signature + change
        yield from _continuations(signature + change, total + int(change), steps - 1)


def signatures() -> Iterator[str]:
    """Every signature `make_problem` can draw (1,863 of them)."""
    for start in range(1, MAX_AMOUNT + 1):
        yield from _continuations(str(start), start, MAX_STEPS)


@functools.cache
def max_distinct(split: Split) -> int:
    """How many distinct questions `split` holds: its signatures x names x items (15,360
    for "eval"). No seed can give more, so larger requests are refused up front."""
    in_split = sum(split_of(signature) == split for signature in signatures())
    return in_split * len(NAMES) * len(ITEMS)


def split_problems(count: int, seed: int, split: Split, distinct: bool = False) -> list[ToyProblem]:
    """`count` seeded problems whose signatures belong to `split` (distinct questions if asked).

    Problems of the other split are drawn and skipped, so a seed gives the same problems
    every time, and no training problem shares its computation with an evaluation problem.
    ValueError if `distinct` asks for more questions than the split holds (`max_distinct`).
    """
    if distinct and count > max_distinct(split):
        raise ValueError(
            f"the toy task's {split} split holds {max_distinct(split):,} distinct questions; "
            f"{count:,} were asked for"
        )
    rng = random.Random(seed)
    problems: list[ToyProblem] = []
    questions: set[str] = set()
    while len(problems) < count:
        problem = make_problem(rng)
        if split_of(problem.signature) != split or (distinct and problem.question in questions):
            continue
        questions.add(problem.question)
        problems.append(problem)
    return problems


def overlap(eval_questions: Iterable[str], training_questions: Iterable[str]) -> int:
    """How many evaluation questions training has seen: word for word, or the same
    computation under another name or item (the same signature)."""
    seen_text = set(training_questions)
    seen_signatures = {question_signature(question) for question in seen_text} - {None}
    return sum(
        question in seen_text or question_signature(question) in seen_signatures
        for question in eval_questions
    )


def as_dataset(problems: list[ToyProblem]) -> Dataset:
    """The same columns as `data.load_gsm8k`: question, answer, prompt. The description
    names the source, as GSM8K's does, for metrics.json (grpo.run_record.data_source)."""
    from datasets import Dataset, DatasetInfo

    return Dataset.from_dict(
        {
            "question": [p.question for p in problems],
            "answer": [p.answer for p in problems],
            "prompt": [build_prompt(p.question) for p in problems],
        },
        info=DatasetInfo(description="toy task (offline_demo)"),
    )


def toy_dataset(count: int, seed: int) -> Dataset:
    """`count` seeded training problems (repeats possible, like any sample from the task)."""
    return as_dataset(split_problems(count, seed, "train"))


def held_out_dataset(count: int, seed: int) -> Dataset:
    """`count` distinct evaluation problems: no computation in them is ever trained on."""
    return as_dataset(split_problems(count, seed, "eval", distinct=True))


def toy_splits(train_size: int, eval_size: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The demo's training prompts and its held-out evaluation problems, drawn from `seed`.

    `train_grpo.py` and `evaluate_model.py --dataset toy` both call this, so the same seed
    gives the same two sets everywhere.
    """
    return toy_dataset(train_size, seed=seed + 1), held_out_dataset(eval_size, seed=seed + 10_000)
