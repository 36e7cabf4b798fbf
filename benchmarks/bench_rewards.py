"""Time the reward functions on adversarial completions.

A reward function runs on every completion of every training step, so one that
backtracks badly on odd text (a model stuck repeating "</reasoning>", say) can
stall training. This script builds 200 completions of 20,000 characters each,
made of the patterns most likely to trigger slow paths, and times each reward
function on the whole batch (best of 3).

Run from the repository root:

    python -m benchmarks.bench_rewards
"""

import random
import time
from collections.abc import Callable

from rewards import REWARD_FUNCS

COMPLETION_LENGTH = 20_000
COMPLETION_COUNT = 200
REPEATS = 3


def repeated(unit: str, prefix: str = "", suffix: str = "") -> str:
    """Fill a completion with copies of unit between prefix and suffix, at the target length."""
    copies = COMPLETION_LENGTH // len(unit) + 1
    return (prefix + unit * copies)[: COMPLETION_LENGTH - len(suffix)] + suffix


def random_tag_soup(seed: int) -> str:
    """Mix tags, whitespace, digits and non-ASCII junk in a reproducible random order."""
    pieces = [
        "<reasoning>",
        "</reasoning>",
        "<answer>",
        "</answer>",
        "\n",
        "  ",
        "1,234",
        "😀",
        "\x00",
    ]
    rng = random.Random(seed)
    text = "".join(rng.choice(pieces) for _ in range(COMPLETION_LENGTH))
    return text[:COMPLETION_LENGTH]


ADVERSARIAL_PATTERNS: dict[str, Callable[[int], str]] = {
    "closing tags, no <answer>": lambda _: repeated("</reasoning>\n</answer>\n"),
    "opening tags only": lambda _: repeated("<reasoning>\n<answer>\n"),
    "</reasoning> then spaces": lambda _: repeated("</reasoning>" + " " * 20, "<reasoning>"),
    "strict separators, no end": lambda _: repeated("\n</reasoning>\n<answer>\n", "<reasoning>\n"),
    "soft heads, no </answer>": lambda _: repeated("</reasoning>\n  <answer>", "<reasoning>"),
    "whitespace runs": lambda _: repeated(" \t" * 50 + "\n" * 50),
    "digit groups": lambda _: repeated("1,234,", "<answer>"),
    "long number": lambda _: repeated("9", "<answer>$", suffix="x"),
    "trailing text after answer": lambda _: repeated(
        "after the answer ", "<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\n"
    ),
    "random tag soup": random_tag_soup,
}


def adversarial_completions() -> list[list[dict[str, str]]]:
    """Build the batch as chat completions, the form TRL passes for chat models."""
    patterns = list(ADVERSARIAL_PATTERNS.values())
    texts = [patterns[i % len(patterns)](i) for i in range(COMPLETION_COUNT)]
    return [[{"role": "assistant", "content": text}] for text in texts]


def best_time(reward_func: Callable[..., list[float]], completions: list, answers: list) -> float:
    """Return the fastest of REPEATS runs over the whole batch, in seconds."""
    prompts = ["question"] * len(completions)
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        reward_func(prompts, completions, answer=answers)
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    completions = adversarial_completions()
    answers = ["72"] * len(completions)
    print(
        f"{len(completions)} completions x {COMPLETION_LENGTH:,} chars, "
        f"{len(ADVERSARIAL_PATTERNS)} adversarial patterns, best of {REPEATS}\n"
    )
    print(f"{'reward function':<28}{'seconds':>10}{'completions/s':>16}")
    total = 0.0
    for reward_func in REWARD_FUNCS:
        seconds = best_time(reward_func, completions, answers)
        total += seconds
        rate = len(completions) / seconds
        print(f"{reward_func.__name__:<28}{seconds:>10.4f}{rate:>16,.0f}")
    print(f"{'total':<28}{total:>10.4f}{len(completions) / total:>16,.0f}")


if __name__ == "__main__":
    main()
