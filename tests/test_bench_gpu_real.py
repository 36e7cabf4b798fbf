"""benchmarks/bench_gpu_real.py on a CPU with the Qwen2.5 stand-in: each command its
docstring documents, and --help, run here through the same code a GPU runs, with the GPU's
facts (nvidia-smi's answer) and the model's absence injected.

On a CPU the times mean little; what is checked is that each command runs end to end as
the learner profile would (the batch fitted to the card, the precision the card decides),
that the checkpoint it really writes matches the plan's disk arithmetic, and that it counts
non-finite steps and skipped optimiser steps.
"""

from __future__ import annotations

import math
import shlex
from types import SimpleNamespace

import pytest

import grpo.run_config
from benchmarks import bench_gpu_real
from grpo.models import ModelUnavailable
from offline_demo.qwen_standin import QWEN_FILES_DIR, build_standin

PROG = "python -m benchmarks.bench_gpu_real"
# Appended to every documented command: one timed step of one 2-completion group of 4
# tokens (the learner's 64 completions take minutes a step on a CPU: the stand-in keeps
# Qwen's 151,936-entry vocabulary).
SMALL = ["--steps", "1", "--num-generations", "2", "--per-device-train-batch-size", "2",
         "--gradient-accumulation-steps", "1", "--max-completion-length", "4"]  # fmt: skip
REAL_SHAPE_DIR = QWEN_FILES_DIR  # Qwen2.5-0.5B's config.json: what fitting reads
T4 = (16.0, False)  # what nvidia-smi reports for a T4: 16 GB, compute capability 7.5
# Each documented command, the GPU nvidia-smi reports for it (None: no GPU), and the
# variants it runs: the default adds fp16 on a T4.
COMMANDS = {
    "": (T4, ["base", "fp16"]),
    "--model random": (None, ["base"]),
    "--gpu-memory-gb 16": (None, ["base"]),
    "--variants fp16": (T4, ["fp16"]),
}


def documented_commands() -> list[list[str]]:
    lines = [line.split("#")[0].strip() for line in bench_gpu_real.__doc__.splitlines()]
    return [shlex.split(line)[3:] for line in lines if line.startswith(PROG)]


def rows_of(table: str) -> dict[str, str]:
    rows = dict(line.strip("|").split(" | ", 1) for line in table.splitlines()[2:])
    return {name.strip(): value.strip() for name, value in rows.items()}


@pytest.fixture
def standin_gpu_check(qwen_standin_dir, monkeypatch):
    """No real model to be had, the random model of Qwen2.5's shape built as the stand-in
    (its shape shrunk, its files Qwen2.5's), and GSM8K from the embedded excerpt."""
    monkeypatch.setenv("GRPO_DATA_SOURCE", "embedded")
    monkeypatch.delenv("WORLD_SIZE", raising=False)

    def no_download(name, require_real=False):
        if name == "real":
            raise ModelUnavailable("Could not get 'Qwen/Qwen2.5-0.5B-Instruct' (offline test)")
        return qwen_standin_dir

    monkeypatch.setattr(bench_gpu_real, "resolve_model", no_download)
    monkeypatch.setattr(bench_gpu_real, "build_full_shape", build_standin)
    return qwen_standin_dir


def test_every_documented_command_is_run_here():
    assert [" ".join(command) for command in documented_commands()] == list(COMMANDS)


def test_help_runs_without_a_gpu(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_gpu_real.main(["--help"])
    assert exit_.value.code == 0 and "--gpu-memory-gb" in capsys.readouterr().out


@pytest.mark.parametrize("command", list(COMMANDS), ids=lambda c: c or "default")
def test_each_documented_command_runs_on_the_standin(standin_gpu_check, monkeypatch, command):
    gpu, expected = COMMANDS[command]
    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: gpu)
    tables = bench_gpu_real.main(command.split() + SMALL).split("\n\n")

    assert [rows_of(table)["variant"] for table in tables] == expected
    for table in tables:
        rows = rows_of(table)
        precision = "fp16 autocast" if rows["variant"] == "fp16" else "fp32"
        assert rows["layout"].startswith("2 completions/step = 2 x 1, max 4 tokens")
        assert rows["layout"].endswith(precision)
        assert "over 1 step(s)" in rows["seconds per step (median)"]
        assert rows["generation"].endswith("s)") and "tokens/s" in rows["generation"]
        ratio = float(rows["disk per checkpoint (measured)"].split("(")[1].split(" x")[0])
        assert ratio == pytest.approx(1.0, abs=0.02)  # the saved checkpoint vs the plan
        assert rows["non-finite loss or grad norm"] == "0 of 2 steps"
        assert rows["skipped optimiser steps"] == "0 of 2"
        assert "7,473 steps" in rows["projected epoch (real)"]  # 1 prompt per step here
        assert rows["projected learner run"].startswith("250 steps")


