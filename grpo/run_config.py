"""A training run's settings, resolved once: recipe, model, data sizes, GRPO settings,
hardware, plan.

`parse` reads the command line and the recipe it names (configs/*.yaml, grpo.profiles);
`resolve` turns them, the environment and the machine into one `RunConfig` before any
folder is claimed or model loaded. `train_grpo.py --dry-run` prints it, a run records it in
run.json, and notebook 05 gets the same through `resolve_run`. The command's own options
are a dataclass read by TRL's `TrlParser` (which loads neither torch nor transformers, so
their mistakes are answered at once); GRPOConfig fields are typed by TRL's parser too, and
the whole GRPOConfig is built once here, so what TRL refuses is refused before anything
is written.

The automatic choice of a training run (no `--profile`/`--config`, no model named):

* no CUDA GPU: the offline demonstration (configs/tiny.yaml: the tiny model on the toy
  task), even when the hub is reachable. The real model only when asked for (`--model
  real`, `GRPO_MODEL=real`, `--profile learner|real`), and a real-size model on a CPU only
  with `--allow-cpu`;
* a CUDA GPU: configs/learner.yaml (250 steps on Qwen2.5-0.5B-Instruct), its batch layout
  fitted to the card's memory; the full epoch only with `--profile real`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from argparse import ArgumentTypeError
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, get_type_hints

from trl import TrlParser  # TRL's own argument parser; it loads neither torch nor transformers

import netcheck
from grpo import grpo_fields
from grpo.cli import (
    MAX_SEED,
    ConfigError,
    UserError,
    output_folder,
    quiet_known_warnings,
    range_problem,
    usage_error,
)
from grpo.model_names import ADAPTER_CONFIG, EMBEDDED_MODELS, looks_like_path, requested_name
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
from grpo.profiles import (
    COMMAND_ONLY,
    CONFIGS,
    LEARNER,
    LORA,
    PROFILE_NAMES,
    PROFILES,
    TINY,
    Profile,
    RecipeError,
    load_recipe,
)
from grpo.run_dir import launch_world_size
from offline_demo.toy_task import max_distinct

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
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


def _help(text: str, **more: Any) -> dict[str, Any]:
    return {"metadata": {"help": text, **more}}


@dataclass
class RunArguments:
    """train_grpo.py's own options, parsed by TRL's `TrlParser` like TRL's scripts. Every
    other flag names a GRPOConfig field (grpo.grpo_fields). A recipe may set any of these
    but `COMMAND_ONLY` ones (grpo.profiles); the command line wins over it."""

    output_dir: str | None = field(default=None, **_help("the run folder (required)"))
    profile: str = field(
        default="auto",
        **_help(
            "configs/NAME.yaml; auto: learner on a CUDA GPU, the offline demo (tiny) without. "
            "--config FILE takes any recipe (configs/learner_lora.yaml is one)",
            choices=["auto", *PROFILE_NAMES],
        ),
    )
    model: str | None = field(
        default=None, **_help("auto, real, tiny, tiny-random, a folder or a model id")
    )
    model_source: str | None = field(
        default=None,
        **_help(
            "where a model id is downloaded from; None: $GRPO_MODEL_SOURCE, else the hub "
            "first when HF_ENDPOINT is set, else ModelScope first",
            choices=["modelscope", "hub"],
        ),
    )
    seed: int = 0
    train_size: int | None = field(default=None, **_help("prompts; None: the recipe's"))
    eval_size: int | None = field(default=None, **_help("questions; None: the recipe's"))
    skip_eval: bool = field(default=False, **_help("train only, no evaluation"))
    gpu_memory_gb: str | None = field(
        default=None,
        **_help("plan for this much GPU memory (GB), or auto; None: the visible GPU's"),
    )
    allow_cpu: bool = field(
        default=False,
        **_help("train a real-size model without a CUDA GPU (days; for checking, not learning)"),
    )
    fp16: bool = field(
        default=False,
        **_help("fp16 autocast for GPUs without bf16 (T4, V100): fp32 master weights"),
    )
    use_vllm: bool = field(default=False, **_help("generate with vLLM in the training process"))
    lora: bool = field(
        default=False,
        **_help(
            "train LoRA adapters instead of all weights; the rank, scale and learning rate "
            "not given come from configs/learner_lora.yaml"
        ),
    )
    lora_r: int | None = field(default=None, **_help("LoRA rank"))
    lora_alpha: int | None = field(default=None, **_help("LoRA scale"))
    lora_target_modules: str | None = field(
        default=None, **_help("comma-separated Qwen2 projections; None: all seven")
    )
    resume: bool = field(default=False, **_help("continue from the last checkpoint"))
    overwrite: bool = field(default=False, **_help("replace the run already in --output-dir"))
    dry_run: bool = field(default=False, **_help("print the run's settings and plan, and stop"))
    debug: bool = field(default=False, **_help("tracebacks for every error"))
    help_grpo: bool = field(default=False, **_help("list every GRPOConfig field (from TRL)"))

    def __post_init__(self) -> None:
        """Each value checked where it is parsed, from the command line or a recipe alike."""
        for name, kind in get_type_hints(RunArguments).items():  # a recipe's, as YAML typed it
            value = getattr(self, name)
            if kind is bool and not isinstance(value, bool):
                raise ConfigError(f"{flag(name)} takes true or false, got {value!r}")
            if kind == int | None and value is not None and type(value) is not int:
                raise ConfigError(f"{flag(name)} takes a whole number, got {value!r}")
        if self.help_grpo:
            return
        if self.output_dir is None:
            raise ConfigError("the following argument is required: --output-dir")
        try:
            self.output_dir = str(output_folder(self.output_dir))
        except ArgumentTypeError as error:
            raise ConfigError(f"--output-dir: {error}") from None
        for name, low, high in (
            ("seed", 0, MAX_SEED),
            ("train_size", 1, None),
            ("eval_size", 1, None),
            ("lora_r", 1, None),
            ("lora_alpha", 1, None),
        ):
            value = getattr(self, name)
            problem = None if value is None else range_problem(value, low, high)
            if problem:
                raise ConfigError(f"{flag(name)}: {problem}, got {value}")
        if self.gpu_memory_gb is not None and self.gpu_memory_gb.strip().lower() != "auto":
            try:
                size = float(self.gpu_memory_gb)
            except ValueError:
                size = math.nan
            if not math.isfinite(size) or size <= 0:
                raise ConfigError(
                    f"--gpu-memory-gb: a size in GB above 0, or auto; got {self.gpu_memory_gb}"
                )
        if self.lora_target_modules is not None:
            names = [name.strip() for name in str(self.lora_target_modules).split(",")]
            unknown = [name for name in names if name not in LORA_TARGETS]
            if unknown or not names[0]:
                raise ConfigError(
                    f"--lora-target-modules: unknown name(s) {unknown or names}; choose from "
                    + ", ".join(LORA_TARGETS)
                )
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite: choose one")

    @property
    def folder(self) -> Path:
        return Path(self.output_dir)


# What a recipe may set besides GRPOConfig fields: the command's own options.
RUN_FLAGS = frozenset(f.name for f in dataclasses.fields(RunArguments)) - COMMAND_ONLY


class _OneLineParser(TrlParser):
    """TRL's parser, but a mistake is one line naming the flag, not the usage text."""

    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, message)


