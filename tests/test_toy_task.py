"""Tests for offline_demo/toy_task.py: signatures, the train/eval split and the overlap count.

The evaluation set is honest only if no computation in it was trained on, under any name or
item: these tests check the split itself, and that the count which metrics.json reports
finds a deliberately planted overlap.
"""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from grpo.profiles import TINY
from offline_demo import toy_task
from offline_demo.toy_task import overlap, question_signature, split_of, split_problems

ROOT = Path(__file__).resolve().parents[1]
TOM = "Tom has 3 apples. Tom gets 5 more. How many apples does Tom have now?"
MIA = "Mia has 3 cards. Mia gets 5 more. How many cards does Mia have now?"  # same sum
LEO = "Leo has 3 pens. Leo gets 5 more and then gives away 2. How many pens does Leo have now?"


def many_problems(count: int = 20_000) -> list[toy_task.ToyProblem]:
    return toy_task.make_problems(count, seed=99)


def test_signature_is_the_computation_without_the_words():
    assert question_signature(TOM) == question_signature(MIA) == "3+5"
    assert question_signature(LEO) == "3+5-2"
    assert question_signature("Janet's ducks lay 16 eggs per day.") is None


def test_signature_reads_back_from_every_question():
    for problem in many_problems(5000):
        assert question_signature(problem.question) == problem.signature


def test_about_one_signature_in_eight_is_held_out():
    signatures = {problem.signature for problem in many_problems()}
    held_out = {s for s in signatures if split_of(s) == "eval"}
    assert len(signatures) > 1500  # nearly all 1,863 possible ones
    assert 0.09 < len(held_out) / len(signatures) < 0.16
    assert any(s.count("+") + s.count("-") == 1 for s in held_out)  # one-step problems too


def test_the_split_is_the_same_in_every_process():
    """A fixed hash, not Python's salted one: another process with another hash seed puts
    every signature on the same side."""
    signatures = sorted({problem.signature for problem in many_problems(3000)})
    code = (
        "import sys; from offline_demo.toy_task import split_of; "
        "print(' '.join(split_of(s) for s in sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code, *signatures],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    assert other == [split_of(s) for s in signatures]


@pytest.mark.parametrize("split", ["train", "eval"])
def test_split_problems_stay_on_their_side(split):
    problems = split_problems(500, seed=3, split=split)
    assert len(problems) == 500
    assert {split_of(p.signature) for p in problems} == {split}
    assert problems == split_problems(500, seed=3, split=split)  # reproducible


def test_distinct_asks_for_distinct_questions():
    problems = split_problems(300, seed=4, split="eval", distinct=True)
    assert len({p.question for p in problems}) == 300


def test_default_splits_never_share_a_computation():
    train, evaluation = toy_task.toy_splits(TINY.train_size, TINY.evaluation.size, seed=0)

    assert (len(train), len(evaluation)) == (TINY.train_size, TINY.evaluation.size)
    assert len(set(evaluation["question"])) == len(evaluation)
    assert overlap(evaluation["question"], train["question"]) == 0
    assert {split_of(question_signature(q)) for q in train["question"]} == {"train"}
    assert {split_of(question_signature(q)) for q in evaluation["question"]} == {"eval"}


def test_overlap_counts_text_and_signature_matches():
    assert overlap([TOM], [TOM]) == 1  # word for word
    assert overlap([TOM], [MIA]) == 1  # the same sum under another name and item
    assert overlap([TOM], [LEO]) == 0  # a longer computation is a different one
    assert overlap([TOM, MIA, LEO], [MIA]) == 2
    assert overlap(["What is 2 + 3?"], ["What is 2 + 3?", TOM]) == 1  # text without signature
    assert overlap(["What is 2 + 3?"], ["What is 4 + 1?"]) == 0
    assert overlap([], [TOM]) == 0


def test_overlap_finds_training_problems_planted_in_an_evaluation_set():
    train, evaluation = toy_task.toy_splits(200, 100, seed=7)
    rng = random.Random(0)
    planted = rng.sample(list(train["question"]), 10)
    # Renamed copies: the same computations under other names, which text matching misses.
    renamed = [q.replace(q.split()[0], "Xavier") for q in rng.sample(list(train["question"]), 5)]

    questions = [*evaluation["question"], *planted, *renamed]

    assert overlap(questions, train["question"]) == 15


def test_the_signature_enumeration_is_exactly_what_problems_draw():
    """max_distinct counts from `signatures()`: the bound is exact only if that is the very
    set make_problem draws from (200,000 draws reach all 1,863 and nothing else)."""
    rng = random.Random(3)
    drawn = {toy_task.make_problem(rng).signature for _ in range(200_000)}
    assert drawn == set(toy_task.signatures())


def test_max_distinct_counts_the_questions_of_each_split():
    eval_signatures = [s for s in toy_task.signatures() if split_of(s) == "eval"]
    per_signature = len(toy_task.NAMES) * len(toy_task.ITEMS)  # one question per name and item
    assert toy_task.max_distinct("eval") == len(eval_signatures) * per_signature
    total = toy_task.max_distinct("eval") + toy_task.max_distinct("train")
    assert total == len(set(toy_task.signatures())) * per_signature


def test_more_distinct_questions_than_exist_is_refused_at_once():
    """It used to draw for ever: 20,000 distinct held-out questions do not exist."""
    too_many = toy_task.max_distinct("eval") + 1
    with pytest.raises(ValueError, match=f"holds {too_many - 1:,} distinct questions"):
        split_problems(too_many, seed=0, split="eval", distinct=True)
    with pytest.raises(ValueError):
        toy_task.held_out_dataset(20_000, seed=0)
