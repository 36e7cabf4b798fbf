"""GRPOConfig fields named on the command line or in a `--config` YAML file, typed by TRL.

The command line parses its own flags first, with the standard library, so a mistyped
run flag is answered at once. Whatever is left must name `GRPOConfig` fields: TRL's own
parser (`TrlParser`, an `HfArgumentParser`) reads them, so every field TRL has is a flag
here, with TRL's type, spelling (`--max_steps` or `--max-steps`) and help, and none is
copied by hand. Importing TRL takes seconds, so it happens only when such a field is named.

On top of TRL's types this module keeps the tutorial's own limits (`FIELD_LIMITS`), and
refuses the fields that a run flag or the machine decides (`DECIDED_ELSEWHERE`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from grpo.cli import ConfigError, range_problem, usage_error

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
}
# TRL 1.16's loss formulations. GRPOConfig takes any string and TRL rejects an unknown
# one only at the first loss, after the first generation; tests/test_training.py trains one
# step with each of these.
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
# Fields that a flag of this command or the machine decides; naming them directly would
# bypass that decision.
DECIDED_ELSEWHERE = {
    "output_dir": "--output-dir (checkpoints go to its checkpoints/ folder)",
    "seed": "--seed",
    "use_vllm": "--use-vllm",
    "vllm_mode": "--use-vllm (colocated vLLM)",
    "bf16": "the GPU (bf16 where the card has it; --fp16 on cards without)",
    "fp16": "--fp16",
    "use_cpu": "the machine (no CUDA GPU: the CPU)",
    "report_to": "GRPO_USE_WANDB (TensorBoard always, wandb opt-in)",
}
_UNSET = object()  # the default of every field: tells a field given from one left out


def _field_parser(prog: str):
    """TRL's parser for GRPOConfig: every field's default is `_UNSET`, so that the fields
    named can be told from the rest, and a mistake is one line (exit 2), not argparse's
    usage text of some 200 fields."""
    from trl import GRPOConfig, TrlParser

    class OneLineParser(TrlParser):
        def error(self, message: str) -> NoReturn:
            usage_error(prog, message)

    parser = OneLineParser(GRPOConfig, prog=prog, allow_abbrev=False)
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
    if name not in FIELD_LIMITS or value is None:
        return
    low, high, strict = FIELD_LIMITS[name]
    problem = range_problem(value, low, high, strict=strict)
    if problem:
        raise ConfigError(f"{flag}: {problem}, got {value}")


def print_help(prog: str) -> None:
    """Every GRPOConfig field with TRL's own help text (train_grpo.py --help-grpo)."""
    _field_parser(prog).print_help()


def read_config_file(path: Path, own_flags: Mapping[str, bool]) -> list[str]:
    """A YAML file of settings (open-r1's recipes are such files) as command-line strings,
    to be read before the real command line, which therefore wins.

    Keys are this command's run flags (`own_flags`: flag name -> True for an on/off switch)
    or GRPOConfig fields, with `_` or `-`.
    """
    import yaml

    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config: no file at {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise ConfigError(f"--config {path}: not a readable YAML file{line}") from None
    if settings is None:
        return []
    if not isinstance(settings, dict):
        raise ConfigError(f"--config {path}: expected 'name: value' lines, one per setting")
    strings: list[str] = []
    for key, value in settings.items():
        name = str(key).replace("-", "_")
        switch = own_flags.get(name)
        if switch:  # --lora, --skip-eval, ...: on or off
            if not isinstance(value, bool):
                raise ConfigError(f"--config {path}: {key} takes true or false, got {value!r}")
            strings += [f"--{name.replace('_', '-')}"] if value else []
        elif value is None:
            continue
        elif switch is False:  # a run flag with a value
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            strings += [f"--{name.replace('_', '-')}", text]
        elif isinstance(value, list):
            strings += [f"--{name}", *map(str, value)]
        elif isinstance(value, dict):
            strings += [f"--{name}", json.dumps(value)]
        else:
            strings += [f"--{name}", str(value)]
    return strings
