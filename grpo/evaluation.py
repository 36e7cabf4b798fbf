"""Greedy, batched evaluation: accuracy and format rates of a model on question/answer rows.

Used by notebooks 03 and 06, `train_grpo.py` and `evaluate_model.py`, so every number in the
tutorial is measured the same way: the same prompt, greedy decoding, the same reward
functions deciding what counts as correct and well-formatted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from rewards import correctness_reward_func, soft_format_reward_func, strict_format_reward_func

# Plain greedy decoding, whatever the model's generation_config.json asks for (Qwen2.5's asks
# for repetition_penalty 1.1 and sampling at temperature 0.7, top_p 0.8, top_k 20).
# transformers fills every field left unset from the model's file, so each decoding and
# penalty field is set here: temperature, top_p and top_k to transformers' own defaults,
# which greedy decoding ignores (unset, they would be inherited, with a warning).
# The stop tokens still come from the model. train_grpo records this in metrics.json.
GREEDY_GENERATION: dict = {
    "do_sample": False,
    "num_beams": 1,
    "repetition_penalty": 1.0,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 50,
}


@dataclass
class Generation:
    """One model answer, with its length in tokens (up to and including the stop token)."""

    text: str
    num_tokens: int
    token_ids: list[int] = field(default_factory=list, repr=False, compare=False)  # to the stop


@dataclass
class EvalResult:
    """Summary metrics plus every row, for tables, plots and the JSONL log."""

    metrics: dict[str, float]
    rows: list[dict] = field(default_factory=list)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[dict]],
    max_new_tokens: int = 200,
    batch_size: int = 32,
    progress: bool = True,
    sort_by_length: bool = True,
) -> list[Generation]:
    """Greedy completions for chat prompts, `batch_size` at a time, left-padded.

    Left padding puts every prompt's last token at the same position, so the new tokens of
    the whole batch are the columns after the prompt block. Batches are formed from prompts
    of similar length (answers come back in the input order): less padding to prefill and
    attend over, see benchmarks/RESULTS.md.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    encoded = tokenizer(texts)["input_ids"] if texts else []
    order = list(range(len(texts)))
    if sort_by_length:
        order.sort(key=lambda index: len(encoded[index]))
    stop_ids = model.generation_config.eos_token_id  # the model's own stop tokens
    stop_ids = stop_ids if isinstance(stop_ids, list) else [stop_ids]
    config = GenerationConfig(
        **GREEDY_GENERATION,
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    stop_set = set(stop_ids)
    results: list[Generation | None] = [None] * len(texts)
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc="Generating", unit="batch", disable=not progress):
        indices = order[start : start + batch_size]
        batch = tokenizer.pad(
            {"input_ids": [encoded[i] for i in indices]}, padding=True, return_tensors="pt"
        ).to(model.device)
        output = model.generate(**batch, generation_config=config)
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        for index, row in zip(indices, new_tokens.tolist(), strict=True):
            length = _length_until_stop(row, stop_set)
            text = tokenizer.decode(row[:length], skip_special_tokens=True)
            results[index] = Generation(text=text, num_tokens=length, token_ids=row[:length])
    return results


def _length_until_stop(token_ids: list[int], stop_ids: set[int]) -> int:
    """Tokens generated up to and including the first stop token (the rest is padding)."""
    for position, token in enumerate(token_ids):
        if token in stop_ids:
            return position + 1
    return len(token_ids)


def score(completions: list[str], answers: list[str | None]) -> dict[str, list[bool]]:
    """Per-row verdicts, decided by the same reward functions that GRPO trains with."""
    return {
        "correct": [r > 0 for r in correctness_reward_func(None, completions, answer=answers)],
        "strict_format": [r > 0 for r in strict_format_reward_func(None, completions)],
        "soft_format": [r > 0 for r in soft_format_reward_func(None, completions)],
    }


def rates(verdicts: dict[str, list[bool]]) -> dict[str, float]:
    """Accuracy and strict/soft format rates: the share of True in each of `score`'s lists."""
    count = max(len(verdicts["correct"]), 1)
    return {
        "accuracy" if name == "correct" else name: sum(values) / count
        for name, values in verdicts.items()
    }


def evaluate(
    model,
    tokenizer,
    dataset,
    max_new_tokens: int = 200,
    batch_size: int = 32,
    progress: bool = True,
    also_scored_at: tuple[int, ...] = (),
) -> EvalResult:
    """Accuracy, strict/soft format rate and mean completion length on `dataset`.

    `dataset` needs the columns `prompt` (chat messages), `question` and `answer` (gold).
    `also_scored_at`: shorter token budgets scored from the same greedy completions cut
    short (greedy decoding's first N tokens do not depend on the budget), so a gain that
    only comes from fitting the answer into fewer tokens shows up as such.
    """
    generations = generate(
        model, tokenizer, list(dataset["prompt"]), max_new_tokens, batch_size, progress
    )
    answers = list(dataset["answer"])
    verdicts = score([g.text for g in generations], answers)
    metrics = {
        **rates(verdicts),
        "mean_tokens": sum(g.num_tokens for g in generations) / max(len(generations), 1),
        "num_examples": len(generations),
    }
    for budget in also_scored_at:
        cut = [
            tokenizer.decode(g.token_ids[:budget], skip_special_tokens=True) for g in generations
        ]
        for name, value in rates(score(cut, answers)).items():
            metrics[f"{name}_at_{budget}_tokens"] = value
    rows = [
        {
            "question": question,
            "answer": answer,
            "completion": generation.text,
            "num_tokens": generation.num_tokens,
            **{name: verdict[i] for name, verdict in verdicts.items()},
        }
        for i, (question, answer, generation) in enumerate(
            zip(dataset["question"], dataset["answer"], generations, strict=True)
        )
    ]
    return EvalResult(metrics=metrics, rows=rows)
