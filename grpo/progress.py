"""What the console shows while GRPO trains: a bar, one short line per step, the files to open.

transformers' own progress callback prints the whole metric dictionary at every logging
step: for GRPO that is about 1,500 characters of rewards, clipping ratios and token counts,
80 times in the tiny demo. `CompactProgress` keeps a bar (without tqdm's own estimate, so a
line shows one time left, not two) and prints only what a learner watches: the step, the mean
reward, the share of right answers, the KL to the reference model, the mean completion length
and the time left, whose basis it says once. Every metric still reaches TensorBoard (and
metrics.json through `trainer.state.log_history`). `quiet_weight_loading` hides
transformers' "Loading weights" bar, which a run would show once per load (up to four), and
its "Writing model shards" bar, once per save;
`closing_lines` ends a run with the files to open and the next command.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback
from transformers.utils import logging as transformers_logging

from rewards import CORRECTNESS_REWARD, correctness_reward_func

# (label, log key, format): a field is left out of the line when its key is not logged
# (KL only exists with beta > 0; correctness only with the tutorial's reward functions).
FIELDS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("reward", "reward", "{:.2f}".format),
    # The correctness reward is CORRECTNESS_REWARD per right answer: its mean over the step's
    # completions, divided by that, is the share answered right.
    (
        "correct",
        f"rewards/{correctness_reward_func.__name__}/mean",
        lambda mean: f"{mean / CORRECTNESS_REWARD:.0%}",
    ),
    ("KL", "kl", "{:.4f}".format),
    ("length", "completions/mean_length", "{:.0f}".format),
)


def format_duration(seconds: float) -> str:
    """A duration as 1h02m, 3m07s or 42s: short enough for a line read at a glance."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def compact_line(logs: dict, step: int, max_steps: int, seconds_left: float | None) -> str:
    """One log entry as `step 10/80 | reward 1.23 | correct 41% | ... | ~1m05s left`.

    The time left is an estimate: the mean time per step so far times the steps to go.
    """
    parts = [f"step {step}/{max_steps}"]
    parts += [f"{label} {show(logs[key])}" for label, key, show in FIELDS if key in logs]
    if seconds_left is not None:
        parts.append(f"~{format_duration(seconds_left)} left")
    return " | ".join(parts)


# The bar counts steps and shows the time spent; the time left is only in the step lines.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}]"
ETA_BASIS = (
    "time left = the mean time per step so far x the steps to go (training only; "
    "the evaluation after training comes on top)"
)


class CompactProgress(TrainerCallback):
    """A progress bar plus `compact_line` for every training log, on the main process only.

    Installed in place of transformers' own progress output by `use_compact_progress`.
    With `disable_tqdm` the bar is hidden and the lines are still printed.
    """

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.started = 0.0
        self.first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                dynamic_ncols=True,
                disable=args.disable_tqdm,
                bar_format=BAR_FORMAT,
            )
            self.started, self.first_step = time.monotonic(), state.global_step
            self.bar.write(f"training to step {state.max_steps}; {ETA_BASIS}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def seconds_left(self, step: int, max_steps: int) -> float | None:
        """Mean seconds per step since training (or resuming) began, times the steps to go."""
        done = step - self.first_step
        if done <= 0:
            return None
        return (time.monotonic() - self.started) / done * (max_steps - step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        if "reward" in logs:  # a GRPO step; other entries (the final summary) are skipped
            left = self.seconds_left(state.global_step, state.max_steps)
            self.bar.write(compact_line(logs, state.global_step, state.max_steps, left))
        elif "train_runtime" in logs:
            runtime = format_duration(logs["train_runtime"])  # this process's, when resumed
            self.bar.write(f"training finished at step {state.global_step} after {runtime}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def transformers_progress_callbacks() -> list[type[TrainerCallback]]:
    """The callbacks a Trainer prints its logs with: ProgressCallback, PrinterCallback (with
    `disable_tqdm`) and, inside Jupyter, NotebookProgressCallback (which needs IPython)."""
    defaults: list[type[TrainerCallback]] = [ProgressCallback, PrinterCallback]
    if importlib.util.find_spec("IPython") is not None:
        from transformers.utils.notebook import NotebookProgressCallback

        defaults.append(NotebookProgressCallback)
    return defaults


def use_compact_progress(trainer: Trainer) -> None:
    """Swap the trainer's default progress output for `CompactProgress`."""
    for callback in transformers_progress_callbacks():
        trainer.remove_callback(callback)
    trainer.add_callback(CompactProgress())


# The descriptions of transformers' per-tensor bars: loading a model, and saving one (each
# checkpoint and final/ would draw one between the step lines).
QUIET_BARS = ("Loading weights", "Writing model shards")


def _without_file_bars(factory, args, kwargs):
    if kwargs.get("desc") in QUIET_BARS:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


def quiet_weight_loading() -> None:
    """Hide transformers' "Loading weights" and "Writing model shards" bars (its public tqdm
    hook; other bars, a download's included, stay): each load already says itself in one
    line, and a run loads up to four models (evaluation before, policy, reference model,
    evaluation after) and saves one per checkpoint."""
    transformers_logging.set_tqdm_hook(_without_file_bars)


# What a finished run leaves to look at, in the order to open it.
RUN_FILES = (
    ("metrics.json", "the numbers: before/after accuracy and format rates, reward per step"),
    ("summary.png", "the reward curve and the before/after bars"),
    ("completions_before.jsonl", "every evaluation answer before training, scored"),
    ("completions_after.jsonl", "the same questions after training"),
    ("final", "the trained model (or LoRA adapter)"),
)


def closing_lines(output_dir: Path) -> list[str]:
    """The files to open, those the run wrote (a --skip-eval run has no evaluation files),
    and the next command: measuring the trained model on questions of one's choosing."""
    found = [(name, what) for name, what in RUN_FILES if (output_dir / name).exists()]
    width = max((len(name) for name, _ in found), default=0) + 1
    lines = [f"Open in {output_dir}:"] + [
        f"  {name + ('/' if name == 'final' else ''):<{width}} {what}" for name, what in found
    ]
    if (output_dir / "final").is_dir():
        measured = output_dir.with_name(f"{output_dir.name}-eval")
        lines.append(
            f"Next: python evaluate_model.py --model {output_dir / 'final'} --output-dir "
            f"{measured} (or open notebooks/06_evaluation.ipynb)"
        )
    return lines
