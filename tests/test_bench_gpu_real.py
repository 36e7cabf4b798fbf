"""benchmarks/bench_gpu_real.py on a CPU with the Qwen2.5 stand-in: one step, tiny batch.

On a CPU the times mean little; what is checked is that the check runs end to end as the
learner profile would, that the checkpoint it really writes matches the plan's disk
arithmetic, and that it counts non-finite steps and skipped optimiser steps.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from benchmarks import bench_gpu_real


def rows_of(text: str) -> dict[str, str]:
    rows = dict(line.strip("|").split(" | ", 1) for line in text.splitlines()[2:])
    return {name.strip(): value.strip() for name, value in rows.items()}


def test_gpu_check_runs_on_the_standin(qwen_standin_dir, monkeypatch):
    monkeypatch.setenv("GRPO_DATA_SOURCE", "embedded")
    text = bench_gpu_real.main(
        ["--model", str(qwen_standin_dir), "--steps", "1", "--num-generations", "2",
         "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1",
         "--max-completion-length", "4"]
    )  # fmt: skip

    rows = rows_of(text)  # one table: no fp16 or vLLM variant on a CPU
    assert rows["variant"] == "base"
    assert rows["layout"].startswith("2 completions/step = 2 x 1, max 4 tokens")
    assert "over 1 step(s)" in rows["seconds per step (median)"]
    assert rows["generation"].endswith("s)") and "tokens/s" in rows["generation"]
    ratio = float(rows["disk per checkpoint (measured)"].split("(")[1].split(" x")[0])
    assert ratio == pytest.approx(1.0, abs=0.02)  # the saved checkpoint vs the plan
    assert rows["non-finite loss or grad norm"] == "0 of 2 steps"
    assert rows["skipped optimiser steps"] == "0 of 2"
    assert "7,473 steps" in rows["projected epoch (real)"]  # 1 prompt per step here
    assert rows["projected learner run"].startswith("250 steps")


def test_fp16_and_vllm_variants_need_a_gpu(monkeypatch):
    monkeypatch.setattr(bench_gpu_real.torch.cuda, "is_available", lambda: False)
    assert bench_gpu_real.variants(["auto"]) == ["base"]
    with pytest.raises(SystemExit, match="need a CUDA GPU"):
        bench_gpu_real.variants(["fp16"])


def test_step_watch_counts_non_finite_steps_and_skipped_optimiser_steps():
    watch = bench_gpu_real.StepWatch()
    steps = [(1, 0.5, False), (2, math.nan, True), (3, "inf", False), (4, None, False)]
    for step, loss, skipped in steps:
        state = SimpleNamespace(global_step=step)
        watch.on_step_begin(None, state, None)
        watch.on_step_end(None, state, None, optimizer=SimpleNamespace(step_was_skipped=skipped))
        watch.on_log(None, state, None, logs={"loss": loss, "grad_norm": 1.0})
    assert watch.non_finite == [2, 3] and watch.skipped == [2] and len(watch.seconds) == 4
