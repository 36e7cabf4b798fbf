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
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

import netcheck
from data import short_reason
from grpo.checkpoints import ADAPTER_WEIGHTS
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


MODEL_SOURCES = ("modelscope", "hub")
MODEL_SOURCE_ENV_VAR = "GRPO_MODEL_SOURCE"
# Where each folder this process resolved came from (the loader fills it; run.json and
# metrics.json read it back through `origin`).
_ORIGINS: dict[Path, str] = {}


def model_source(source: str | None = None) -> str | None:
    """The download source asked for (`source`, else $GRPO_MODEL_SOURCE), or None for the
    automatic order; ModelUnavailable for an unknown one."""
    chosen = (source or os.environ.get(MODEL_SOURCE_ENV_VAR, "")).strip().lower() or None
    if chosen is not None and chosen not in MODEL_SOURCES:
        raise ModelUnavailable(
            f"Unknown model source {chosen!r}; choose one of {', '.join(MODEL_SOURCES)}"
        )
    return chosen


def source_order(source: str | None = None) -> tuple[str, ...]:
    """The download sources in the order tried: the one asked for alone; else the hub first
    when HF_ENDPOINT names a mirror (the user chose it, and the data comes from it too);
    else ModelScope first, the faster (often the only) choice in mainland China, where most
    of this tutorial's learners are."""
    chosen = model_source(source)
    if chosen is not None:
        return (chosen,)
    return ("hub", "modelscope") if netcheck.hub_endpoint_chosen() else MODEL_SOURCES


def _snapshot(source: str, model_id: str, cached: bool) -> Path:
    """The folder of `model_id` from `source`'s cache (`cached`) or a download from it."""
    if source == "hub":
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=cached))
    netcheck.bound_download_times()  # before modelscope reads its timeouts
    from modelscope import snapshot_download

    return Path(snapshot_download(model_id, local_files_only=cached))


SOURCE_NAMES = {"hub": "the Hugging Face hub", "modelscope": "ModelScope"}


def _where(source: str, path: Path, cached: bool) -> str:
    """How metrics.json names a download's origin: source, endpoint, revision."""
    revision = path.name  # the hub's snapshots/<commit>, ModelScope's snapshots/<revision>
    if cached:
        cache = "Hugging Face" if source == "hub" else "ModelScope"
        return f"the {cache} cache (revision {revision})"
    endpoint = netcheck.hub_endpoint() if source == "hub" else netcheck.modelscope_endpoint()
    return f"{SOURCE_NAMES[source]} via {endpoint} (revision {revision})"


def download(model_id: str, source: str | None = None) -> Path:
    """A local snapshot of `model_id`: from a cache of the sources in `source_order` (no
    network), else downloaded from the first of them that answers. Each source costs at
    most the probe's seconds when it is down; one line says when the next one is tried."""
    order = source_order(source)
    for name in order:
        try:
            path = _snapshot(name, model_id, cached=True)
        except Exception:  # not in this cache (the libraries raise several kinds)
            continue
        if not is_complete_download(path):
            print(f"[models] {path} is an interrupted download of {model_id}: not used.")
            continue
        _ORIGINS[path] = _where(name, path, cached=True)
        return path
    failures: list[str] = []
    for position, name in enumerate(order):
        problem = _source_problem(name)
        if problem is None:
            try:
                path = _snapshot(name, model_id, cached=False)
            except Exception as error:  # any failure means: try the next source
                problem = short_reason(error)
            else:
                _ORIGINS[path] = _where(name, path, cached=False)
                return path
        failures.append(f"{SOURCE_NAMES[name]}: {problem}")
        if position + 1 < len(order):
            following = SOURCE_NAMES[order[position + 1]]
            print(f"[models] {SOURCE_NAMES[name]} failed ({problem}); trying {following}.")
    raise ModelUnavailable(
        f"Could not get {model_id!r} (not in the cache of "
        + " or ".join(SOURCE_NAMES[name] for name in order)
        + "). Tried: "
        + "; ".join(failures)
        + ". "
        + _ways_out(order)
    )


WEIGHT_FILES = ("*.safetensors", "*.bin")


def is_complete_download(path: Path) -> bool:
    """False for a snapshot that a dropped connection cut short: ModelScope's cache answers
    with the folder even then, its unfinished files still named *.incomplete and the weights
    missing."""
    if any(path.glob("*.incomplete")) or not (path / "config.json").is_file():
        return False
    return any(next(path.glob(pattern), None) for pattern in WEIGHT_FILES)


def saved_model(run_dir: Path) -> str | None:
    """Where `run_dir`/final came from, when it holds a model (weights, or a LoRA adapter's);
    None when it holds none. A final/ copied in by hand (from Google Drive, say) counts
    without its run's metrics.json: that file only says whether this run wrote it."""
    final = run_dir / "final"
    adapter = (final / ADAPTER_CONFIG).is_file() and (final / ADAPTER_WEIGHTS).is_file()
    if not (adapter or is_complete_download(final)):
        return None
    if (run_dir / "metrics.json").is_file():  # written last, once final/ is saved
        return "saved by the run in this folder (its metrics.json is there)"
    return "copied in or left by a run cut short (no metrics.json beside it)"


def _source_problem(source: str) -> str | None:
    """None when `source` answers its probe, else why not (the probe's answer is cached)."""
    if source == "hub":
        return None if netcheck.hub_reachable() else netcheck.hub_problem() or "unreachable"
    return (
        None if netcheck.modelscope_reachable() else netcheck.modelscope_problem() or "unreachable"
    )