def _pop_config(argv: list[str]) -> tuple[Path | None, list[str]]:
    """`--config FILE` taken out of `argv`: TrlParser reserves the name, and its own reading
    (yaml.safe_load) would expand aliases; grpo.profiles reads recipes defensively."""
    rest, config = [], None
    words = iter(argv)
    for word in words:
        if word == "--config" or word.startswith("--config="):
            if config is not None:
                raise ConfigError("--config given twice")
            value = word.partition("=")[2] if "=" in word else next(words, None)
            if not value:
                raise ConfigError("--config needs a recipe file")
            config = Path(value)
        else:
            rest.append(word)
    return config, rest


def parse(argv: list[str], prog: str, description: str = "") -> tuple[RunArguments, RunConfig]:
    """(arguments, RunConfig) for `argv`; a mistake exits with status 2, one line.

    Precedence, highest first: the command line, the card fitting (on a GPU, unless the
    batch is given on the command line), the recipe (and those it extends), TRL's defaults.
    The recipe is the one named (`--profile`, `--config`) or the automatic choice, read the
    same way either way.
    """
    parser = _OneLineParser(
        RunArguments,
        prog=prog,
        description=description,
        epilog="Any other flag names a field of TRL's GRPOConfig (default: the recipe's "
        "value), e.g. --max-steps N, --learning-rate LR, --num-generations G; --help-grpo "
        "lists them all.",
        allow_abbrev=False,
    )
    try:
        config, argv = _pop_config(list(argv))
        given, _ = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
        if given.help_grpo:
            grpo_fields.print_help(prog)
            raise SystemExit(0)
        named = None
        if config is not None and given.profile != "auto":
            raise ConfigError("--config and --profile: choose one")
        if config is not None:
            try:
                named = load_recipe(config, RUN_FLAGS)
            except RecipeError as error:
                raise ConfigError(f"--config: {error}") from None
        elif given.profile != "auto":
            named = PROFILES[given.profile]
        hardware = detect_hardware(given.gpu_memory_gb)
        recipe = named or choose_model_and_profile(requested_name(given.model), None, hardware)[1]
        try:  # the recipe's own options, checked alone so that the message names the file
            RunArguments(output_dir="recipe-check", **recipe.run_flags)
        except ConfigError as error:
            raise ConfigError(f"{display_path(recipe.path)}: {error}") from None
        parser.set_defaults_with_config(**recipe.run_flags)
        args, rest = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
        if args.folder.exists() and not args.folder.is_dir():
            raise ConfigError(f"--output-dir: {args.output_dir} is a file, not a folder")
        fields = grpo_fields.parse_fields(rest, prog)
        name = requested_name(args.model)
        if looks_like_path(name) and not Path(name).expanduser().is_dir():
            raise ConfigError(f"--model: no model folder at {name}")
        if looks_like_path(name) and (Path(name).expanduser() / ADAPTER_CONFIG).is_file():
            raise ConfigError(
                f"--model: {name} holds a LoRA adapter, not a model: train from its base model "
                f"(named in its {ADAPTER_CONFIG}), or measure it with evaluate_model.py --model"
            )
        model, recipe, why = choose_model_and_profile(name, named, hardware)
        recipe = typed_grpo(recipe, prog)
        run = resolve(args, fields, model, recipe, why, hardware)
    except ConfigError as error:
        usage_error(prog, str(error))
    return args, run