@pytest.mark.parametrize("gpu", [None, T4], ids=["planned 16 GB", "T4"])
def test_the_fitted_layout_is_the_one_train_grpo_plans(tmp_path, monkeypatch, gpu):
    """`--gpu-memory-gb 16` (or a T4 seen by nvidia-smi) trains the layout that
    `train_grpo.py --profile learner --dry-run` prints for that card."""
    import train_grpo

    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: gpu)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    flags = [] if gpu else ["--gpu-memory-gb", "16"]
    args = bench_gpu_real.parse_args(flags)
    run = bench_gpu_real.learner_run(args, "base", REAL_SHAPE_DIR, tmp_path / "bench")
    _, planned = train_grpo.parse_args(
        ["--profile", "learner", "--model", str(REAL_SHAPE_DIR), "--output-dir",
         str(tmp_path / "train"), "--dry-run", *flags]
    )  # fmt: skip
    layout = ("per_device_train_batch_size", "gradient_accumulation_steps")
    layout += ("gradient_checkpointing", "num_generations", "bf16", "fp16")
    assert {k: run.grpo[k] for k in layout} == {k: planned.grpo[k] for k in layout}
    assert run.plan.micro_batch * run.plan.accumulation == 64
    assert (run.plan.micro_batch, run.plan.accumulation) == (16, 4)  # the plan for 16 GB
    assert run.grpo["max_steps"] == args.steps + 1 == run.grpo["save_steps"]


@pytest.mark.parametrize("gpu, words", [((24.0, True), "this GPU has bf16"),
                                        (None, "--fp16 needs a CUDA GPU")])  # fmt: skip
def test_the_fp16_variant_is_refused_where_train_grpo_refuses_it(
    standin_gpu_check, monkeypatch, capsys, gpu, words
):
    """On a bf16 card or without a GPU: train_grpo's usage error, one line, exit 2."""
    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: gpu)
    with pytest.raises(SystemExit) as exit_:
        bench_gpu_real.main(["--variants", "fp16", *SMALL])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and words in error


@pytest.mark.parametrize("value", ["0", "-16", "nan", "inf", "1e300"])
def test_a_card_size_no_gpu_has_is_refused(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_gpu_real.main(["--gpu-memory-gb", value])
    assert exit_.value.code == 2 and "--gpu-memory-gb" in capsys.readouterr().err


def test_step_watch_counts_non_finite_steps_and_skipped_optimiser_steps(monkeypatch):
    """On a GPU each step's clock waits for the GPU at both ends, and the memory peaks start
    again with each variant's training (the GPU injected here)."""
    synchronized, calls = [], []
    cuda = bench_gpu_real.torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "synchronize", lambda: synchronized.append(1))
    monkeypatch.setattr(cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda: calls.append("reset"))
    watch = bench_gpu_real.StepWatch()
    watch.on_train_begin(None, None, None)
    assert calls == ["empty_cache", "reset"]
    steps = [(1, 0.5, False), (2, math.nan, True), (3, "inf", False), (4, None, False)]
    for step, loss, skipped in steps:
        state = SimpleNamespace(global_step=step)
        watch.on_step_begin(None, state, None)
        watch.on_step_end(None, state, None, optimizer=SimpleNamespace(step_was_skipped=skipped))
        watch.on_log(None, state, None, logs={"loss": loss, "grad_norm": 1.0})
    assert watch.non_finite == [2, 3] and watch.skipped == [2] and len(watch.seconds) == 4
    assert len(synchronized) == 2 * 4


def test_the_report_reads_the_cards_name_memory_and_peaks(monkeypatch):
    """The CUDA branch of the report, with a T4's facts injected into torch.cuda."""
    cuda = bench_gpu_real.torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "get_device_name", lambda *a: "Tesla T4")
    monkeypatch.setattr(cuda, "get_device_properties", lambda *a: SimpleNamespace(
        total_memory=15360 * 2**20))  # fmt: skip
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda *a: 6e9)
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda *a: 7e9)
    monkeypatch.setattr(cuda, "synchronize", lambda *a: None)
    watch = bench_gpu_real.StepWatch()
    watch.seconds += [9.0, 4.0, 6.0]  # a warm-up, then two timed steps
    config = SimpleNamespace(
        num_generations=16, per_device_train_batch_size=16, gradient_accumulation_steps=4,
        max_completion_length=200, gradient_checkpointing=True, bf16=False, fp16=True,
        device="cuda:0",
    )  # fmt: skip
    shape = bench_gpu_real.plan.QWEN2_5_0_5B
    planned = bench_gpu_real.plan.make_plan(
        bench_gpu_real.LEARNER, {"per_device_train_batch_size": 16}, 16.1, fp16=True
    )
    rows = rows_of(
        bench_gpu_real.report("fp16", "Qwen2.5", config, watch, [(2.0, 100), (1.0, 3000)],
                              int(planned.disk.checkpoint), shape)
    )  # fmt: skip
    assert rows["device"] == "Tesla T4 (cuda:0), 16.1 GB"
    assert rows["peak memory (measured)"] == "6.00 GB allocated (7.00 GB reserved)"
    assert rows["seconds per step (median)"].startswith("5.00 s over 2 step(s)")  # no warm-up
    assert rows["generation"].startswith("3,000 tokens/s")  # the warm-up's call left out
    assert rows["layout"].endswith("fp16 autocast")
    assert rows["projected learner run"] == "250 steps x 5.00 s = 21 min + evaluation"
    assert rows["disk per checkpoint (measured)"].endswith("(1.000 x the plan's 5.940 GB)")


def test_generation_timing_counts_the_new_tokens_that_are_not_padding(monkeypatch):
    torch = bench_gpu_real.torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    output = torch.tensor([[5, 5, 7, 8, 0], [5, 5, 9, 0, 0]])  # 2 prompt tokens, pad 0
    model = SimpleNamespace(
        generation_config=SimpleNamespace(pad_token_id=0), generate=lambda **kwargs: output
    )
    record: list[tuple[float, int]] = []
    bench_gpu_real.time_generation(model, record)
    assert model.generate(input_ids=torch.ones(2, 2, dtype=torch.long)) is output
    assert len(record) == 1 and record[0][1] == 3
