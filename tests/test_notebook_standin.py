"""Notebook 02 run against Qwen2.5-0.5B-Instruct's real tokenizer and chat template.

The committed outputs of notebook 02 come from the embedded tiny model, whose vocabulary
has a few hundred tokens. Every cell marked `# NBVAL_CHECK_OUTPUT` must print the same text
with the real Qwen2.5 tokenizer (rendered templates, token names, masks and counts; never
token ids), so that what the notebook teaches holds for the model the series is about.
This test runs the notebook through nbval with `GRPO_MODEL` pointing at a stand-in of the
real model (the real tokenizer and config on a tiny random body, see `qwen_standin_dir`);
it is skipped where the shared Qwen2.5 tokenizer files are absent.
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