def typed_grpo(recipe: Profile, prog: str) -> Profile:
    """The recipe with its GRPOConfig fields typed and checked by TRL's parser, as if given
    on the command line (YAML reads `1e-5` as text, for one)."""
    fields = grpo_fields.parse_fields(grpo_fields.as_arguments(recipe.grpo), prog)
    return replace(recipe, grpo=MappingProxyType(fields))


def resolve_run(output_dir: str | Path, **flags: Any) -> RunConfig:
    """The run `train_grpo.py --output-dir OUTPUT_DIR --flag value ...` resolves to, for a
    notebook: the same recipes, the same automatic choices, the same card fitting.
    `flags` are the command's flags and GRPOConfig fields (True for a switch)."""
    argv = ["--output-dir", str(output_dir)]
    for name, value in flags.items():
        if value is True:
            argv.append(flag(name))
        elif value is not False and value is not None:
            argv += [flag(name), str(value)]
    return parse(argv, "resolve_run")[1]


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
    if isinstance(gpu_memory_gb, str):
        text = gpu_memory_gb.strip().lower()
        gpu_memory_gb = "auto" if text == "auto" else float(text)
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
            "recipe": display_path(self.profile.path),
            "dataset": self.profile.dataset,
            "train_size": self.train_size,
            "eval_size": None if self.skip_eval else self.eval_size,
            "seed": self.seed,
            "device": self.device,
            "grpo": dict(self.grpo),
            "lora": dict(self.lora) if self.lora else None,
            # GSM8K's source settings; the toy task reads none of them
            "data": {v: os.environ.get(v) for v in ("GRPO_DATA_SOURCE", "GSM8K_DIR")}
            if self.real_data
            else None,
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
    name: str, recipe: Profile | None, hardware: Hardware
) -> tuple[str, Profile, str]:
    """(model, recipe, why) by the rule in the module docstring; `recipe` None: automatic."""
    if recipe is not None:
        real = recipe.dataset == "gsm8k"
        if real and name in EMBEDDED_MODELS:
            raise ConfigError(
                f"the recipe {recipe.path.name} trains Qwen2.5 on GSM8K; the {name} model runs "
                "with --profile tiny (or leave --profile out)"
            )
        if name == "auto":
            name = "real" if real else "tiny"
        return name, recipe, f"the recipe {display_path(recipe.path)}"
    if name in EMBEDDED_MODELS or is_demo_model(name):
        return name, TINY, f"the {name} model runs the offline demo recipe (configs/tiny.yaml)"
    if hardware.gpu_memory_gb is None and name == "auto":
        return (
            "tiny",
            TINY,
            (
                "No CUDA GPU: the offline demo (configs/tiny.yaml: tiny model, toy task). For "
                "Qwen2.5 on GSM8K, ask for it: --profile learner (or --model real), on a GPU."
            ),
        )
    model = "real" if name == "auto" else name
    why = f"{hardware.describe()}: configs/learner.yaml (the full epoch: --profile real)"
    return model, LEARNER, why


