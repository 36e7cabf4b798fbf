"""Tests for the GRPO reward functions in rewards.py."""

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import (
    REWARD_FUNCS,
    completion_text,
    correctness_reward_func,
    count_xml,
    extract_xml_answer,
    int_reward_func,
    soft_format_reward_func,
    strict_format_reward_func,
    xmlcount_reward_func,
)

WELL_FORMED = "<reasoning>\nStep one.\nStep two.\n</reasoning>\n<answer>\n72\n</answer>\n"


def as_chat(text: str) -> list[dict[str, str]]:
    """Wrap text the way TRL passes a conversational completion."""
    return [{"role": "assistant", "content": text}]


def score_one(reward_func, text: str, gold: object = None) -> float:
    """Score a single string completion against one gold answer."""
    (score,) = reward_func(prompts=["question"], completions=[text], answer=[gold])
    return score


# --- completion_text -------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("plain text", "plain text"),
        ("", ""),
        (as_chat("chat text"), "chat text"),
        ([{"role": "assistant", "content": "first"}, {"content": "second"}], "first"),
        (({"content": "tuple of messages"},), "tuple of messages"),
        ([{"role": "assistant", "content": None}], ""),
        ([{"role": "assistant", "content": 42}], ""),
        ([{"role": "assistant"}], ""),
        ([], ""),
        ([None], ""),
        (["a string, not a message"], ""),
        ({"content": "a bare message, not a list"}, ""),
        (None, ""),
        (42, ""),
        (b"bytes", ""),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


# --- extract_xml_answer ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>\n72\n</answer>", "72"),
        ("<reasoning>r</reasoning><answer> 72 </answer> trailing", "72"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),
        ("<answer>1</answer> then <answer>2", "2"),
        ("<answer>  unclosed  ", "unclosed"),
        ("<answer>", ""),
        ("<answer></answer>", ""),
        ("no tags at all  ", "no tags at all"),
        ("  72\n", "72"),
        ("", ""),
        ("</answer> 5 </answer>", "</answer> 5 </answer>"),
        ("<answer>3</answer></answer>", "3"),
    ],
)
def test_extract_xml_answer(text, expected):
    assert extract_xml_answer(text) == expected


# --- correctness_reward_func -----------------------------------------------


@pytest.mark.parametrize(
    ("predicted", "gold"),
    [
        ("72", "72"),
        ("72.0", "72"),
        ("$72", "72"),
        ("72.", "72"),
        (" 72 ", "72"),
        ("1,000", "1000"),
        ("1000", "1,000"),
        ("$1,000.00", "1000"),
        ("1 000", "1000"),
        ("$ 1,000 .", "1000"),
        ("$ 1 000 000", "1000000"),
        ("1\u202f000", "1000"),  # a narrow no-break space, as French typesetting writes it
        ("- 3", "-3"),
        ("1000", "1 000"),
        ("-3", "-3"),
        ("-$3", "-3"),
        ("0.50", "0.5"),
        ("0.1", "0.10"),
        ("Paris", "Paris"),
        ("  Paris ", "Paris"),
    ],
)
def test_correctness_rewards_equal_answers(predicted, gold):
    assert score_one(correctness_reward_func, f"<answer>\n{predicted}\n</answer>", gold) == 2.0


@pytest.mark.parametrize(
    ("predicted", "gold"),
    [
        ("71", "72"),
        ("-72", "72"),
        ("7.2", "72"),
        ("1,00", "100"),
        ("72 apples", "72"),
        ("seventy-two", "72"),
        ("", "72"),
        ("paris", "Paris"),
        ("72..", "72"),
        ("1 2", "12"),  # a space separates thousands, not any two digits
        ("10 00", "1000"),
        ("1000 000", "1000000"),
        ("7 2", "72"),
    ],
)
def test_correctness_rejects_different_answers(predicted, gold):
    assert score_one(correctness_reward_func, f"<answer>{predicted}</answer>", gold) == 0.0


def test_correctness_reads_the_whole_text_without_answer_tags():
    assert score_one(correctness_reward_func, "72", "72") == 2.0


def test_correctness_accepts_non_string_gold():
    assert score_one(correctness_reward_func, "<answer>72</answer>", 72) == 2.0


def test_correctness_gold_none_scores_zero():
    assert score_one(correctness_reward_func, "None", None) == 0.0


