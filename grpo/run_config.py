"""A run's settings, resolved once: model, profile, data sizes, GRPO settings, hardware, plan.

`resolve` turns the command line, the environment and the machine into one `RunConfig`
before anything heavy loads. `train_grpo.py --dry-run` prints it; a run records it in
run.json; training, evaluation and the plan only read it. Standard library only, so a
mistake is answered in well under a second.

The automatic choice (no `--profile`, no model named):

* no CUDA GPU: the offline demonstration (the tiny model on the toy task), even when the
  hub is reachable. The real model only when asked for (`--model real`, `GRPO_MODEL=real`,
  `--profile learner|real`), and a real-size model on a CPU only with `--allow-cpu`;
* a CUDA GPU: the `learner` profile (250 steps on Qwen2.5-0.5B-Instruct), fitted to the
  card's memory; the full epoch only with `--profile real`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netcheck
from grpo.cli import ConfigError, UserError, comma_list, positive_float, positive_int, random_seed
from grpo.model_names import EMBEDDED_MODELS, looks_like_path, requested_name
from grpo.plan import (
    DEFAULT_VLLM_UTILIZATION,
    QWEN2_5_0_5B,
    SECONDS_PER_STEP,
    TINY_SHAPE,
    ModelShape,
    Plan,
    has_bf16,
    make_plan,
    visible_gpu,
)
from grpo.profiles import LEARNER, PROFILES, REAL_MODEL_PROFILES, TINY, Profile
from grpo.run_dir import launch_world_size
from offline_demo.toy_task import max_distinct

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_DEFAULTS = {"r": 16, "alpha": 32}
CHECKPOINTS = "checkpoints"
# A model of this many parameters is "real-size": training it on a CPU takes days.
REAL_SIZE_PARAMETERS = 100_000_000
# Fields that change only what is saved, printed or logged, or where (a run folder may be
# moved): --resume accepts other values.
BOOKKEEPING_FIELDS = frozenset(
    {"save_steps", "save_total_limit", "logging_steps", "report_to", "output_dir"}
)


def flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def gpu_memory(text: str) -> float | str:
    """An argparse type: GB of GPU memory (greater than 0), or 'auto'."""
    return "auto" if text.strip().lower() == "auto" else positive_float(text)


def add_arguments(
    parser: argparse.ArgumentParser, profiles: Mapping[str, Profile]
) -> dict[str, bool]:
    """The flags that decide a run besides GRPOConfig's fields (grpo.grpo_fields), which the
    command line adds to its own folder and safety flags. Returns each one's name and
    whether it is an on/off switch: what a --config file may set."""
    run = parser.add_argument_group("the run (the rest: GRPOConfig fields, see --help-grpo)")
    lora = parser.add_argument_group("LoRA (peft): train small adapters instead of all weights")
    actions = [
        run.add_argument("--model", help="auto, real, tiny, tiny-random, a folder or a model id"),
        run.add_argument(
            "--profile",
            choices=["auto", *profiles],
            default="auto",
            help="auto: learner on a CUDA GPU, the offline demo (tiny) without one",
        ),
        run.add_argument("--seed", type=random_seed, default=0),
        run.add_argument("--train-size", type=positive_int, help="prompts (default: profile)"),
        run.add_argument("--eval-size", type=positive_int, help="questions (default: profile)"),
        run.add_argument("--skip-eval", action="store_true", help="train only, no evaluation"),
        run.add_argument(
            "--gpu-memory-gb",
            type=gpu_memory,
            help="plan for this much GPU memory (default: the visible GPU's, via nvidia-smi)",
        ),
        run.add_argument(
            "--allow-cpu",
            action="store_true",
            help="train a real-size model without a CUDA GPU (days; for checking, not learning)",
        ),
        run.add_argument(
            "--fp16",
            action="store_true",
            help="fp16 autocast for GPUs without bf16 (T4, V100): fp32 master weights, "
            "loss scaling",
        ),
        run.add_argument(
            "--use-vllm", action="store_true", help="generate with vLLM in the training process"
        ),
        lora.add_argument("--lora", action="store_true"),
        lora.add_argument(
            "--lora-r", type=positive_int, help=f"rank (default {LORA_DEFAULTS['r']})"
        ),
        lora.add_argument(
            "--lora-alpha", type=positive_int, help=f"scale (default {LORA_DEFAULTS['alpha']})"
        ),
        lora.add_argument(
            "--lora-target-modules",
            type=comma_list(LORA_TARGETS),
            help="comma-separated Qwen2 projections (default: all seven)",
        ),
    ]
    return {action.dest: action.nargs == 0 for action in actions}


@dataclass(frozen=True)
class Hardware:
    """The GPU a run will use (or is planned for), read without importing torch."""

    gpu_memory_gb: float | None  # None: no CUDA GPU
    bf16: bool
    visible: bool  # False: planned for a card given with --gpu-memory-gb, none seen here

    def describe(self) -> str:
        if self.gpu_memory_gb is None:
            return "no CUDA GPU visible (nvidia-smi)"
        where = "visible GPU" if self.visible else "planned GPU (--gpu-memory-gb; none seen here)"
        return f"{where} of {self.gpu_memory_gb:.0f} GB, " + ("bf16" if self.bf16 else "no bf16")


def detect_hardware(gpu_memory_gb: float | str | None = None) -> Hardware:
    """The visible GPU, or the one named by `gpu_memory_gb` when planning from elsewhere.

    A size given without a visible GPU is planned like the README's card table: bf16 above
    16 GB (L4, A10G, A100, H100 have it), none at 16 GB (a T4 has not).
    """
    try:
        gpu = visible_gpu()
    except ValueError as error:  # nvidia-smi's answer is nonsense: plan nothing from it
        raise ConfigError(f"{error}: check the driver (nvidia-smi)") from None
    if gpu is not None:
        size = gpu[0] if gpu_memory_gb in (None, "auto") else float(gpu_memory_gb)
        return Hardware(size, bf16=gpu[1], visible=True)
    if gpu_memory_gb == "auto":
        raise ConfigError("--gpu-memory-gb auto, but nvidia-smi shows no GPU: give a size in GB")
    if gpu_memory_gb is not None:
        size = float(gpu_memory_gb)
        return Hardware(size, bf16=has_bf16(memory_gb=size), visible=False)
    return Hardware(None, bf16=False, visible=False)


def report_to() -> list[str]:
    """TensorBoard always (local files, no account); wandb only when the user opts in with
    GRPO_USE_WANDB (the key comes from WANDB_API_KEY or `wandb login`, never from code)."""
    return ["tensorboard", "wandb"] if netcheck.env_flag("GRPO_USE_WANDB") else ["tensorboard"]


def model_shape(model: str) -> ModelShape | None:
    """The shape of `model` if it is known before anything downloads: the real model's, or a
    local folder's config.json."""
    if model == "real":
        return QWEN2_5_0_5B
    config = Path(model).expanduser() / "config.json"
    if not config.is_file():
        return None
    try:
        return ModelShape.from_config(config)
    except ValueError:  # from_config's one error: the loader reports such a folder itself
        return None


