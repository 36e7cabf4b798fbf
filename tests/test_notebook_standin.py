"""Notebook 02 run with the real-model path: `GRPO_MODEL` pointing at the Qwen stand-in.

Sections 2-6 of notebook 02 always teach with Qwen2.5's real tokenizer (shipped in assets/);
section 7 generates with whatever model `load_policy()` returns, using that model's own
tokenizer. The committed run used the tiny model offline; this test runs the notebook
through nbval with the stand-in (the real tokenizer, template and generation config on a
tiny random body, see `qwen_standin_dir`), so the generation section and every checked
output also hold when the model really is Qwen2.5.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "02_chat_template.ipynb"


def test_notebook_02_checked_outputs_hold_for_the_real_qwen_tokenizer(qwen_standin_dir):
    env = {
        **os.environ,
        "GRPO_MODEL": str(qwen_standin_dir),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    command = [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, str(NOTEBOOK)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        "notebook 02's checked outputs differ under the real Qwen2.5 tokenizer:\n"
        + result.stdout[-6000:]
        + result.stderr[-2000:]
    )
