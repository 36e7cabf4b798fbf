"""Stand-ins for Qwen2.5-0.5B-Instruct, built from its tokenizer and config files alone.

The real weights (1 GB) are out of reach offline and in CI, but everything the real path
depends on besides the weights is in a handful of small files: the tokenizer, the chat
template, config.json and generation_config.json. From those this module builds

* `build_standin`: the real tokenizer, template and generation settings on a Qwen2 body
  shrunk to hidden 64 x 2 layers (vocabulary kept at 151,936 and tied), so a real-profile
  GRPO step runs on a CPU in seconds;
* `build_full_shape`: Qwen2.5-0.5B's full shape with random weights, for timing and memory
  on a GPU (`benchmarks/bench_gpu_real.py`) when the real weights cannot be downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# Qwen2.5-0.5B-Instruct's tokenizer, config.json and generation_config.json, shipped with the
# repository (Apache-2.0, see its README), so the real-path tests run in any clone.
QWEN_FILES_DIR = REPO / "assets" / "qwen2.5-0.5b-instruct"
STANDIN_BODY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    max_window_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def build_standin(
    folder: Path, source: Path = QWEN_FILES_DIR, body: dict = STANDIN_BODY, seed: int = 0
) -> Path:
    """A random Qwen2 of `source`'s config.json with `body` replacing its shape, saved in
    `folder` with `source`'s tokenizer and generation_config.json."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    config = json.loads((source / "config.json").read_text("utf-8"))
    config = {k: v for k, v in config.items() if not k.startswith(("_", "transformers_"))}
    config.update(body, torch_dtype="float32")
    torch.manual_seed(seed)
    Qwen2ForCausalLM(Qwen2Config(**config)).save_pretrained(folder)
    shutil.copy(source / "generation_config.json", folder / "generation_config.json")
    return folder


def build_full_shape(folder: Path, source: Path = QWEN_FILES_DIR) -> Path:
    """Qwen2.5-0.5B-Instruct's exact shape with random weights, saved in `folder` (2 GB)."""
    return build_standin(folder, source, body={})
