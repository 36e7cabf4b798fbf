"""benchmarks/bench_gpu_real.py on a CPU with the Qwen2.5 stand-in: one step, tiny batch.

Only that the check runs end to end and reports every figure; the figures themselves are
meaningful on a GPU only.
"""

from __future__ import annotations

from benchmarks import bench_gpu_real


def test_gpu_check_runs_on_the_standin(qwen_standin_dir, monkeypatch):
    monkeypatch.setenv("GRPO_DATA_SOURCE", "embedded")
    text = bench_gpu_real.main(
        ["--model", str(qwen_standin_dir), "--steps", "1", "--num-generations", "2",
         "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1",
         "--max-completion-length", "4"]
    )  # fmt: skip

    rows = dict(line.strip("|").split(" | ", 1) for line in text.splitlines()[2:])
    rows = {name.strip(): value.strip() for name, value in rows.items()}
    assert rows["layout"].startswith("2 completions/step = 2 x 1, max 4 tokens")
    assert "over 1 step(s)" in rows["seconds per step (median)"]
    assert rows["generation"].endswith("s)") and "tokens/s" in rows["generation"]
    assert "GB" in rows["peak memory (measured)"]
    assert "7,473 steps" in rows["projected epoch (real)"]  # 1 prompt per step here
    assert rows["projected learner run"].startswith("250 steps")
