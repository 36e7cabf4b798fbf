"""Tests for grpo/progress.py: what the console shows while GRPO trains."""

import re

import pytest

from grpo import training
from grpo.models import load_policy
from grpo.profiles import TINY
from grpo.progress import ETA_BASIS, closing_lines, compact_line, format_duration

STEPS = 3
LINE = re.compile(
    rf"^step (\d)/{STEPS} \| reward -?\d+\.\d\d \| correct \d{{1,3}}% \| KL -?\d+\.\d{{4}} "
    r"\| length \d+ \| ~\d+s left$"
)


@pytest.mark.parametrize(
    "seconds, text", [(0, "0s"), (42.4, "42s"), (187, "3m07s"), (3720, "1h02m"), (-3, "0s")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_correct_is_the_share_of_right_answers_not_the_reward():
    """The correctness reward pays 2.0 per right answer: a mean of 1.06 is 53 % right."""
    logs = {"reward": 2.5, "rewards/correctness_reward_func/mean": 1.06}
    assert compact_line(logs, 1, 80, None) == "step 1/80 | reward 2.50 | correct 53%"


def test_a_line_leaves_out_what_was_not_logged():
    """Without a reference model (beta 0) TRL logs no KL; custom rewards log no correctness."""
    logs = {"reward": 1.234, "completions/mean_length": 30.6, "rewards/mine/mean": 0.5}
    assert compact_line(logs, 4, 80, None) == "step 4/80 | reward 1.23 | length 31"


@pytest.mark.parametrize("disable_tqdm", [False, True])
def test_training_prints_compact_lines_not_metric_dictionaries(
    disable_tqdm, tmp_path, tiny_cache, capsys, monkeypatch
):
    monkeypatch.delenv("GRPO_USE_WANDB", raising=False)
    config = training.make_config(
        TINY, tmp_path, max_steps=STEPS, max_completion_length=8, per_device_train_batch_size=8,
        num_generations=4, save_strategy="no", report_to=[], use_cpu=True, bf16=False,
        disable_tqdm=disable_tqdm,
    )  # fmt: skip
    model, tokenizer, _ = load_policy("tiny-random", device="cpu", for_training=True)
    train_set, _ = training.load_datasets(TINY, train_size=8, eval_size=2)
    training.make_trainer(model, tokenizer, train_set, config).train()

    out, err = capsys.readouterr()
    assert "{'" not in out + err and "'reward'" not in out + err  # no raw dictionary
    lines = out.splitlines()
    steps = [int(match.group(1)) for line in lines if (match := LINE.match(line))]
    assert steps == list(range(1, STEPS + 1)), out
    assert re.search(rf"^training finished at step {STEPS} after \d+s$", out, re.M), out
    bar_finished = re.search(rf"\b{STEPS}/{STEPS} \[", err) is not None
    assert bar_finished is not disable_tqdm  # the bar, unless disable_tqdm hides it
    bar = [part for part in re.split(r"[\r\n]", err) if f"/{STEPS} [" in part]
    assert not any("<" in part for part in bar), bar  # no second time left (tqdm's) in it
    assert out.count(ETA_BASIS) == 1, out  # what the time left rests on, said once
    loads = [line for line in lines if line.startswith("[models] Loaded")]
    assert len(loads) == 2 and "(reference model" in loads[1], out  # policy, then TRL's copy


@pytest.fixture
def quiet_loading():
    from transformers.utils import logging as transformers_logging

    from grpo.progress import quiet_weight_loading

    quiet_weight_loading()
    yield
    transformers_logging.set_tqdm_hook(None)


def test_loading_a_model_shows_no_weights_bar_and_other_bars_stay(
    quiet_loading, tiny_model_dir, tmp_path, capsys
):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.save_pretrained(tmp_path / "saved")
    for _ in transformers_logging.tqdm(range(2), desc="another bar"):
        pass
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err
    assert "another bar" in err


def test_a_run_ends_with_the_files_it_wrote_and_the_next_command(tmp_path):
    run = tmp_path / "runs" / "main"
    (run / "final").mkdir(parents=True)
    for name in ("metrics.json", "summary.png"):  # a --skip-eval run has no completions files
        (run / name).write_text("x", encoding="utf-8")
    lines = closing_lines(run)
    listed = [line.split()[0] for line in lines[1:-1]]
    assert listed == ["metrics.json", "summary.png", "final/"]
    assert lines[-1].startswith(f"Next: python evaluate_model.py --model {run / 'final'} ")
    assert closing_lines(tmp_path / "empty") == [f"Open in {tmp_path / 'empty'}:"]