@pytest.mark.parametrize("gold", ["", " ", "\n"])
@pytest.mark.parametrize("completion", ["", " ", "<answer>\n\n</answer>", "<answer></answer>"])
def test_a_blank_gold_answer_rewards_nothing(gold, completion):
    """An empty gold answer would otherwise reward an empty answer (a user's own dataset
    may have such rows; GSM8K drops them)."""
    assert correctness_reward_func(None, [completion], answer=[gold]) == [0.0]


def test_correctness_without_answer_column_scores_zero():
    completions = ["<answer>72</answer>", "None", ""]
    assert correctness_reward_func(["q"] * 3, completions) == [0.0, 0.0, 0.0]


def test_correctness_pairs_each_completion_with_its_own_gold():
    completions = [as_chat("<answer>1</answer>"), "<answer>2</answer>", as_chat("<answer>3")]
    scores = correctness_reward_func(["q"] * 3, completions, answer=["1", "5", "3"])
    assert scores == [2.0, 0.0, 2.0]


def test_correctness_prints_nothing(capsys):
    correctness_reward_func(["q"], [WELL_FORMED], answer=["72"])
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("answer", [["72"], ["72", "72", "72"], []])
def test_correctness_rejects_mismatched_answer_count(answer):
    with pytest.raises(ValueError, match="gold answers for 2 completions"):
        correctness_reward_func(["q", "q"], [WELL_FORMED, WELL_FORMED], answer=answer)


def test_correctness_rejects_a_single_string_answer():
    with pytest.raises(TypeError, match="not a str"):
        correctness_reward_func(["q", "q"], [WELL_FORMED, WELL_FORMED], answer="72")


# --- int_reward_func -------------------------------------------------------


@pytest.mark.parametrize("value", ["72", "0", "-4", "1,234", "-1,234,567", "007"])
def test_int_rewards_integer_literals(value):
    assert score_one(int_reward_func, f"<answer>\n{value}\n</answer>") == 0.5


@pytest.mark.parametrize(
    "value", ["7.5", "72.0", "1,23", "1234,567", ",123", "1,", "$72", "+72", "seventy", "", "- 4"]
)
def test_int_rejects_everything_else(value):
    assert score_one(int_reward_func, f"<answer>\n{value}\n</answer>") == 0.0


# --- strict_format_reward_func ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        WELL_FORMED,
        WELL_FORMED.removesuffix("\n"),
        "<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>",
        "<reasoning>\n\n</reasoning>\n<answer>\n\n</answer>",
        "<reasoning>\nline 1\n\nline 3\n</reasoning>\n<answer>\n72\n</answer>\n",
    ],
)
def test_strict_format_accepts_exact_layout(text):
    assert score_one(strict_format_reward_func, text) == 0.5


@pytest.mark.parametrize(
    "text",
    [
        " " + WELL_FORMED,
        "Sure!\n" + WELL_FORMED,
        WELL_FORMED + "\n",
        WELL_FORMED + "bye",
        "<reasoning>r</reasoning>\n<answer>\n72\n</answer>",
        "<reasoning>\nr\n</reasoning><answer>\n72\n</answer>",
        "<reasoning>\nr\n</reasoning>\n\n<answer>\n72\n</answer>",
        "<reasoning>\nr\n</reasoning>\n<answer>72</answer>",
        "<reasoning>\nr\n</reasoning>\n<answer>\n72\n",
        "<reasoning>\n</answer>",
        "<answer>\n72\n</answer>",
        "",
    ],
)
def test_strict_format_rejects_anything_else(text):
    assert score_one(strict_format_reward_func, text) == 0.0


# --- soft_format_reward_func -----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        WELL_FORMED,
        "<reasoning>r</reasoning><answer>72</answer>",
        "  \n<reasoning>r</reasoning>\n\n  <answer>72</answer>",
        "<reasoning>a\nb</reasoning> <answer>\n7\n2\n</answer>",
        "<reasoning>r</reasoning><answer>72</answer> trailing text is fine",
        "<reasoning></reasoning><answer></answer>",
    ],
)
def test_soft_format_accepts_blocks_in_any_layout(text):
    assert score_one(soft_format_reward_func, text) == 0.5


@pytest.mark.parametrize(
    "text",
    [
        "Sure! <reasoning>r</reasoning><answer>72</answer>",
        "<reasoning>r</reasoning> so <answer>72</answer>",
        "<reasoning>r</reasoning><answer>72",
        "<reasoning>r<answer>72</answer>",
        "<answer>72</answer><reasoning>r</reasoning>",
        "<reasoning>r</reasoning></answer>",
        "<answer>72</answer>",
        "",
    ],
)
def test_soft_format_rejects_missing_or_misplaced_blocks(text):
    assert score_one(soft_format_reward_func, text) == 0.0


