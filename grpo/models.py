"""Choosing and loading models: one place for the name, the device and the dtype.

One setting names the model, the environment variable ``GRPO_MODEL`` (or a `name` argument):

* unset or ``auto``: decided by what the caller does with the model.
  - Looking at it (generating, as notebooks 01-03 do): `choose_inference_model` takes
    Qwen2.5-0.5B-Instruct whenever it can be had (the ModelScope or Hugging Face cache,
    then ModelScope, then the hub) on CUDA, MPS or the CPU; only when no source has it, the
    embedded ``tiny`` model, with one line saying why and what to do.
  - `resolve_model` (`load_policy`, both command lines): the training rule of
    `grpo.run_config.choose_model_and_profile`: Qwen2.5 on a CUDA GPU, the embedded ``tiny``
    model without one.
* ``real``: Qwen/Qwen2.5-0.5B-Instruct, or an error naming the sources tried;
* ``tiny``: the embedded demo model, warm-started on the toy task (see `offline_demo`);
* ``tiny-random``: the same tiny Qwen2 with random weights, before any training;
* anything else: a local folder, or a model id on ModelScope / the Hugging Face hub.

Training always keeps fp32 master weights (bf16 only as autocast, set in `GRPOConfig`):
at a learning rate of 5e-6 most AdamW updates are smaller than half a bf16 step and
would round away. Inference-only loads use bf16 on GPUs that have it, float32 elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

import netcheck
from data import short_reason
from grpo.model_names import ADAPTER_CONFIG, MODEL_ENV_VAR, looks_like_path, requested_name
from grpo.plan import has_bf16
from grpo.run_config import choose_model_and_profile, detect_hardware
from offline_demo.cache import cache_root
from offline_demo.tiny_model import ENDOFTEXT, tiny_random_dir, tiny_random_path
from offline_demo.warm_start import warm_start_dir, warm_start_path

REAL_MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"
OFFLINE_WAYS_OUT = (
    f"To run without it, use the embedded demo model (--model tiny, or {MODEL_ENV_VAR}=tiny) "
    "or pass a local folder that holds the downloaded model."
)


class ModelUnavailable(RuntimeError):
    """The requested model could not be found or downloaded (a user problem, not a bug)."""

    is_user_error = True  # grpo.cli.run_main shows it as one line


class ModelProblem(ModelUnavailable):
    """The model was found but cannot be used: not a model folder, damaged files, an
    adapter without its base (a user problem, not a bug)."""


def _download_attempts(model_id: str) -> list[tuple[str, Callable[[], str] | None, str]]:
    """(source, how to fetch, why skipped) in the order tried: local caches cost no network."""
    from huggingface_hub import snapshot_download as from_hf
    from modelscope import snapshot_download as from_modelscope

    ms_ok, hf_ok = netcheck.modelscope_reachable(), netcheck.hub_reachable()
    return [
        ("ModelScope cache", lambda: from_modelscope(model_id, local_files_only=True), ""),
        ("Hugging Face cache", lambda: from_hf(model_id, local_files_only=True), ""),
        (
            "ModelScope",
            (lambda: from_modelscope(model_id)) if ms_ok else None,
            f"{netcheck.modelscope_endpoint()} unreachable",
        ),
        (
            "Hugging Face hub",
            (lambda: from_hf(model_id)) if hf_ok else None,
            f"{netcheck.hub_endpoint()} unreachable or offline mode",
        ),
    ]


def download(model_id: str) -> Path:
    """A local snapshot of `model_id`, from the first source that has it.

    ModelScope comes before the Hugging Face hub because most of this tutorial's learners
    are in mainland China, where it is the faster (often the only) choice.
    """
    failures: list[str] = []
    for source, fetch, why_skipped in _download_attempts(model_id):
        if fetch is None:
            failures.append(f"{source}: {why_skipped}")
            continue
        try:
            return Path(fetch())
        except Exception as error:  # any failure means: try the next source
            reason = "not found" if source.endswith("cache") else f"{type(error).__name__}: {error}"
            failures.append(f"{source}: {reason[:200]}")
    raise ModelUnavailable(
        f"Could not get {model_id!r}. Tried: " + "; ".join(failures) + ". " + OFFLINE_WAYS_OUT
    )


def resolve_model(name: str | None = None, require_real: bool = False) -> Path:
    """The local folder of the model named by `name` or $GRPO_MODEL (see the module doc).

    `require_real`: the caller trains on GSM8K, so an embedded model is refused.
    """
    name = requested_name(name)
    if name == "auto":  # the command line's rule: the real model on a CUDA GPU, else tiny
        name, _, _ = choose_model_and_profile(name, None, detect_hardware())
    if name in ("tiny", "tiny-random") and require_real:
        raise ModelUnavailable(f"the {name} model is for the toy task, not GSM8K")
    if name == "tiny":
        return warm_start_path()
    if name == "tiny-random":
        return tiny_random_path()
    if looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ModelUnavailable(f"Model folder not found: {path}")
        return path
    return download(REAL_MODEL_ID if name == "real" else name)


@dataclass(frozen=True)
class InferenceChoice:
    """The model a cell that only looks at a model loads, where, in what dtype, and why."""

    path: Path
    device: torch.device
    dtype: torch.dtype
    why: str


def inference_device() -> torch.device:
    """The fastest device here for generation: a CUDA GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_inference_model(name: str | None = None) -> InferenceChoice:
    """The model, device and dtype for looking at a model (generation, evaluation, no
    training), with one printed line saying which and why.

    With ``auto`` (the default) Qwen2.5-0.5B-Instruct is taken from the first source that
    has it, on any device: inference on a 0.5B model takes seconds on a CPU. Only when none
    has it does the embedded tiny model load. Any other name means what `resolve_model`
    says, errors included. Training keeps its own rule (see the module doc).
    """
    device = inference_device()
    requested = requested_name(name)
    if requested == "auto":
        try:
            path = download(REAL_MODEL_ID)
            why = "the real model (looking at a model needs no GPU)"
        except ModelUnavailable as error:
            path = warm_start_path()
            why = (
                f"{REAL_MODEL_ID} could not be had ({_first_sources(error)}): the tiny demo "
                "model instead. To see Qwen: connect to ModelScope or the hub, or set "
                f"{MODEL_ENV_VAR} to a folder holding the downloaded model."
            )
    else:
        path = resolve_model(requested)
        why = f"{MODEL_ENV_VAR}={requested}" if name is None else f"asked for {requested}"
    dtype = inference_dtype(device)
    print(f"[models] {describe(path)} on {device} in {str(dtype).removeprefix('torch.')}: {why}")
    return InferenceChoice(path=path, device=device, dtype=dtype, why=why)


