"""Notebooks 01 and 02 run with the real-model path: `GRPO_MODEL` pointing at the Qwen stand-in.

Sections 2-6 of notebook 02 always teach with Qwen2.5's real tokenizer (shipped in assets/);
01 and 02's generation sections use whatever model `choose_inference_model()` picks, with
that model's own tokenizer. The committed runs used the tiny model offline; this test runs
the notebooks through nbval with the stand-in (the real tokenizer, template and generation
config on a tiny random body, see `qwen_standin_dir`), so every cell and checked output also
hold when the model really is Qwen2.5 (01 once fed Qwen's ids to the tiny random model).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["01_load_model", "02_chat_template"])
def test_the_notebook_runs_and_its_checked_outputs_hold_with_qwen(name, qwen_standin_dir):
    env = {
        **os.environ,
        "GRPO_MODEL": str(qwen_standin_dir),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    command = [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, str(REPO / "notebooks" / f"{name}.ipynb")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"notebook {name} fails or its checked outputs differ with Qwen2.5's files:\n"
        + result.stdout[-6000:]
        + result.stderr[-2000:]
    )
