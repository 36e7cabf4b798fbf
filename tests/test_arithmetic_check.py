"""The written-step checker: what counts as a wrong step, and what it must leave alone."""

import time
from fractions import Fraction

import pytest

from grpo.arithmetic_check import evaluate, steps, wrong_steps


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("2 + 3 = 4", ["2 + 3 = 4"]),
        ("2 + 3 = 5", []),
        ("16 - 3 - 4 = 9", []),  # a chain is one step, not "3 - 4 = 9"
        ("16 - 3 - 4 = 10", ["16 - 3 - 4 = 10"]),
        ("2 + 3 * 4 = 14", []),  # Python's precedence
        ("2 + 3 * 4 = 20", ["2 + 3 * 4 = 20"]),
        ("3 - 5 = -2", []),
        ("-1 - 3 = -4", []),
        ("-1 - 3 = 4", ["-1 - 3 = 4"]),
        ("12 / 4 = 3.0", []),
        ("1 / 3 = 0.33", ["1 / 3 = 0.33"]),  # exact, not rounded
        ("1,000 + 250 = 1,250", []),
        ("6 ÷ 2 = 3, 2 × 3 = 5", ["2 × 3 = 5"]),
        ("2 * 3 = 6 = 7", ["2 * 3 = 7"]),  # each claim of a chain of "="
        ("She sells 9 * 2 = 18 dollars.", []),
        ("3 - 1 = 3\n3 - 2 = 1", ["3 - 1 = 3"]),  # right answer, wrong first step
    ],
)
def test_wrong_steps(text, wrong):
    assert wrong_steps(text) == wrong


@pytest.mark.parametrize(
    "text",
    [
        "x = 5",
        "The answer is 18.",
        "5 / 0 = 1",
        "",
        "<answer>\n18\n</answer>",
        "12 = 12",
        "7 dogs = 3",
    ],
)
def test_what_is_not_a_checkable_step_is_skipped(text):
    assert steps(text) == []


def test_a_step_does_not_start_inside_a_number_or_an_expression():
    # "23 + 4 = 27" holds "3 + 4 = 27"; "1 + 2 + 3 = 6" holds "2 + 3 = 6": neither is a step.
    assert wrong_steps("23 + 4 = 27") == []
    assert [step.text for step in steps("1 + 2 + 3 = 6")] == ["1 + 2 + 3 = 6"]


def test_evaluate_is_exact_and_refuses_division_by_zero():
    assert evaluate("1 / 3 + 1 / 6") == Fraction(1, 2)
    assert evaluate("4 / 0") is None


def test_it_stays_fast_on_long_adversarial_text():
    text = "1 + " * 20_000 + "1 = 3 " + "9" * 100_000 + " = =" * 10_000
    started = time.perf_counter()
    steps(text)
    assert time.perf_counter() - started < 2.0