def _first_sources(error: ModelUnavailable) -> str:
    """The "Tried: ..." part of `download`'s error, without its ways out (said separately)."""
    text = str(error)
    tried = text.partition("Tried: ")[2] or text
    return tried.partition(". " + OFFLINE_WAYS_OUT)[0].rstrip(".")


def is_embedded(path: Path) -> bool:
    """True for the two tiny models (random or warm-started): the offline demo's."""
    return Path(path).resolve() in {warm_start_dir().resolve(), tiny_random_dir().resolve()}


def choose_device(requested: str | None = None) -> torch.device:
    """`requested` if the hardware has it, else the best available, with a notice on fallback."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        print(f"[models] {requested!r} was requested but is not available here: using the CPU.")
        return torch.device("cpu")
    return device


def gpu_supports_bf16() -> bool:
    """True when torch's CUDA GPU has native bf16, by `grpo.plan.has_bf16` (the rule the
    run's plan applies to nvidia-smi's answer): Colab's free T4 only emulates it."""
    if not torch.cuda.is_available():
        return False
    major, minor = torch.cuda.get_device_capability()
    return has_bf16(compute_capability=major + minor / 10)


def inference_dtype(device: torch.device) -> torch.dtype:
    """bf16 for evaluation on GPUs that have it (half the memory), else float32.

    CPUs get float32: bf16 matmuls on most CPUs are slower and less precise than fp32.
    """
    return torch.bfloat16 if device.type == "cuda" and gpu_supports_bf16() else torch.float32


