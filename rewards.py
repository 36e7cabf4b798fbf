"""Reward functions for GRPO training on GSM8K.

Each function follows TRL's reward signature
``f(prompts, completions, answer=None, **kwargs) -> list[float]`` and returns
one float per completion. Together they teach the model two things:

* **Format** (small rewards, 0.5 at most each). ``xmlcount_reward_func`` gives
  partial credit for each expected tag, so a model that never gets the full
  format right still sees a gradient. ``soft_format_reward_func`` rewards a
  ``<reasoning>`` block followed by an ``<answer>`` block. ``strict_format_reward_func``
  rewards the exact line layout. ``int_reward_func`` rewards an answer that is
  a plain integer, which is what GSM8K gold answers look like.
* **Correctness** (large reward, 2.0). ``correctness_reward_func`` rewards the
  right number. It is the goal of training, so it alone is worth as much as all
  four format rewards together (0.5 each at most): formatting is a means to an
  answer that can be checked, and a model can never gain more from polishing the
  format than from getting the answer right.

Completions may be plain strings or chat messages (``[{"role": ..., "content": ...}]``).
Anything malformed (``None`` content, a non-string, an empty list) is read as
empty text, so a bad generation earns (nearly) nothing instead of crashing a
training run hours in.

One input is rejected loudly: a list of gold answers whose length differs from
the number of completions raises ``ValueError``. That is a programming error in
how the dataset was wired to the trainer, not a bad generation; it shows up on
the first training step, before any compute is spent, and silently scoring
against misaligned answers would train on wrong labels.

The module uses only the standard library. Tag checks use ``str`` methods and
regexes without nested quantifiers, so every function runs in time linear in
the completion length, even on adversarial text.
"""

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

FORMAT_REWARD = 0.5
CORRECTNESS_REWARD = 2.0
XML_TAG_REWARD = 0.125
TRAILING_CHAR_PENALTY = 0.001

# An integer literal: optional minus, then digits, optionally grouped by
# thousands commas with groups of exactly three digits ("1,234" but not "1,23").
_INTEGER_PATTERN = r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
_INTEGER = re.compile(_INTEGER_PATTERN)
_NUMBER = re.compile(_INTEGER_PATTERN + r"(?:\.[0-9]+)?")

# Soft format: the reasoning block, optional whitespace, then an opening
# <answer>. The closing </answer> is checked with str.find afterwards, which
# keeps the match linear: one regex spanning both blocks would retry the
# answer scan for every </reasoning> in the text.
_SOFT_FORMAT_HEAD = re.compile(r"\s*<reasoning>.*?</reasoning>\s*<answer>", re.DOTALL)

_STRICT_START = "<reasoning>\n"
_STRICT_SEPARATOR = "\n</reasoning>\n<answer>\n"
_STRICT_END = "\n</answer>"
_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")

_XML_TAGS = ("<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>")
_CLOSING_ANSWER = "</answer>"

RewardFunc = Callable[..., list[float]]