def display_path(path: Path | None) -> str:
    """A recipe's path as a user would type it: relative to the repository when inside."""
    if path is None:
        return "(none)"
    try:
        return str(path.resolve().relative_to(CONFIGS.parent))
    except ValueError:
        return str(path)


def launcher_problem(grpo: Mapping[str, Any], processes: int) -> str | None:
    """What is wrong with the variables a launcher (accelerate launch, torchrun) sets, read
    the same way by --dry-run and the run: a stray one would crash the run after its first
    evaluation, or change its precision behind run.json's back. `processes`: WORLD_SIZE,
    read once by grpo.run_dir.launch_world_size."""
    for name in ("LOCAL_RANK", "RANK", "MASTER_PORT"):
        text = os.environ.get(name, "").strip()
        if text and not text.isdigit():
            return f"{name}={text!r} is not a number: unset it (launchers set it themselves)"
    stray = [v for v in ("LOCAL_RANK", "RANK") if os.environ.get(v, "").strip() not in ("", "0")]
    if processes == 1 and stray:
        return (
            f"{stray[0]}={os.environ[stray[0]].strip()} without WORLD_SIZE: a launcher sets "
            "both (docs/scaling.md); unset it"
        )
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v, "").strip()]
    if processes > 1 and missing:
        return (
            f"WORLD_SIZE={processes} but {' and '.join(missing)} unset: start the run with "
            "`accelerate launch` or `torchrun` (docs/scaling.md), or unset WORLD_SIZE"
        )
    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION", "").strip().lower()
    planned = "bf16" if grpo.get("bf16") else "fp16" if grpo.get("fp16") else "no"
    if mixed and mixed != planned:
        return (
            f"ACCELERATE_MIXED_PRECISION={mixed} but this run plans {planned} (bf16 where the "
            "GPU has it, --fp16 when asked): unset it"
        )
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").strip().lower()
    if deepspeed in ("1", "true", "yes") and processes == 1:
        return (
            "ACCELERATE_USE_DEEPSPEED is set outside a launch: start DeepSpeed runs with "
            "`accelerate launch --config_file configs/deepspeed_zero2.yaml` (docs/scaling.md)"
        )
    return None


