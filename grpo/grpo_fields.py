"""GRPOConfig fields named on the command line or in a `--config` YAML file, typed by TRL.

The command line parses its own flags first, with the standard library, so a mistyped
run flag is answered at once. Whatever is left must name `GRPOConfig` fields: TRL's own
parser (`TrlParser`, an `HfArgumentParser`) reads them, so every field TRL has is a flag
here, with TRL's type, spelling (`--max_steps` or `--max-steps`) and help, and none is
copied by hand. Importing TRL takes seconds, so it happens only when such a field is named.

On top of TRL's types this module keeps the tutorial's own limits (`FIELD_LIMITS`: TRL
accepts a negative top_k or a NaN weight decay and fails later, or trains a ruined
model), refuses non-finite numbers, trainer features a run has no place for
(`UNSUPPORTED`), and the fields that a run flag or the machine decides
(`DECIDED_ELSEWHERE`). Recipes' fields go through the same parser (`as_arguments`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, NoReturn

from grpo.cli import ConfigError, range_problem, usage_error
from rewards import REWARD_FUNCS

# Run-safety limits on top of TRL's types: (low, high, low excluded). A value outside is
# most likely a typo (a learning rate of 5, a temperature of 0).
FIELD_LIMITS: dict[str, tuple[float, float | None, bool]] = {
    "max_steps": (1, None, False),
    "learning_rate": (0.0, 1.0, True),
    "num_generations": (2, 1024, False),
    "per_device_train_batch_size": (1, None, False),
    "gradient_accumulation_steps": (1, None, False),
    "max_completion_length": (1, None, False),
    "beta": (0.0, 100.0, False),
    "temperature": (0.01, 100.0, False),
    "save_steps": (1, None, False),
    "save_total_limit": (1, None, False),
    "logging_steps": (1, None, False),
    "vllm_gpu_memory_utilization": (0.0, 1.0, True),
    "weight_decay": (0.0, 10.0, False),
    "adam_beta1": (0.0, 1.0, False),
    "adam_beta2": (0.0, 1.0, False),
    "adam_epsilon": (0.0, 1.0, True),
    "max_grad_norm": (0.0, None, False),
    "warmup_steps": (0.0, None, False),
    "top_k": (0, None, False),
    "top_p": (0.0, 1.0, True),
    "min_p": (0.0, 1.0, False),
    "repetition_penalty": (0.0, None, True),
    "epsilon": (0.0, None, False),
    "steps_per_generation": (1, None, False),
    "generation_batch_size": (1, None, False),
    "num_train_epochs": (0.0, None, True),
    "torch_empty_cache_steps": (1, None, False),
    "dataloader_num_workers": (0, None, False),
    "entropy_coef": (0.0, None, False),
}
# Trainer features this tutorial's runs have no data or place for: they would fail only
# after the first evaluation (no eval dataset, no hub account, DeepSpeed through the flag).
UNSUPPORTED = {
    "eval_strategy": ("no", "evaluation runs before and after training, not inside it"),
    "load_best_model_at_end": (False, "needs evaluation inside training"),
    "eval_on_start": (False, "needs evaluation inside training"),
    "push_to_hub": (False, "a run writes its model to --output-dir; upload it yourself"),
    "deepspeed": (None, "launch with accelerate and configs/deepspeed_zero2.yaml"),
}
# Fields TRL takes as a ratio when below 1 and as a count above: a fraction above 1 is a typo.
COUNT_OR_RATIO = ("save_steps", "logging_steps", "eval_steps")
# TRL 1.16's loss formulations. GRPOConfig takes any string and TRL rejects an unknown
# one only at the first loss, after the first generation; tests/test_training.py trains one
# step with each of these.
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
# Fields that a flag of this command or the machine decides; naming them directly would
# bypass that decision.
DECIDED_ELSEWHERE = {
    "use_vllm": "--use-vllm",
    "vllm_mode": "--use-vllm (colocated vLLM)",
    "bf16": "the GPU (bf16 where the card has it; --fp16 on cards without)",
    "fp16": "--fp16",
    "use_cpu": "the machine (no CUDA GPU: the CPU)",
    "report_to": "GRPO_USE_WANDB (TensorBoard always, wandb opt-in)",
}
_UNSET = object()  # the default of every field: tells a field given from one left out


def _field_parser(prog: str, unset_defaults: bool = True):
    """TRL's parser for GRPOConfig, where a mistake is one line (exit 2), not argparse's
    usage text of some 200 fields. With `unset_defaults` every field's default is `_UNSET`,
    so that the fields named can be told from the rest."""
    from trl import GRPOConfig, TrlParser

    class OneLineParser(TrlParser):
        def error(self, message: str) -> NoReturn:
            usage_error(prog, message)

    parser = OneLineParser(GRPOConfig, prog=prog, allow_abbrev=False)
    if unset_defaults:
        fields = [f.name for f in dataclasses.fields(GRPOConfig) if f.init]
        parser.set_defaults(**dict.fromkeys(fields, _UNSET))
    return parser


def parse_fields(strings: list[str], prog: str) -> dict[str, Any]:
    """The GRPOConfig fields in `strings` (what the command's own parser left), typed by
    TRL and checked against FIELD_LIMITS; {} without importing TRL when there are none."""
    if not strings:
        return {}
    namespace, unknown = _field_parser(prog).parse_known_args(strings)
    if unknown:
        raise ConfigError(
            f"unrecognized arguments: {' '.join(unknown)} (neither a flag of this command nor "
            "a GRPOConfig field; --help-grpo lists the fields)"
        )
    given = {name: value for name, value in vars(namespace).items() if value is not _UNSET}
    for name, value in given.items():
        check_field(name, value)
    return given


def check_field(name: str, value: Any) -> None:
    """Refuse a field another setting decides, or a value outside the tutorial's limits."""
    flag = "--" + name.replace("_", "-")
    if name in DECIDED_ELSEWHERE:
        raise ConfigError(f"{flag} is decided by {DECIDED_ELSEWHERE[name]}: leave it out")
    if name == "loss_type" and value not in LOSS_TYPES:
        raise ConfigError(f"{flag} {value!r}: choose from {', '.join(LOSS_TYPES)}")
    if name == "scale_rewards" and value not in SCALE_REWARDS:
        raise ConfigError(f"{flag} {value!r}: choose from {', '.join(SCALE_REWARDS)}")
    if name == "reward_weights" and value is not None and len(value) != len(REWARD_FUNCS):
        raise ConfigError(f"{flag}: one weight per reward function ({len(REWARD_FUNCS)})")
    if name in UNSUPPORTED and value != UNSUPPORTED[name][0]:
        raise ConfigError(f"{flag} {value}: not supported here ({UNSUPPORTED[name][1]})")
    numbers = value if isinstance(value, list) else [value]
    if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):
        raise ConfigError(f"{flag}: must be a finite number, got {value}")
    if name in COUNT_OR_RATIO and isinstance(value, float) and value > 1 and not value.is_integer():
        raise ConfigError(f"{flag} {value}: a ratio below 1 or a whole number of steps")
    if name not in FIELD_LIMITS or value is None:
        return
    low, high, strict = FIELD_LIMITS[name]
    problem = range_problem(value, low, high, strict=strict)
    if problem:
        raise ConfigError(f"{flag}: {problem}, got {value}")


def print_help(prog: str) -> None:
    """Every GRPOConfig field with TRL's own help text (train_grpo.py --help-grpo)."""
    _field_parser(prog, unset_defaults=False).print_help()


def as_arguments(settings: Mapping[str, Any]) -> list[str]:
    """GRPOConfig fields from a recipe as the command-line strings a user would type, so
    that TRL's parser types and checks them exactly as it does flags."""
    strings: list[str] = []
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, list):
            strings += [f"--{name}", *map(str, value)]
        elif isinstance(value, dict):
            strings += [f"--{name}", json.dumps(value)]
        else:
            strings += [f"--{name}", str(value)]
    return strings