def completion_text(completion: object) -> str:
    """Return the text of a string or chat completion; malformed input gives ""."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[0], Mapping):
        content = completion[0].get("content")
        if isinstance(content, str):
            return content
    return ""


def extract_xml_answer(text: str) -> str:
    """Return the content of the last <answer> tag, or the whole text without one.

    The last tag wins because models sometimes restate the question's format
    in their reasoning before giving the real answer. An unclosed final tag
    still yields everything after it.
    """
    start = text.rfind("<answer>")
    if start == -1:
        return text.strip()
    content = text[start + len("<answer>") :]
    end = content.find("</answer>")
    if end != -1:
        content = content[:end]
    return content.strip()


def _parse_number(text: str) -> Decimal | None:
    """Read text like "$1,000.", "$ 1 000 ." or "-0.50" as an exact Decimal, else None.

    Models write numbers the way people do: spaces around the sign, the dollar and the
    final period are dropped, and a space between digits is a thousands separator, held to
    the same groups of three as a comma ("1 000" is 1000, "1 2" is not a number).
    Decimal avoids float surprises: "0.1" and "0.10" compare equal, exactly.
    """
    cleaned = ""
    for part in text.replace("$", "").split():
        if cleaned[-1:].isdigit() and part[:1].isdigit():
            cleaned += ","
        cleaned += part
    cleaned = cleaned.removesuffix(".")
    if _NUMBER.fullmatch(cleaned) is None:
        return None
    return Decimal(cleaned.replace(",", ""))


def _answers_match(predicted: str, gold: str) -> bool:
    """Compare as numbers when both sides are numbers, otherwise as stripped text. An empty
    gold answer matches nothing: it would reward an empty (or missing) answer."""
    if not gold.strip():
        return False
    predicted_number = _parse_number(predicted)
    gold_number = _parse_number(gold)
    if predicted_number is not None and gold_number is not None:
        return predicted_number == gold_number
    return predicted.strip() == gold.strip()


def _gold_answers(answer: Sequence[object] | None, count: int) -> list[object]:
    """Return one gold answer per completion; None everywhere when there are none."""
    if answer is None:
        warnings.warn(
            "correctness_reward_func received no `answer`: every completion scores 0. "
            "Does the training dataset have an `answer` column?",
            stacklevel=3,
        )
        return [None] * count
    if isinstance(answer, str):
        raise TypeError("answer must be a list with one gold answer per completion, not a str")
    golds = list(answer)
    if len(golds) != count:
        raise ValueError(
            f"got {len(golds)} gold answers for {count} completions; "
            "pass one answer per completion (TRL repeats dataset columns to match)"
        )
    return golds


def correctness_reward_func(
    prompts: Sequence[object],
    completions: Sequence[object],
    answer: Sequence[object] | None = None,
    **kwargs: object,
) -> list[float]:
    """Reward 2.0 when the extracted answer equals the gold answer, else 0.0 (also when the
    gold answer is missing or blank: a row without one teaches nothing)."""
    golds = _gold_answers(answer, len(completions))
    return [
        CORRECTNESS_REWARD
        if gold is not None
        and _answers_match(extract_xml_answer(completion_text(completion)), str(gold))
        else 0.0
        for completion, gold in zip(completions, golds, strict=True)
    ]


def int_reward_func(
    prompts: Sequence[object],
    completions: Sequence[object],
    answer: Sequence[object] | None = None,
    **kwargs: object,
) -> list[float]:
    """Reward 0.5 when the extracted answer is an integer literal like "72" or "-1,234"."""
    return [
        FORMAT_REWARD
        if _INTEGER.fullmatch(extract_xml_answer(completion_text(completion)))
        else 0.0
        for completion in completions
    ]


def _is_strict_format(text: str) -> bool:
    """True for exactly "<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>[\\n]"."""
    body = text.removesuffix("\n")
    if not (body.startswith(_STRICT_START) and body.endswith(_STRICT_END)):
        return False
    inner = body[len(_STRICT_START) : len(body) - len(_STRICT_END)]
    # Each tag exactly once: a second answer block or a stray closing tag is not "exact".
    return _STRICT_SEPARATOR in inner and all(body.count(tag) == 1 for tag in _TAGS)


def strict_format_reward_func(
    prompts: Sequence[object],
    completions: Sequence[object],
    answer: Sequence[object] | None = None,
    **kwargs: object,
) -> list[float]:
    """Reward 0.5 when the completion is exactly the reasoning/answer layout, nothing else."""
    return [
        FORMAT_REWARD if _is_strict_format(completion_text(completion)) else 0.0
        for completion in completions
    ]


def _is_soft_format(text: str) -> bool:
    """True when text starts with a <reasoning> block followed by an <answer> block."""
    head = _SOFT_FORMAT_HEAD.match(text)
    return head is not None and text.find("</answer>", head.end()) != -1


def soft_format_reward_func(
    prompts: Sequence[object],
    completions: Sequence[object],
    answer: Sequence[object] | None = None,
    **kwargs: object,
) -> list[float]:
    """Reward 0.5 for a reasoning block then an answer block, in any line layout.

    Text after </answer> is allowed here; xmlcount_reward_func penalises it.
    """
    return [
        FORMAT_REWARD if _is_soft_format(completion_text(completion)) else 0.0
        for completion in completions
    ]


def count_xml(text: str) -> float:
    """Score partial format progress: 0.125 per tag present exactly once, max 0.5.

    Each character after the last "</answer>" costs 0.001 (one newline right after
    the tag is free), which discourages rambling past the answer, whatever precedes
    the tag ("72</answer>zzzz" pays for "zzzz" too). Without "</answer>" there is no
    trailing penalty. The penalty is not clamped: the score is at most 0.5 and turns
    negative once trailing text outweighs the tag credit (more than 125 characters
    after a lone closing tag, say).
    """
    score = XML_TAG_REWARD * sum(text.count(tag) == 1 for tag in _XML_TAGS)
    closing = text.rfind(_CLOSING_ANSWER)
    if closing != -1:
        trailing = text[closing + len(_CLOSING_ANSWER) :].removeprefix("\n")
        score -= TRAILING_CHAR_PENALTY * len(trailing)
    return score


def xmlcount_reward_func(
    prompts: Sequence[object],
    completions: Sequence[object],
    answer: Sequence[object] | None = None,
    **kwargs: object,
) -> list[float]:
    """Reward each expected tag, minus a small penalty for text after the answer."""
    return [count_xml(completion_text(completion)) for completion in completions]


REWARD_FUNCS: list[RewardFunc] = [
    xmlcount_reward_func,
    soft_format_reward_func,
    strict_format_reward_func,
    int_reward_func,
    correctness_reward_func,
]


# --- Opt-in: a stricter reward against hollow reasoning ------------------------------------
# Not part of REWARD_FUNCS. The five rewards above pay the full 4.0 for
# "<reasoning>\n\n</reasoning>\n<answer>\n18\n</answer>": the tags are there, the answer is
# right, and nothing checks that any reasoning happened. Add this function to the list
# (`[*REWARD_FUNCS, grounded_reasoning_reward_func]`) to pay for reasoning that shows work.

_ARITHMETIC_STEP = re.compile(r"[0-9]\s*[-+*/×]\s*[0-9]")
_NUMBER_TOKEN = re.compile(r"-?[0-9][0-9,]*(?:\.[0-9]+)?")


def reasoning_block(text: str) -> str:
    """The text between the first <reasoning> and the next </reasoning>, else ""."""
    start = text.find("<reasoning>")
    if start == -1:
        return ""
    start += len("<reasoning>")
    end = text.find("</reasoning>", start)
    return text[start:end] if end != -1 else ""


def shows_work(text: str) -> bool:
    """True when the reasoning block holds an arithmetic step ("9 * 2") and the final
    answer, as a number, somewhere in it: the answer was worked out, not just announced."""
    reasoning = reasoning_block(text)
    if _ARITHMETIC_STEP.search(reasoning) is None:
        return False
    answer = _parse_number(extract_xml_answer(text))
    if answer is None:
        return False
    return any(
        _parse_number(token.rstrip(",")) == answer for token in _NUMBER_TOKEN.findall(reasoning)
    )


def grounded_reasoning_reward_func(
    prompts: Sequence[object],
    completions: Sequence[object],
    answer: Sequence[object] | None = None,
    **kwargs: object,
) -> list[float]:
    """Opt-in: reward 0.5 when the reasoning shows a calculation that reaches the answer.

    It does not check that the arithmetic is right or that the answer is correct; the
    correctness reward does the latter. It only makes an empty or decorative reasoning
    block earn less than one that works the answer out.
    """
    return [
        FORMAT_REWARD if shows_work(completion_text(completion)) else 0.0
        for completion in completions
    ]