# --- count_xml / xmlcount_reward_func --------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (WELL_FORMED, 0.5),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>", 0.5),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\n", 0.5),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\nabc", 0.5 - 0.003),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>xyz", 0.5 - 0.003),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\n\n\n", 0.5 - 0.002),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>" + "x" * 200, 0.5 - 0.2),
        ("\n</answer>" + "x" * 1000, 0.125 - 1.0),
        # The trailing text counts whatever precedes the closing tag.
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72</answer> and then some", 0.375 - 0.014),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72</answer>zzzz", 0.375 - 0.004),
        ("<answer>72</answer>\nzz", 0.0 - 0.002),
        ("</answer>" + "z" * 300, 0.0 - 0.3),
        ("<reasoning>\n", 0.125),
        ("<reasoning>\n<reasoning>\n", 0.0),
        ("\n</answer>\n</answer>\nab", 0.0 - 0.002),
        ("no tags, long text " * 50, 0.0),
        ("", 0.0),
    ],
)
def test_count_xml(text, expected):
    assert count_xml(text) == pytest.approx(expected)


def test_count_xml_does_not_penalise_text_without_closing_answer_tag():
    """The widely copied original charged the whole text when the tag was missing."""
    assert count_xml("<reasoning>\n" + "long reasoning " * 100) == 0.125


def test_xmlcount_reward_func_scores_both_completion_forms():
    text = WELL_FORMED + "abc"
    scores = xmlcount_reward_func(["q", "q"], [text, as_chat(text)])
    assert scores == pytest.approx([0.497, 0.497])


# --- all reward functions --------------------------------------------------


def test_no_format_is_worth_more_than_the_right_answer():
    """The module's promise, on the five rewards GRPO sums: a wrong answer in the perfect
    format never out-earns the right answer given bare, so polishing the format can never
    pay better than getting the answer right."""

    def total(completion: str) -> float:
        return sum(f(["q"], [completion], answer=["7"])[0] for f in REWARD_FUNCS)

    polished_wrong = "<reasoning>\n3 + 5 = 8\n</reasoning>\n<answer>\n8\n</answer>\n"
    bare_right = "7"
    assert total(polished_wrong) <= total(bare_right)
    assert total(polished_wrong) > 0  # the format does pay: the bound is not met by zeros


@pytest.mark.parametrize("reward_func", REWARD_FUNCS)
def test_well_formed_correct_completion_gets_full_reward(reward_func):
    expected = 2.0 if reward_func is correctness_reward_func else 0.5
    for completion in (WELL_FORMED, as_chat(WELL_FORMED)):
        assert reward_func(["q"], [completion], answer=["72"]) == [expected]


@pytest.mark.parametrize("reward_func", REWARD_FUNCS)
def test_malformed_completions_score_as_empty_text(reward_func):
    malformed = [None, 42, [], [None], [{"content": None}], {"content": "x"}, b"<answer>"]
    scores = reward_func(["q"] * len(malformed), malformed, answer=["72"] * len(malformed))
    assert scores == [0.0] * len(malformed)


@pytest.mark.parametrize("reward_func", REWARD_FUNCS)
def test_no_completions_give_no_scores(reward_func):
    assert reward_func([], [], answer=[]) == []


@pytest.mark.parametrize("reward_func", REWARD_FUNCS)
def test_reward_funcs_ignore_extra_dataset_columns(reward_func):
    """TRL passes every dataset column and its state as keywords: they change no score."""
    texts = [WELL_FORMED, "72", "<answer>\n71\n</answer>"]
    plain = reward_func(["q"] * 3, texts, answer=["72"] * 3)
    extra = reward_func(["q"] * 3, texts, answer=["72"] * 3, question=["q"] * 3, trainer_state=None)
    assert extra == plain and any(plain)


# --- properties ------------------------------------------------------------