def is_demo_model(model: str) -> bool:
    """True for a folder holding the offline demo's tiny Qwen2 (its body's shape; the
    vocabulary is the locally trained tokenizer's), which trains on the toy task."""
    shape = model_shape(model)
    body = ("hidden", "layers", "intermediate", "heads", "kv_heads")
    return shape is not None and all(getattr(shape, n) == getattr(TINY_SHAPE, n) for n in body)


def duration(seconds: float) -> str:
    """`seconds` as minutes below an hour, else hours: how a learner plans a session."""
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def cpu_problem(shape: ModelShape | None, steps: int, allow_cpu: bool) -> str | None:
    """Why a real-size model must not train on this CPU-only machine, or None."""
    if allow_cpu or shape is None or shape.parameters() < REAL_SIZE_PARAMETERS:
        return None
    return (
        f"{shape.name} has {shape.parameters() / 1e6:.0f}M parameters and this machine has no "
        f"CUDA GPU: {steps:,} GRPO steps would take days on a CPU (a T4 GPU is estimated at "
        f"{SECONDS_PER_STEP['fp32']:g} s per step, see --dry-run). Run it on a GPU, use "
        "--model tiny for the offline demo, or pass --allow-cpu to train here anyway."
    )


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one run, resolved; `settings()` is what run.json records."""

    model: str  # "tiny", "tiny-random", "real", a folder or a model id
    profile: Profile
    train_size: int | None  # None: the whole split
    eval_size: int | None
    skip_eval: bool
    seed: int
    grpo: Mapping[str, Any]  # every keyword GRPOConfig receives
    lora: Mapping[str, Any] | None
    device: str  # "cuda" or "cpu"
    allow_cpu: bool
    hardware: Hardware
    plan: Plan = field(compare=False)
    notes: tuple[str, ...] = ()  # one line per automatic decision
    refusal: str | None = None  # why this machine must not start the run (--dry-run shows it)

    @property
    def real_data(self) -> bool:
        """True when the run trains on GSM8K, which must then be the full data set."""
        return self.profile.dataset == "gsm8k"

    def settings(self) -> dict[str, Any]:
        """The resolved settings as plain JSON data (run.json, --dry-run, --resume)."""
        return {
            "model": self.model,
            "profile": self.profile.name,
            "dataset": self.profile.dataset,
            "train_size": self.train_size,
            "eval_size": None if self.skip_eval else self.eval_size,
            "seed": self.seed,
            "device": self.device,
            "grpo": dict(self.grpo),
            "lora": dict(self.lora) if self.lora else None,
            "data": {v: os.environ.get(v) for v in ("GRPO_DATA_SOURCE", "GSM8K_DIR")},
        }

    def training_settings(self) -> dict[str, Any]:
        """What decides the training itself: --resume continues a run only if these match."""
        settings = self.settings()
        settings["grpo"] = {
            k: v for k, v in settings["grpo"].items() if k not in BOOKKEEPING_FIELDS
        }
        return settings

    def render(self) -> str:
        """The run for a terminal or a notebook cell: the decisions, the settings, the plan."""
        lines = [*self.notes, "Settings (run.json records these):"]
        lines.append(json.dumps(self.settings(), indent=1, sort_keys=True))
        return "\n".join([*lines, self.plan.render(str(Path(self.grpo["output_dir"]).parent))])


def choose_model_and_profile(
    name: str, profile: str, hardware: Hardware
) -> tuple[str, Profile, str]:
    """(model, profile, why) by the rule in the module docstring."""
    if profile != "auto":
        chosen = PROFILES[profile]
        if chosen.name in REAL_MODEL_PROFILES and name in EMBEDDED_MODELS:
            raise ConfigError(
                f"--profile {profile} trains Qwen2.5 on GSM8K; the {name} model runs with "
                "--profile tiny (or leave --profile out)"
            )
        if name == "auto":
            name = "real" if chosen.name in REAL_MODEL_PROFILES else "tiny"
        return name, chosen, f"--profile {profile}"
    if name in EMBEDDED_MODELS or is_demo_model(name):
        return name, TINY, f"the {name} model runs the offline demo profile"
    if hardware.gpu_memory_gb is None and name == "auto":
        return (
            "tiny",
            TINY,
            (
                "No CUDA GPU: the offline demo (tiny model, toy task). For Qwen2.5 on GSM8K, "
                "ask for it: --profile learner (or --model real), on a GPU."
            ),
        )
    model = "real" if name == "auto" else name
    why = f"{hardware.describe()}: the learner profile (the full epoch: --profile real)"
    return model, LEARNER, why


def grpo_settings(
    profile: Profile, output_dir: Path, hardware: Hardware, fp16: bool = False, seed: int = 0
) -> dict[str, Any]:
    """The profile's GRPOConfig keywords with the machine's filled in: where checkpoints go,
    the seed, tracking, and autocast over fp32 master weights (bf16 where the card has it,
    fp16 when asked for on a card without)."""
    if hardware.gpu_memory_gb is None and fp16:
        raise ConfigError("--fp16 needs a CUDA GPU (it is for T4/V100-class cards)")
    if fp16 and hardware.bf16:
        raise ConfigError("--fp16: this GPU has bf16, which needs no loss scaling: leave it out")
    return profile.with_grpo(
        output_dir=str(output_dir),
        seed=seed,
        report_to=report_to(),
        bf16=hardware.bf16 and not fp16,
        fp16=fp16,
        use_cpu=hardware.gpu_memory_gb is None,
    )


def _user_overrides(args: argparse.Namespace, fields: Mapping[str, Any]) -> dict[str, Any]:
    overrides = dict(fields)
    if "vllm_gpu_memory_utilization" in overrides and not args.use_vllm:
        raise ConfigError("--vllm-gpu-memory-utilization without --use-vllm has no effect")
    if args.use_vllm:
        overrides.update(use_vllm=True, vllm_mode="colocate")
    return overrides


def _lora(args: argparse.Namespace) -> dict[str, Any] | None:
    options = [flag(n) for n in ("lora_r", "lora_alpha", "lora_target_modules") if getattr(args, n)]
    if options and not args.lora:
        raise ConfigError(f"{', '.join(options)} without --lora has no effect: add --lora")
    if not args.lora:
        return None
    return {
        "r": args.lora_r or LORA_DEFAULTS["r"],
        "alpha": args.lora_alpha or LORA_DEFAULTS["alpha"],
        "targets": list(args.lora_target_modules or LORA_TARGETS),
    }


def resolve(
    args: argparse.Namespace,
    fields: Mapping[str, Any],
    output_dir: Path,
    hardware: Hardware | None = None,
) -> RunConfig:
    """The one resolution of a run's settings (see the module doc) from the command line's
    own flags (`args`) and the GRPOConfig fields it named (`fields`, see grpo.grpo_fields);
    raises ConfigError."""
    hardware = hardware or detect_hardware(args.gpu_memory_gb)
    name = requested_name(args.model)
    if looks_like_path(name) and not Path(name).expanduser().is_dir():
        raise ConfigError(f"--model: no model folder at {name}")
    model, profile, why = choose_model_and_profile(name, args.profile, hardware)
    overrides = _user_overrides(args, fields)
    lora = _lora(args)
    grpo = grpo_settings(profile, output_dir / CHECKPOINTS, hardware, args.fp16, args.seed)
    grpo.update(overrides)
    try:
        processes = launch_world_size()
    except UserError as error:
        raise ConfigError(str(error)) from None
    train_size = args.train_size or profile.train_size
    eval_size = args.eval_size or profile.evaluation.size
    if profile.dataset == "toy" and eval_size > max_distinct("eval"):
        raise ConfigError(
            f"--eval-size {eval_size}: the toy task has only {max_distinct('eval'):,} distinct "
            "held-out questions"
        )
    shape = model_shape(model) if profile.dataset == "gsm8k" else None
    try:
        plan = make_plan(
            profile,
            overrides,
            hardware.gpu_memory_gb,
            bf16=grpo["bf16"],
            fp16=grpo["fp16"],
            lora=lora is not None,
            lora_rank=(lora or LORA_DEFAULTS)["r"],
            use_vllm=bool(grpo.get("use_vllm")),
            vllm_gpu_memory_utilization=grpo.get(
                "vllm_gpu_memory_utilization", DEFAULT_VLLM_UTILIZATION
            ),
            train_rows=train_size,
            shape=shape,
            processes=processes,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    user_set_batch = {"per_device_train_batch_size", "gradient_accumulation_steps"} & set(overrides)
    if hardware.gpu_memory_gb is not None and not user_set_batch:
        if plan.lora and lora is None:
            raise ConfigError(f"{plan.advice} Add --lora (--dry-run shows the plan).")
        grpo.update(
            per_device_train_batch_size=plan.micro_batch,
            gradient_accumulation_steps=plan.accumulation,
            gradient_checkpointing=plan.gradient_checkpointing,
        )
    if plan.fits is False:
        raise ConfigError(
            f"the estimated peak memory, {plan.memory.total / 1e9:.1f} GB, does not fit "
            f"{hardware.gpu_memory_gb:g} GB (--dry-run shows the plan)"
        )
    device = "cpu" if hardware.gpu_memory_gb is None else "cuda"
    refusal = cpu_problem(shape, plan.steps, args.allow_cpu) if device == "cpu" else None
    notes = (
        why,
        f"{plan.steps:,} steps, estimated {duration(plan.steps * plan.seconds_per_step)} "
        f"({plan.steps:,} x {plan.seconds_per_step:g} s: {plan.seconds_source}).",
    )
    return RunConfig(
        model=model,
        profile=profile,
        train_size=train_size,
        eval_size=eval_size,
        skip_eval=args.skip_eval,
        seed=args.seed,
        grpo=grpo,
        lora=lora,
        device=device,
        allow_cpu=args.allow_cpu,
        hardware=hardware,
        plan=plan,
        notes=notes,
        refusal=refusal,
    )
