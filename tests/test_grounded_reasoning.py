"""The opt-in stricter reward: reasoning must show a calculation that reaches the answer."""

import pytest

from rewards import REWARD_FUNCS, grounded_reasoning_reward_func, reasoning_block, shows_work


def layout(reasoning: str, answer: str) -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (layout("9 * 2 = 18", "18"), True),
        (layout("16 - 3 - 4 = 9\n9 * 2 = 18", "18"), True),
        (layout("1,000 * 2 = 2,000", "2000"), True),
        (layout("7 - 5 = 2", "-2"), False),  # the answer is not reached in the reasoning
        (layout("", "18"), False),  # the hollow reasoning of notebook 04
        (layout("The answer is 18.", "18"), False),  # announced, not worked out
        (layout("9 * 2 = 18", "eighteen"), False),  # not a number
        ("18", False),
        ("<reasoning>\n9 * 2 = 18\n<answer>\n18\n</answer>", False),  # unclosed reasoning
        ("", False),
    ],
)
def test_shows_work(text, expected):
    assert shows_work(text) is expected


def test_reasoning_block_is_the_first_closed_block():
    assert reasoning_block("x<reasoning>a</reasoning><reasoning>b</reasoning>") == "a"
    assert reasoning_block("no tags") == ""


def test_reward_values_and_malformed_input():
    completions = [
        [{"role": "assistant", "content": layout("9 * 2 = 18", "18")}],
        [{"role": "assistant", "content": layout("", "18")}],
        None,
        [],
        42,
    ]
    assert grounded_reasoning_reward_func(None, completions) == [0.5, 0.0, 0.0, 0.0, 0.0]


def test_it_is_opt_in():
    assert grounded_reasoning_reward_func not in REWARD_FUNCS


def test_linear_time_on_adversarial_text():
    text = "<reasoning>" + "1 " * 50_000 + "</reasoning><answer>1</answer>"
    assert grounded_reasoning_reward_func(None, [text]) == [0.0]