def _ways_out(order: tuple[str, ...]) -> str:
    """The ways out that apply: another source, a mirror not yet chosen, then offline."""
    ways = []
    if len(order) == 1:
        other = next(name for name in MODEL_SOURCES if name not in order)
        ways.append(f"try {SOURCE_NAMES[other]} ({MODEL_SOURCE_ENV_VAR}={other})")
    if "hub" in order and not netcheck.hub_endpoint_chosen():
        ways.append("set HF_ENDPOINT to a mirror such as https://hf-mirror.com")
    lead = ("Ways out: " + "; or ".join(ways) + ". ") if ways else ""
    return lead + OFFLINE_WAYS_OUT


def origin(path: Path) -> str:
    """Where the model folder `path` came from: the source, endpoint and revision of a
    download or cache hit this process made, else the embedded model or a local folder."""
    path = Path(path)
    if path in _ORIGINS:
        return _ORIGINS[path]
    if is_embedded(path):
        return "the embedded demo model"
    return f"the local folder {path}"


def resolve_model(
    name: str | None = None, require_real: bool = False, source: str | None = None
) -> Path:
    """The local folder of the model named by `name` or $GRPO_MODEL (see the module doc).

    `require_real`: the caller trains on GSM8K, so an embedded model is refused. `source`:
    where a model id is downloaded from (see `source_order`).
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
    return download(REAL_MODEL_ID if name == "real" else name, source)


@dataclass(frozen=True)
class InferenceChoice:
    """The model a cell that only looks at a model loads, where, and in what dtype."""

    path: Path
    device: torch.device
    dtype: torch.dtype


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
    dtype = load_dtype(device)
    print(f"[models] {describe(path)} on {device} in {str(dtype).removeprefix('torch.')}: {why}")
    return InferenceChoice(path=path, device=device, dtype=dtype)


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


def load_dtype(device: torch.device, for_training: bool = False) -> torch.dtype:
    """The dtype weights load in: float32 for training on any device (fp32 master weights:
    bf16 is the trainer's autocast, see the module doc); for evaluation bf16 on CUDA GPUs
    that have it (half the memory), else float32 (bf16 matmuls on most CPUs are slower and
    less precise than fp32)."""
    if for_training or device.type != "cuda" or not gpu_supports_bf16():
        return torch.float32
    return torch.bfloat16


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
    say_loaded(describe(path), target, dtype)
    return model, load_tokenizer(path), path


def say_loaded(what: str, device: torch.device, dtype: torch.dtype, role: str = "") -> None:
    """The one line each model load prints (transformers' own bar is hidden in a run)."""
    role = f" ({role})" if role else ""
    print(f"[models] Loaded {what} on {device} in {str(dtype).removeprefix('torch.')}{role}.")


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


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def check_model_folder(path: Path) -> None:
    """ModelProblem unless `path` is a full model folder that loads: a config.json that
    parses, a tokenizer, and weights that fit the causal LM the config names (see
    `check_model_loads`); neither a run folder nor a bare LoRA adapter (each said with its
    way out)."""
    if (path / "run.json").is_file() and (path / "final").is_dir():
        raise ModelProblem(f"{path} is a run folder, not a model: pass its model, {path / 'final'}")
    if (path / ADAPTER_CONFIG).is_file():
        raise ModelProblem(
            f"{path} is a LoRA adapter, not a base model: name its base model instead (its "
            f"{ADAPTER_CONFIG} says which); evaluate_model.py --model {path} evaluates the "
            "adapter on its base"
        )
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelProblem(f"{path} holds no model (no config.json)") from None
    except (OSError, ValueError) as error:
        raise ModelProblem(f"{path / 'config.json'} is unreadable: {error}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelProblem(f"{path / 'config.json'} is not a model's config (no model_type)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelProblem(
            f"{path} holds no tokenizer ({' or '.join(TOKENIZER_FILES)}): copy the tokenizer "
            "files of the model it was trained from into it"
        )
    check_model_loads(path)


def check_model_loads(path: Path) -> None:
    """ModelProblem unless the weights in `path` load, key for key, into the causal LM its
    config.json names: loaded on the meta device (no memory, no values read), so a config of
    another architecture (`model_type: bert` over Qwen weights) is refused instead of
    evaluating or training freshly initialised weights."""
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()  # the loader's own report and progress bar: said below
    logging.disable_progress_bar()
    try:
        _, info = AutoModelForCausalLM.from_pretrained(
            path, device_map="meta", output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError,
            SafetensorError, StrictDataclassError) as error:  # fmt: skip
        raise ModelProblem(f"the model in {path} does not load: {short_reason(error)}") from None
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
    wrong = {k: sorted(info[f"{k}_keys"]) for k in ("missing", "unexpected", "mismatched")}
    if any(wrong.values()):
        counts = ", ".join(
            f"{len(keys)} {kind} ({keys[0]}, ...)" for kind, keys in wrong.items() if keys
        )
        raise ModelProblem(
            f"the weights in {path} do not fit the model its config.json describes: {counts} "
            "weights; the config may belong to another model"
        )


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
    `load_dtype(device)` (bf16 on GPUs that have it, else float32), the
    rule train_grpo.py's before/after evaluation follows too. An adapter is merged into
    the base weights, so generation runs at the base model's speed. ModelProblem for files
    that do not load (truncated, corrupt, an adapter made for another base)."""
    from safetensors import SafetensorError

    dtype = dtype or load_dtype(device)
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
    what = describe(model.base) + (f" + adapter {describe(adapter)}" if adapter else "")
    say_loaded(what, device, dtype, "for evaluation")
    return loaded.to(device).eval(), tokenizer, dtype