TAGS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>", "\n", " ", "72", "$", ",", "."]
TAGS += ["<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>"]
tag_laden_text = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=8)), max_size=30).map(
    "".join
)
# Completions in or close to the expected format, so that the format checks see
# exact matches and near misses, not only random text that never matches.
filler = st.one_of(st.text(max_size=20), tag_laden_text)
near_format_text = st.tuples(
    st.sampled_from(["", " ", "\n"]),
    st.sampled_from(["<reasoning>\n", "<reasoning>", ""]),
    filler,
    st.sampled_from(["\n</reasoning>\n", "</reasoning>", "\n</reasoning>", ""]),
    st.sampled_from(["", "\n", " x "]),
    st.sampled_from(["<answer>\n", "<answer>", "\n<answer>\n"]),
    filler,
    st.sampled_from(["\n</answer>", "</answer>", "\n</answer>\n", ""]),
    st.sampled_from(["", "\n", "\n\n", " tail"]),
).map("".join)
exact_format_text = st.tuples(
    st.just("<reasoning>\n"),
    filler,
    st.just("\n</reasoning>\n<answer>\n"),
    filler,
    st.just("\n</answer>"),
    st.sampled_from(["", "\n"]),
).map("".join)
any_text = st.one_of(st.text(), tag_laden_text, near_format_text, exact_format_text)
completion = st.one_of(
    any_text,
    any_text.map(as_chat),
    st.sampled_from([None, 0, [], [None], [{"content": None}], b"\x00\xff"]),
)
completion_batch = st.lists(completion, max_size=8)
fast = settings(max_examples=200, deadline=None)

ALLOWED_SCORES = {
    soft_format_reward_func: {0.0, 0.5},
    strict_format_reward_func: {0.0, 0.5},
    int_reward_func: {0.0, 0.5},
    correctness_reward_func: {0.0, 2.0},
}


@fast
@given(completions=completion_batch, gold=st.one_of(st.none(), any_text))
def test_reward_funcs_never_raise_and_return_one_allowed_score_each(completions, gold):
    answers = [gold] * len(completions)
    for reward_func in REWARD_FUNCS:
        scores = reward_func(["q"] * len(completions), completions, answer=answers)
        assert len(scores) == len(completions)
        assert all(isinstance(score, float) for score in scores)
        if reward_func is xmlcount_reward_func:
            assert all(math.isfinite(score) and score <= 0.5 for score in scores)
        else:
            assert set(scores) <= ALLOWED_SCORES[reward_func]


@fast
@given(text=any_text)
def test_count_xml_is_finite_and_at_most_half(text):
    score = count_xml(text)
    assert math.isfinite(score)
    assert score <= 0.5


@fast
@given(text=any_text)
def test_strict_format_implies_soft_format(text):
    if score_one(strict_format_reward_func, text) == 0.5:
        assert score_one(soft_format_reward_func, text) == 0.5


# One-regex definitions of the formats: easy to read, but they backtrack badly on
# long adversarial text (see benchmarks/bench_rewards.py). On short text they
# are the reference the linear-time checks in rewards.py must agree with.
REFERENCE_STRICT = re.compile(
    r"<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n?", re.DOTALL
)
REFERENCE_SOFT = re.compile(r"\s*<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)


@fast
@given(text=any_text)
def test_strict_format_agrees_with_reference_regex(text):
    tags_once = all(
        text.count(tag) == 1 for tag in ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
    )
    expected = 0.5 if REFERENCE_STRICT.fullmatch(text) and tags_once else 0.0
    assert score_one(strict_format_reward_func, text) == expected


@fast
@given(text=any_text)
def test_soft_format_agrees_with_reference_regex(text):
    expected = 0.5 if REFERENCE_SOFT.match(text) else 0.0
    assert score_one(soft_format_reward_func, text) == expected


@fast
@given(n=st.integers(min_value=-(10**12), max_value=10**12))
def test_correctness_ignores_number_formatting_on_either_side(n):
    for formatted in (f"{n}.0", f"${n:,}", f"{n}.", f"{n:,}", f" {n} "):
        assert score_one(correctness_reward_func, f"<answer>{formatted}</answer>", str(n)) == 2.0
        assert score_one(correctness_reward_func, f"<answer>{n}</answer>", formatted) == 2.0


@fast
@given(n=st.integers(min_value=-(10**12), max_value=10**12))
def test_int_reward_accepts_python_formatted_integers(n):
    assert score_one(int_reward_func, f"<answer>{n}</answer>") == 0.5
    assert score_one(int_reward_func, f"<answer>{n:,}</answer>") == 0.5


@pytest.mark.parametrize(
    "text",
    [
        "<reasoning>\nr\n</reasoning>\n<answer>\n1\n</answer>\n<answer>\n72\n</answer>",
        "<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\nThanks!\n</answer>",
        "<reasoning>\n<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>",
    ],
    ids=["second answer block", "stray closing tag", "repeated opening tag"],
)
def test_strict_format_rejects_repeated_tags(text):
    assert strict_format_reward_func(None, [text]) == [0.0]


def test_correctness_warns_when_the_answer_column_is_missing():
    with pytest.warns(UserWarning, match="no `answer`"):
        assert correctness_reward_func(None, ["<answer>\n72\n</answer>"]) == [0.0]
