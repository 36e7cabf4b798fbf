"""How a model is named: the GRPO_MODEL setting and its reserved names (standard library only).

Kept apart from `grpo.models` (which imports torch) so the command lines can read the
choice, and pick a profile from it, before anything heavy loads.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_ENV_VAR = "GRPO_MODEL"
EMBEDDED_MODELS = ("tiny", "tiny-random")  # the offline demo's models: always the toy profile
NAMED_MODELS = ("auto", "real", *EMBEDDED_MODELS)
# What marks a folder as a LoRA adapter (peft's file), for both command lines and the loader.
ADAPTER_CONFIG = "adapter_config.json"


def requested_name(name: str | None = None) -> str:
    """`name`, else $GRPO_MODEL, else "auto"; blank values count as unset, and the reserved
    names are matched in any case."""
    chosen = (name or "").strip() or os.environ.get(MODEL_ENV_VAR, "").strip() or "auto"
    return chosen.lower() if chosen.lower() in NAMED_MODELS else chosen


def looks_like_path(name: str) -> bool:
    """True for names meant as folders: explicit paths, existing ones, and anything with more
    than one '/' or whose first part is a local folder (`runs/mian/final`), which a hub id
    ('Org/Name') never is. The one rule both command lines and the loader use."""
    if name.startswith(("/", "./", "../", "~", ".\\")) or Path(name).expanduser().exists():
        return True
    parts = Path(name).parts
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())
