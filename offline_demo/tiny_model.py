"""The tiny embedded model: Qwen2's architecture and chat format at a CPU-friendly size.

A byte-level BPE tokenizer is trained here on the tutorial's own text, with Qwen2.5's
special tokens and chat template, and a 4-layer Qwen2 gets random weights. Every line of the
tutorial runs on it unchanged; only the answers are bad until `warm_start` teaches it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from data import SYSTEM_PROMPT
from offline_demo.cache import build_once, cache_root
from offline_demo.toy_task import make_problems

if TYPE_CHECKING:  # torch and transformers load where used: grpo.plan reads TINY_BODY
    from transformers import PreTrainedTokenizerBase

# Qwen2.5's special tokens and default system message, reproduced by the tiny tokenizer.
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

TINY_VOCAB_SIZE = 1024
# The tiny Qwen2's body, Qwen2Config's keywords (grpo.plan plans the demo's memory from it).
TINY_BODY = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=True,
)
TINY_BUILD_VERSION = "v1"  # bump when the recipe below changes, so caches are rebuilt


def _tokenizer_corpus() -> list[str]:
    """Text that the tiny BPE learns its merges from: the tutorial's own prompts and answers."""
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
    """A 4-layer Qwen2 with random weights, sized for a GRPO step in well under a second."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        **TINY_BODY,
        max_position_embeddings=1024,
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


def tiny_random_dir() -> Path:
    """Where the random-weight tiny model is cached (it may not be built yet)."""
    return cache_root() / f"tiny-qwen2-random-{TINY_BUILD_VERSION}"


def tiny_random_path() -> Path:
    """The random-weight tiny model, built on first use (a few seconds) and cached on disk."""

    def build(folder: Path) -> None:
        tokenizer = build_tiny_tokenizer()
        tokenizer.save_pretrained(folder)
        build_tiny_model(tokenizer).save_pretrained(folder)

    return build_once(tiny_random_dir(), build)
