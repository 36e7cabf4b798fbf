"""Tests for grpo/plots.py: the reward curves a run saves in summary.png."""

import itertools
import random

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from grpo import plots  # noqa: E402


def fake_history(steps: int = 40) -> list[dict]:
    """A log history shaped like GRPOTrainer's: a noisy, rising reward, plus a summary entry."""
    rng = random.Random(0)
    history = []
    for step in range(1, steps + 1):
        correctness = min(2.0, step / 20) + rng.uniform(-0.6, 0.6)
        history.append(
            {
                "step": step,
                "reward": correctness + 0.5,
                "rewards/correctness_reward_func/mean": correctness,
                "rewards/strict_format_reward_func/mean": 0.5,
            }
        )
    return [*history, {"step": steps, "train_runtime": 31.0}]


def travel(values) -> float:
    """How far a curve moves up and down in total: less for a smoother one."""
    return sum(abs(b - a) for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    "values, window, expected",
    [
        ([1, 2, 3, 4], 2, [1, 1.5, 2.5, 3.5]),
        ([4, 0, 2], 10, [4, 2, 2]),  # a window longer than the run: the mean so far
        ([5], 1, [5]),
    ],
)
def test_rolling_mean(values, window, expected):
    assert plots.rolling_mean(values, window) == pytest.approx(expected)


def test_each_reward_has_a_raw_curve_and_a_smoother_rolling_mean():
    figure, ax = plots.plt.subplots()
    plots.plot_reward_curves(fake_history(), ax)
    lines = ax.get_lines()
    assert len(lines) == 2 * 3  # total, correctness, strict format: raw and rolling each
    for raw, rolling in zip(lines[::2], lines[1::2], strict=True):
        assert raw.get_color() == rolling.get_color() and raw.get_alpha() < 1
        assert list(raw.get_xdata()) == list(rolling.get_xdata())
        assert travel(rolling.get_ydata()) <= travel(raw.get_ydata())
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "total",
        "correctness",
        "strict_format",
    ]
    plots.plt.close(figure)


def test_the_legend_in_summary_png_covers_neither_plot():
    rates = {"accuracy": 0.1, "strict_format": 0.2, "soft_format": 0.3}
    figure = plots.summary_figure(fake_history(), rates, rates)
    figure.canvas.draw()
    curves, bars = figure.axes
    legend = curves.get_legend().get_window_extent()
    assert not legend.overlaps(curves.get_window_extent())
    assert not legend.overlaps(bars.get_window_extent())
    plots.plt.close(figure)