def trl_problem(grpo: Mapping[str, Any]) -> str | None:
    """What TRL's own GRPOConfig refuses in `grpo` (batch arithmetic and the like), found
    before any folder is claimed. A plan for a GPU that torch does not see here (planned
    with --gpu-memory-gb) is checked with its precision off, which needs that GPU; a run
    on such a machine is refused later, in train_grpo.check_device."""
    import torch
    from trl import GRPOConfig

    settings = dict(grpo)
    if not grpo.get("use_cpu") and not torch.cuda.is_available():
        settings.update(bf16=False, fp16=False, use_cpu=True)
    try:
        with warnings.catch_warnings():
            quiet_known_warnings()
            GRPOConfig(**settings)
    except (ValueError, TypeError, NotImplementedError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"TRL's GRPOConfig refuses these settings: {first[:300]}"
    return None


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


def _user_overrides(args: RunArguments, fields: Mapping[str, Any]) -> dict[str, Any]:
    overrides = dict(fields)
    if "vllm_gpu_memory_utilization" in overrides and not args.use_vllm:
        raise ConfigError("--vllm-gpu-memory-utilization without --use-vllm has no effect")
    if args.use_vllm:
        overrides.update(use_vllm=True, vllm_mode="colocate")
    return overrides


LORA_OPTIONS = ("lora_r", "lora_alpha", "lora_target_modules")


def _lora(args: RunArguments, profile: Profile) -> dict[str, Any] | None:
    """The adapters' settings, or None for a full fine-tune. What is not given comes from
    configs/learner_lora.yaml, the one place for LoRA's defaults (its learning rate too)."""
    given = [n for n in LORA_OPTIONS if getattr(args, n) != profile.run_flags.get(n)]
    if given and not args.lora:
        raise ConfigError(f"{', '.join(map(flag, given))} without --lora has no effect: add --lora")
    if not args.lora:
        return None
    defaults = LORA.run_flags
    targets = args.lora_target_modules or defaults.get("lora_target_modules")
    return {
        "r": args.lora_r or defaults["lora_r"],
        "alpha": args.lora_alpha or defaults["lora_alpha"],
        "targets": [t.strip() for t in targets.split(",")] if targets else list(LORA_TARGETS),
    }


def resolve(
    args: RunArguments,
    fields: Mapping[str, Any],
    model: str,
    profile: Profile,
    why: str,
    hardware: Hardware,
) -> RunConfig:
    """The one resolution of a run's settings (see the module doc) from the command's own
    options (`args`), the GRPOConfig fields it named (`fields`, see grpo.grpo_fields) and
    the model and recipe chosen for it (`choose_model_and_profile`); raises ConfigError."""
    overrides = _user_overrides(args, fields)
    lora = _lora(args, profile)
    grpo = grpo_settings(profile, args.folder / CHECKPOINTS, hardware, args.fp16, args.seed)
    if lora and "learning_rate" not in fields:  # an adapter's own step size
        grpo["learning_rate"] = LORA.grpo["learning_rate"]
    grpo.update(overrides)
    try:
        processes = launch_world_size()
    except UserError as error:
        raise ConfigError(str(error)) from None
    train_size = args.train_size or profile.train_size
    eval_size = args.eval_size or profile.evaluation.size
    if profile.dataset == "toy":  # sizes bounded by what exists, not by memory
        for size, split, what in (
            (train_size, "train", "training"),
            (eval_size, "eval", "held-out"),
        ):
            if size > max_distinct(split):
                raise ConfigError(
                    f"--{split}-size {size:,}: the toy task has only "
                    f"{max_distinct(split):,} distinct {what} questions"
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
            lora_rank=lora["r"] if lora else LORA.run_flags["lora_r"],
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
    problem = launcher_problem(grpo, processes) or trl_problem(grpo)
    if problem:
        raise ConfigError(problem)
    device = "cpu" if hardware.gpu_memory_gb is None else "cuda"
    refusal = cpu_problem(shape, plan.steps, args.allow_cpu) if device == "cpu" else None
    notes = (
        why,
        f"{plan.steps:,} training steps, estimated "
        f"{duration(plan.steps * plan.seconds_per_step)} ({plan.steps:,} x "
        f"{plan.seconds_per_step:g} s: {plan.seconds_source}); loading and the two "
        "evaluations come on top.",
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
