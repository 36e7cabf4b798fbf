"""The two pictures of a GRPO run: reward curves from the log, and before/after bars."""

from __future__ import annotations

import matplotlib.pyplot as plt  # headless machines fall back to the Agg backend by themselves

REWARD_PREFIX = "rewards/"
ROLLING_WINDOW = 10  # logs per rolling mean: 10 steps at the profiles' logging_steps=1


def reward_history(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) series of the total reward and of each reward function's mean.

    `trainer.state.log_history` mixes training logs with evaluation and summary entries;
    only the entries that carry a `reward` are GRPO steps.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        if "reward" not in entry:
            continue
        step = entry["step"]
        series.setdefault("total", []).append((step, entry["reward"]))
        for key, value in entry.items():
            if key.startswith(REWARD_PREFIX) and key.endswith("/mean"):
                name = key.removeprefix(REWARD_PREFIX).removesuffix("/mean")
                series.setdefault(name, []).append((step, value))
    return series


def rolling_mean(values: list[float], window: int = ROLLING_WINDOW) -> list[float]:
    """The mean of each value and the `window - 1` before it (fewer at the start).

    A GRPO step's reward is a mean over a few prompts, so it jumps from step to step; the
    rolling mean shows the trend the raw curve hides.
    """
    means, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        means.append(total / min(index + 1, window))
    return means


def plot_reward_curves(log_history: list[dict], ax=None, window: int = ROLLING_WINDOW):
    """Each reward against the training step: faint per step, solid as a rolling mean.

    The legend sits outside the plot, to the right, so it never hides a curve.
    """
    ax = ax or plt.gca()
    for name, points in reward_history(log_history).items():
        steps, values = zip(*points, strict=True)
        width = 2.5 if name == "total" else 1.3
        (raw,) = ax.plot(steps, values, linewidth=width * 0.6, alpha=0.3)
        label = name.removesuffix("_reward_func")  # "correctness", not "correctness_reward_func"
        ax.plot(steps, rolling_mean(list(values), window), color=raw.get_color(),
                linewidth=width, label=label)  # fmt: skip
    ax.set(
        xlabel="step",
        ylabel="mean reward",
        title=f"GRPO rewards: per step (faint), mean of the last {window} logs (solid)",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    return ax


def plot_before_after(before: dict[str, float], after: dict[str, float], ax=None):
    """Accuracy and format rates before vs after training, as grouped bars."""
    ax = ax or plt.gca()
    names = ["accuracy", "strict_format", "soft_format"]
    positions = range(len(names))
    width = 0.38
    for offset, label, metrics in ((-width / 2, "before", before), (width / 2, "after", after)):
        bars = ax.bar([p + offset for p in positions], [metrics[n] for n in names], width)
        bars.set_label(label)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(list(positions), names)
    ax.set(ylim=(0, 1.1), ylabel="fraction of eval questions", title="Greedy evaluation")
    ax.legend()
    return ax


def summary_figure(log_history: list[dict], before: dict[str, float], after: dict[str, float]):
    """Curves and bars side by side: the one picture that says whether training worked."""
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(13, 4.2), width_ratios=(1.4, 1), layout="constrained"
    )
    plot_reward_curves(log_history, left)
    plot_before_after(before, after, right)
    return figure
