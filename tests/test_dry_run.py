"""`train_grpo.py --dry-run` and `--gpu-memory-gb`: the plan, printed before anything loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import train_grpo
from grpo import plan

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_gpu(monkeypatch):
    """Plans as on a machine without a GPU (fp32), whatever this one has."""
    monkeypatch.setattr(plan, "visible_gpu", lambda: None)


def test_dry_run_prints_the_plan_without_torch_and_writes_nothing(tmp_path):
    output = tmp_path / "run"
    code = (
        "import sys, train_grpo; "
        f"train_grpo.main(['--profile', 'real', '--gpu-memory-gb', '16', '--dry-run', "
        f"'--output-dir', {str(output)!r}]); "
        "print('torch imported:', 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
    assert not output.exists()
    for part in ("weights", "grads", "optimizer", "reference", "logits", "activations"):
        assert f"\n  {part}" in result.stdout
    assert "4 prompts x 16 completions = 64 completions" in result.stdout
    assert "-> fits" in result.stdout and "Estimated time" in result.stdout
    assert "Command: python train_grpo.py --profile real" in result.stdout


def test_dry_run_total_for_16_gb_is_under_15_gb(tmp_path, capsys, no_gpu):
    train_grpo.main(
        ["--profile", "real", "--gpu-memory-gb", "16", "--dry-run", "--output-dir", str(tmp_path)]
    )
    total = next(line for line in capsys.readouterr().out.splitlines() if "  total" in line)
    assert float(total.split()[1]) < 15


@pytest.mark.parametrize("profile", ["real", "learner"])
def test_gpu_memory_sets_the_fitted_layout(tmp_path, no_gpu, profile):
    args = train_grpo.parse_args(
        ["--output-dir", str(tmp_path), "--profile", profile, "--gpu-memory-gb", "16"]
    )
    overrides = train_grpo.config_overrides(args)

    assert overrides["per_device_train_batch_size"] * overrides["gradient_accumulation_steps"] == 64
    assert overrides["gradient_checkpointing"] is True


def test_a_card_too_small_is_refused_with_the_lora_command(tmp_path, no_gpu, capsys):
    argv = ["--output-dir", str(tmp_path), "--profile", "real", "--gpu-memory-gb", "8"]
    with pytest.raises(SystemExit) as exit_info:
        train_grpo.parse_args(argv)

    assert exit_info.value.code == 2
    assert "--lora" in capsys.readouterr().err
    args = train_grpo.parse_args([*argv, "--lora"])  # with LoRA it fits
    assert train_grpo.config_overrides(args)["per_device_train_batch_size"] >= 1


def test_gradient_checkpointing_flag_both_ways(tmp_path):
    base = ["--output-dir", str(tmp_path)]
    assert train_grpo.config_overrides(train_grpo.parse_args(base)) == {}
    on = train_grpo.parse_args([*base, "--gradient-checkpointing"])
    off = train_grpo.parse_args([*base, "--no-gradient-checkpointing"])
    assert train_grpo.config_overrides(on) == {"gradient_checkpointing": True}
    assert train_grpo.config_overrides(off) == {"gradient_checkpointing": False}


def test_learner_is_a_profile_choice(tmp_path, capsys, no_gpu):
    train_grpo.main(["--profile", "learner", "--dry-run", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Plan for profile 'learner'" in out and "steps: 250" in out


def test_gpu_memory_auto_without_a_gpu_is_a_usage_error(tmp_path, no_gpu, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_grpo.parse_args(["--output-dir", str(tmp_path), "--gpu-memory-gb", "auto"])
    assert exit_info.value.code == 2
    assert "no GPU" in capsys.readouterr().err


def test_gpu_memory_auto_uses_the_visible_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "visible_gpu", lambda: (80.0, True))
    args = train_grpo.parse_args(
        ["--output-dir", str(tmp_path), "--profile", "real", "--gpu-memory-gb", "auto"]
    )
    assert (args.gpu_memory_gb, args.gpu_bf16) == (80.0, True)
    overrides = train_grpo.config_overrides(args)
    assert (overrides["per_device_train_batch_size"], overrides["gradient_accumulation_steps"]) == (
        64,
        1,
    )


@pytest.mark.parametrize("size, bf16", [("16", False), ("24", True), ("80", True)])
def test_an_explicit_card_size_without_a_gpu_is_planned_like_the_card_table(
    tmp_path, no_gpu, size, bf16
):
    """Planning from a laptop for a rented card: a T4-class 16 GB card has no bf16, the
    larger classes in the README's table do, so the plan's time and memory match the table."""
    args = train_grpo.parse_args(
        ["--output-dir", str(tmp_path), "--profile", "learner", "--gpu-memory-gb", size]
    )
    assert args.gpu_bf16 is bf16
