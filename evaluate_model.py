"""Measure a model on GSM8K (or the toy task): accuracy, format rates and every completion.

    python evaluate_model.py --model Qwen/Qwen2.5-0.5B-Instruct --output-dir runs/eval/base
    python evaluate_model.py --model runs/qwen/final --output-dir runs/eval/grpo    # a full model
    python evaluate_model.py --model runs/lora/final --output-dir runs/eval/lora    # a LoRA adapter
    python evaluate_model.py --model tiny --dataset toy --output-dir runs/eval/tiny  # offline

`--model` takes what `train_grpo.py --model` takes (a local folder, a model id, `tiny`) and
also a LoRA adapter folder, recognised by its adapter_config.json. The numbers come from
`grpo.evaluation.evaluate`, the function behind train_grpo.py's before/after numbers, so they
can be compared directly. Writes metrics.json and completions.jsonl to --output-dir.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerBase

from data import SPLITS, load_gsm8k
from grpo import artifacts
from grpo.evaluation import EvalResult, evaluate
from grpo.models import choose_device, describe, inference_dtype, load_tokenizer, resolve_model
from grpo.profiles import EVAL_SETTINGS, TINY
from offline_demo.toy_task import toy_splits

ADAPTER_CONFIG = "adapter_config.json"


def positive_int(text: str) -> int:
    """An argparse type: 0 would silently mean "the default" further down, so refuse it."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        required=True,
        help="a model folder, a model id, `tiny` (the warm start train_grpo.py trains), "
        "or a LoRA adapter folder (its base model is read from adapter_config.json)",
    )
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter to apply to --model")
    parser.add_argument("--dataset", choices=["gsm8k", "toy"], default="gsm8k")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--limit", type=positive_int, help="the first N questions (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="draws the toy problems")
    parser.add_argument(
        "--batch-size", type=positive_int, help="default: 64 for gsm8k, 100 for toy (the profiles')"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help="default: 200 for gsm8k, 48 for toy (the profiles')",
    )
    parser.add_argument(
        "--backend",
        choices=["transformers", "vllm"],
        default="transformers",
        help="vllm: much faster on a CUDA GPU, same prompts and scoring",
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    return parser.parse_args(argv)


def load_questions(dataset: str, split: str, limit: int | None, seed: int = 0) -> Dataset:
    """Question/answer/prompt rows. The toy task gives the problems train_grpo.py trains on
    (train) and evaluates on (test) with the same seed: --limit N keeps the first N."""
    if dataset == "gsm8k":
        return load_gsm8k(split, limit=limit)
    train, test = toy_splits(TINY.train_size, limit or TINY.evaluation.size, seed)
    rows = train if split == "train" else test
    return rows.select(range(min(limit, len(rows)))) if limit else rows


def split_adapter(model: str, adapter: Path | None = None) -> tuple[str, Path | None]:
    """(base model, adapter folder or None).

    `train_grpo.py --lora` saves only the adapter in final/, with its base model's location
    in adapter_config.json, so `--model runs/lora/final` is enough. `--adapter` is for the
    case where that location is wrong here (an adapter trained on another machine).
    """
    if adapter is not None:
        if not (adapter / ADAPTER_CONFIG).is_file():
            raise FileNotFoundError(f"No LoRA adapter in {adapter}: {ADAPTER_CONFIG} is missing")
        return model, adapter
    folder = Path(model).expanduser()
    if (folder / ADAPTER_CONFIG).is_file():
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        return config["base_model_name_or_path"], folder
    return model, None


def load_model(base: str, adapter: Path | None, device: torch.device, dtype: torch.dtype):
    """The model ready for greedy generation, and its tokenizer.

    The base is found the tutorial's way (`tiny`, local caches, ModelScope, the hub). An
    adapter is merged into the base weights: generation then runs at the base model's
    speed instead of paying for the extra LoRA matrix products at every token.
    """
    base_path = resolve_model(base)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    # train_grpo.py saves the tokenizer next to the adapter; older adapters may lack it.
    has_tokenizer = adapter is not None and (adapter / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(adapter if has_tokenizer else base_path)
    return model.to(device).eval(), tokenizer, base_path


class VLLMModel:
    """Just enough of a transformers model for `evaluation.generate`, decoding with vLLM.

    `evaluation.generate` tokenizes the chat prompts, calls `model.generate` and cuts each
    answer at its first stop token. This class answers that call with vLLM, so vLLM's
    answers are cut, decoded and scored by the very code that handles transformers' ones.
    Not covered by the tests: vLLM needs Linux and a CUDA GPU.
    """

    def __init__(self, path: Path, pad_token_id: int):
        from vllm import LLM

        self.llm = LLM(model=str(path), seed=0)
        self.generation_config = GenerationConfig.from_pretrained(path)
        self.device = torch.device("cpu")  # token ids stay here: vLLM takes plain lists
        self.pad_token_id = pad_token_id

    def generate(self, input_ids, attention_mask, max_new_tokens: int, **_) -> torch.Tensor:
        """Prompt block + greedy new tokens, padded like transformers' output."""
        from vllm import SamplingParams

        eos = self.generation_config.eos_token_id
        params = SamplingParams(
            temperature=0,
            max_tokens=max_new_tokens,
            stop_token_ids=eos if isinstance(eos, list) else [eos],  # <|im_end|>, <|endoftext|>
            # transformers applies the model's repetition penalty even to greedy decoding
            # (Qwen2.5-Instruct: 1.1): passed on explicitly so both backends decode alike.
            repetition_penalty=self.generation_config.repetition_penalty or 1.0,
        )
        prompts = [
            {"prompt_token_ids": ids[mask.bool()].tolist()}
            for ids, mask in zip(input_ids, attention_mask, strict=True)
        ]
        answers = [list(out.outputs[0].token_ids) for out in self.llm.generate(prompts, params)]
        width = max(map(len, answers), default=0)
        padded = [row + [self.pad_token_id] * (width - len(row)) for row in answers]
        return torch.cat([input_ids, torch.tensor(padded, dtype=input_ids.dtype)], dim=1)


def load_vllm_model(
    base: str, adapter: Path | None
) -> tuple[VLLMModel, PreTrainedTokenizerBase, Path]:
    """vLLM reads weights from a folder: an adapter is merged into a temporary copy first."""
    if importlib.util.find_spec("vllm") is None:
        raise SystemExit("--backend vllm needs vLLM: `pip install vllm` (Linux + CUDA GPU only).")
    dtype = inference_dtype(torch.device("cuda"))
    if adapter is None:
        base_path = resolve_model(base)
        tokenizer = load_tokenizer(base_path)
        return VLLMModel(base_path, tokenizer.pad_token_id), tokenizer, base_path
    merged, tokenizer, base_path = load_model(base, adapter, torch.device("cpu"), dtype)
    with tempfile.TemporaryDirectory() as folder:
        merged.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        del merged  # vLLM loads its own copy onto the GPU
        return VLLMModel(Path(folder), tokenizer.pad_token_id), tokenizer, base_path


def summary_line(result: EvalResult) -> str:
    metrics = result.metrics
    correct = sum(row["correct"] for row in result.rows)
    return (
        f"accuracy {metrics['accuracy']:.3f} ({correct}/{metrics['num_examples']}), "
        f"strict format {metrics['strict_format']:.3f}, soft format {metrics['soft_format']:.3f}, "
        f"mean tokens {metrics['mean_tokens']:.1f}"
    )


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    base, adapter = split_adapter(args.model, args.adapter)
    dataset = load_questions(args.dataset, args.split, args.limit, args.seed)
    settings = EVAL_SETTINGS[args.dataset]
    max_new_tokens = args.max_new_tokens or settings.max_new_tokens
    batch_size = args.batch_size or settings.batch_size
    if args.backend == "vllm":
        model, tokenizer, base_path = load_vllm_model(base, adapter)
        batch_size = max(len(dataset), 1)  # one call: vLLM schedules the whole set itself
    else:
        device = choose_device()
        model, tokenizer, base_path = load_model(base, adapter, device, inference_dtype(device))

    print(f"Evaluating {args.model} on {len(dataset)} {args.dataset} {args.split} questions ...")
    result = evaluate(model, tokenizer, dataset, max_new_tokens, batch_size)
    metrics = {
        "model": args.model,
        "base_model": describe(base_path),
        "adapter": str(adapter) if adapter else None,
        "dataset": args.dataset,
        "split": args.split,
        "backend": args.backend,
        "max_new_tokens": max_new_tokens,
        **result.metrics,
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    artifacts.write_jsonl(args.output_dir / "completions.jsonl", result.rows)
    artifacts.write_json(args.output_dir / "metrics.json", metrics)
    print(f"{args.model}: {summary_line(result)}; results in {args.output_dir}")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        return run(args)
    except FileNotFoundError as error:  # a mistyped path: say which, without a traceback
        hint = ""
        if args.adapter is None and (Path(args.model).expanduser() / ADAPTER_CONFIG).is_file():
            hint = " (the adapter's base model; pass it with --model BASE --adapter DIR)"
        raise SystemExit(f"evaluate_model.py: {error}{hint}") from error


if __name__ == "__main__":
    main()
