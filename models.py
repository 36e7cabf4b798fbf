"""Loading the policy model: Qwen2.5-0.5B-Instruct when reachable, a tiny local Qwen2 otherwise.

One setting picks the model, the environment variable ``GRPO_MODEL``:

* unset or ``auto``: the real model if it is cached or a hub answers, else the tiny one
  (with a printed notice);
* ``real``: Qwen/Qwen2.5-0.5B-Instruct, failing loudly when it cannot be downloaded;
* ``tiny``: the embedded default, a randomly initialised Qwen2 with a tokenizer trained here;
* anything else: a local folder or a model id on ModelScope / the Hugging Face hub.

The tiny model has the real one's architecture, special tokens and chat template, so every
line of the tutorial runs unchanged on a laptop without network; only the answers are bad.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

import netcheck

REAL_MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"
MODEL_ENV_VAR = "GRPO_MODEL"
CACHE_ENV_VAR = "GRPO_CACHE_DIR"

# Qwen2.5's special tokens and default system message, reproduced by the tiny tokenizer.
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

TINY_VOCAB_SIZE = 1024
TINY_BUILD_VERSION = "v1"  # bump when the recipe below changes, so caches are rebuilt


def cache_root() -> Path:
    """Where built artefacts (tiny model, warm start) live: $GRPO_CACHE_DIR or ~/.cache."""
    root = os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "grpo-tutorial"
    return Path(root)


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and move the result to `target` atomically, unless it exists.

    A half-built folder from an interrupted run never becomes `target`, so the next run
    rebuilds instead of loading broken files.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        tmp.rename(target)
    except OSError:
        if not target.exists():  # a concurrent builder did not win the race either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------
# The tiny embedded model
# ---------------------------------------------------------------------------------------------


def _tokenizer_corpus() -> list[str]:
    """Text that the tiny BPE learns its merges from: the tutorial's own prompts and answers."""
    from data import SYSTEM_PROMPT
    from toy_task import make_problems

    problems = make_problems(2000, seed=1234)
    return [SYSTEM_PROMPT, QWEN_DEFAULT_SYSTEM, "system\nuser\nassistant\n"] + [
        f"{p.question}\n{p.solution()}" for p in problems
    ]


def build_tiny_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level BPE with Qwen2's pre-tokenizer, special tokens and chat template.

    Byte-level means any text (Chinese, emoji) can be encoded, just in more pieces than with
    Qwen's 151k-token vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from trl.chat_template_utils import qwen2_5_chat_template

    probe = Qwen2Tokenizer()  # only to borrow Qwen2's exact normaliser and pre-tokenizer
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = probe.backend_tokenizer.pre_tokenizer
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[ENDOFTEXT, IM_START, IM_END],
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    trained = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=trained["vocab"],
        merges=[tuple(pair) for pair in trained["merges"]],
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=2048,
    )
    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


def build_tiny_model(tokenizer: PreTrainedTokenizerBase, seed: int = 0):
    """A 2-layer Qwen2 with random weights, sized for a GRPO step in well under a second."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    # Like Qwen2.5's generation_config.json: stop at <|im_end|> or <|endoftext|>.
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(t) for t in (IM_END, ENDOFTEXT)],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=config.bos_token_id,
    )
    return model


def tiny_model_path() -> Path:
    """The embedded default, built on first use (about a second) and cached on disk."""

    def build(folder: Path) -> None:
        tokenizer = build_tiny_tokenizer()
        tokenizer.save_pretrained(folder)
        build_tiny_model(tokenizer).save_pretrained(folder)

    return build_once(cache_root() / f"tiny-qwen2-{TINY_BUILD_VERSION}", build)


# ---------------------------------------------------------------------------------------------
# Choosing the model, the device and the dtype
# ---------------------------------------------------------------------------------------------


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


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


def _download(model_id: str) -> Path:
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
    raise RuntimeError(
        f"Could not get {model_id!r}. Tried: " + "; ".join(failures) + ". "
        f"To run offline, set {MODEL_ENV_VAR}=tiny (the embedded model) "
        f"or {MODEL_ENV_VAR}=/path/to/a/downloaded/model."
    )


def resolve_model(name: str | None = None) -> Path:
    """The local folder of the model named by `name`, $GRPO_MODEL, or the automatic choice."""
    name = (name or os.environ.get(MODEL_ENV_VAR) or "auto").strip()
    if name.lower() in ("auto", "real", "tiny"):
        name = name.lower()
    if name == "tiny":
        return tiny_model_path()
    if name == "auto":
        try:
            return _download(REAL_MODEL_ID)
        except RuntimeError as error:
            print(f"[models] {error}\n[models] Falling back to the tiny embedded model.")
            return tiny_model_path()
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"Model folder not found: {path}")
        return path
    return _download(REAL_MODEL_ID if name == "real" else name)


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
    """True on GPUs with native bf16 (Ampere and newer: A100, 30x0/40x0, H100).

    Colab's free T4 only emulates bf16, which is slower than fp32 there.
    """
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def choose_dtype(device: torch.device, bf16: bool | None = None) -> torch.dtype:
    """bfloat16 where the GPU supports it (half the memory, no loss scaling), else float32.

    CPUs get float32: bf16 matmuls on most CPUs are slower and less precise than fp32.
    """
    supported = device.type == "cuda" and gpu_supports_bf16()
    if bf16 and not supported:
        print(f"[models] bf16 was requested but {device} does not support it: using float32.")
    if bf16 is None:
        bf16 = supported
    return torch.bfloat16 if bf16 and supported else torch.float32


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The model's tokenizer, set up for batched generation.

    Decoder-only models continue the text at the right end of each row, so batches are padded
    on the left. The pad token stays Qwen's own `<|endoftext|>`: setting pad = eos
    (`<|im_end|>`) would make the loss masks and stopping rules treat real end-of-turn
    tokens as padding.
    """
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        raise ValueError(f"The tokenizer at {path} has no pad token; Qwen's is {ENDOFTEXT!r}.")
    return tokenizer


def load_model_and_tokenizer(
    name: str | None = None, device: str | None = None, bf16: bool | None = None
):
    """Load the policy model and its tokenizer, ready for generation on the best device."""
    path = resolve_model(name)
    target = choose_device(device)
    dtype = choose_dtype(target, bf16)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(target)
    print(f"[models] Loaded {describe(path)} on {target} in {str(dtype).removeprefix('torch.')}.")
    return model, load_tokenizer(path)


def describe(path: Path) -> str:
    """A short, machine-independent name for a model folder (no home directory in logs)."""
    if path.is_relative_to(cache_root()):
        return f"the embedded {path.name} model"
    if path.parent.name == "snapshots":  # Hugging Face cache: models--Org--Name/snapshots/<hash>
        return path.parent.parent.name.removeprefix("models--").replace("--", "/")
    return path.name.replace("___", ".")  # ModelScope escapes the dots in folder names