def load_dtype(device: torch.device, for_training: bool) -> torch.dtype:
    """float32 for training on any device (fp32 master weights: bf16 is the trainer's
    autocast, see the module doc); `inference_dtype` for evaluation-only loads."""
    return torch.float32 if for_training else inference_dtype(device)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The model's tokenizer, set up for batched generation.

    Decoder-only models continue the text at the right end of each row, so batches are padded
    on the left. The pad token stays Qwen's own `<|endoftext|>`, distinct from the
    end-of-turn `<|im_end|>`, so padding can never be mistaken for a real stop.
    """
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        raise ValueError(f"The tokenizer at {path} has no pad token; Qwen's is {ENDOFTEXT!r}.")
    return tokenizer


def load_policy(
    name: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    for_training: bool = False,
    require_real: bool = False,
):
    """(model, tokenizer, folder): the one loader behind every notebook and command line.

    For training the weights stay float32 whatever the GPU (mixed precision is the
    trainer's job); for evaluation they are bf16 where the GPU supports it.
    """
    path = name if isinstance(name, Path) else resolve_model(name, require_real=require_real)
    target = device if isinstance(device, torch.device) else choose_device(device)
    dtype = load_dtype(target, for_training)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(target)
    print(f"[models] Loaded {describe(path)} on {target} in {str(dtype).removeprefix('torch.')}.")
    return model, load_tokenizer(path), path


def describe(path: Path) -> str:
    """A short, machine-independent name for a model folder (no home directory in logs)."""
    path = Path(path)
    if path.resolve() == warm_start_dir().resolve():
        return "tiny (the embedded demo model, warm-started)"
    if path.is_relative_to(cache_root()):
        return f"the embedded {path.name} model"
    if path.parent.name == "snapshots":  # Hugging Face cache: models--Org--Name/snapshots/<hash>
        return path.parent.parent.name.removeprefix("models--").replace("--", "/")
    return path.name.replace("___", ".")  # ModelScope escapes the dots in folder names


@dataclass(frozen=True)
class EvaluationModel:
    """What `evaluate_model.py --model` named, resolved: a base model folder, and the LoRA
    adapter to merge into it (or None)."""

    base: Path
    adapter: Path | None


def _adapter_base(adapter: Path) -> str:
    """The base model named in `adapter`'s adapter_config.json; ModelProblem if none is."""
    try:
        config = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    except (OSError, ValueError) as error:
        raise ModelProblem(f"unreadable {adapter / ADAPTER_CONFIG}: {error}") from None
    if not isinstance(base, str) or not base.strip():
        raise ModelProblem(
            f"{adapter / ADAPTER_CONFIG} names no base model (base_model_name_or_path is "
            f"{base!r}): pass it with --model BASE --adapter {adapter}"
        )
    return base


def check_model_folder(path: Path) -> None:
    """ModelProblem unless `path` looks like a full model folder: a config.json that parses,
    and neither a run folder nor a bare LoRA adapter (each said with its way out)."""
    if (path / "run.json").is_file() and (path / "final").is_dir():
        raise ModelProblem(f"{path} is a run folder, not a model: pass its model, {path / 'final'}")
    if (path / ADAPTER_CONFIG).is_file():
        raise ModelProblem(
            f"{path} is a LoRA adapter, not a base model: pass it as --adapter, or as --model "
            "alone (its base is read from its adapter_config.json)"
        )
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelProblem(f"{path} holds no model (no config.json)") from None
    except (OSError, ValueError) as error:
        raise ModelProblem(f"{path / 'config.json'} is unreadable: {error}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelProblem(f"{path / 'config.json'} is not a model's config (no model_type)")


def resolve_for_evaluation(name: str | None, adapter: Path | None = None) -> EvaluationModel:
    """The base model and adapter that `name` (and `adapter`) mean, checked, no weights read.

    `train_grpo.py --lora` saves only the adapter in final/, with its base model's location
    in adapter_config.json, so naming the adapter folder is enough; `adapter` is for when
    that location is wrong here (an adapter trained on another machine).
    """
    name = requested_name(name)
    if adapter is None and looks_like_path(name):
        folder = Path(name).expanduser()
        if (folder / ADAPTER_CONFIG).is_file():
            name, adapter = _adapter_base(folder), folder
    if adapter is not None and not (adapter / ADAPTER_CONFIG).is_file():
        raise ModelProblem(f"no LoRA adapter in {adapter}: no {ADAPTER_CONFIG}")
    try:
        base = resolve_model(name)
    except ModelUnavailable as error:
        if adapter is None:
            raise
        raise type(error)(
            f"{error} (the base model of the adapter {adapter}; pass another with "
            f"--model BASE --adapter {adapter})"
        ) from None
    check_model_folder(base)
    return EvaluationModel(base=base, adapter=adapter)


def load_for_evaluation(
    model: EvaluationModel, device: torch.device, dtype: torch.dtype | None = None
):
    """(model, tokenizer, dtype) ready for greedy generation: weights in `dtype`, by default
    `load_dtype(device, for_training=False)` (bf16 on GPUs that have it, else float32), the
    rule train_grpo.py's before/after evaluation follows too. An adapter is merged into
    the base weights, so generation runs at the base model's speed. ModelProblem for files
    that do not load (truncated, corrupt, an adapter made for another base)."""
    from safetensors import SafetensorError

    dtype = dtype or load_dtype(device, for_training=False)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(model.base, dtype=dtype)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ModelProblem(
            f"the model in {model.base} does not load: {short_reason(error)}"
        ) from None
    if model.adapter is not None:
        from peft import PeftModel

        try:
            loaded = PeftModel.from_pretrained(loaded, model.adapter).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as error:
            raise ModelProblem(
                f"the adapter in {model.adapter} does not load onto {describe(model.base)}: "
                f"{short_reason(error)}"
            ) from None
    # train_grpo.py saves the tokenizer next to the adapter; older adapters may lack it.
    adapter = model.adapter
    has_tokenizer = adapter is not None and (adapter / "tokenizer_config.json").is_file()
    try:
        tokenizer = load_tokenizer(adapter if has_tokenizer else model.base)
    except (OSError, ValueError) as error:
        raise ModelProblem(
            f"the tokenizer of {model.base} does not load: {short_reason(error)}"
        ) from None
    return loaded.to(device).eval(), tokenizer, dtype
