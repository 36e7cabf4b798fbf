"""Measure a model on GSM8K (or the toy task): accuracy, format rates and every completion.

    python evaluate_model.py --model Qwen/Qwen2.5-0.5B-Instruct --output-dir runs/eval/base
    python evaluate_model.py --model runs/qwen/final --output-dir runs/eval/grpo    # a full model
    python evaluate_model.py --model runs/lora/final --output-dir runs/eval/lora    # a LoRA adapter
    python evaluate_model.py --model tiny --dataset toy --output-dir runs/eval/tiny  # offline

`--model` takes what `train_grpo.py --model` takes (a local folder, a model id, `tiny`;
default: $GRPO_MODEL, else the automatic choice) and also a LoRA adapter folder,
recognised by its adapter_config.json. The numbers come from `grpo.evaluation.evaluate`,
the function behind train_grpo.py's before/after numbers, so they can be compared
directly. Writes run.json (status "complete" last), metrics.json and completions.jsonl to
--output-dir; a folder that already holds results is replaced only with --overwrite.
Arguments are checked before torch loads; exit codes: see grpo/cli.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

import data
from data import SPLITS
from grpo.cli import Parser, UserError, positive_int, random_seed, run_main, usage_error
from grpo.model_names import MODEL_ENV_VAR, requested_name
from grpo.profiles import EVAL_SETTINGS, TINY
from grpo.run_dir import RunDir

ADAPTER_CONFIG = "adapter_config.json"
OUTPUTS = ("metrics.json", "completions.jsonl")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, checked without touching a file: a mistake exits with status 2."""
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        help="a model folder, a model id, `tiny` (the warm start train_grpo.py trains), "
        f"or a LoRA adapter folder (its base model is read from {ADAPTER_CONFIG}); "
        f"default: ${MODEL_ENV_VAR}, else auto",
    )
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter to apply to --model")
    parser.add_argument("--dataset", choices=["gsm8k", "toy"], default="gsm8k")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--limit", type=positive_int, help="the first N questions (default: all)")
    parser.add_argument("--seed", type=random_seed, default=0, help="draws the toy problems")
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
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results already in --output-dir"
    )
    parser.add_argument("--debug", action="store_true", help="tracebacks for every error")
    args = parser.parse_args(argv)
    args.model_from_flag = bool((args.model or "").strip())  # for the wording of hints
    args.model = requested_name(args.model)
    return args


def path_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths given, or None (nothing is written)."""
    if args.output_dir.exists() and not args.output_dir.is_dir():
        return f"argument --output-dir: {args.output_dir} is a file, not a folder"
    if args.adapter is not None and not (args.adapter / ADAPTER_CONFIG).is_file():
        return f"argument --adapter: no LoRA adapter in {args.adapter}: no {ADAPTER_CONFIG}"
    explicit_path = args.model.startswith(("/", "./", "../", "~"))
    if explicit_path and not Path(args.model).expanduser().is_dir():
        return f"argument --model: model folder not found: {args.model}"
    return None


def load_questions(dataset: str, split: str, limit: int | None, seed: int = 0):
    """Question/answer/prompt rows. The toy task gives the problems train_grpo.py trains on
    (train) and evaluates on (test) with the same seed: --limit N keeps the first N."""
    if dataset == "gsm8k":
        return data.load_gsm8k(split, limit=limit)
    from offline_demo.toy_task import toy_splits

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
        return model, adapter
    folder = Path(model).expanduser()
    if not (folder / ADAPTER_CONFIG).is_file():
        return model, None
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        return config["base_model_name_or_path"], folder
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"unreadable {folder / ADAPTER_CONFIG}: {error}") from None


def load_model(base: str, adapter: Path | None, device, dtype):
    """The model ready for greedy generation, and its tokenizer.

    The base is found the tutorial's way (`tiny`, local caches, ModelScope, the hub). An
    adapter is merged into the base weights: generation then runs at the base model's
    speed instead of paying for the extra LoRA matrix products at every token.
    """
    from transformers import AutoModelForCausalLM

    from grpo.models import load_tokenizer, resolve_model

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
        import torch
        from transformers import GenerationConfig
        from vllm import LLM

        self.llm = LLM(model=str(path), seed=0)
        self.generation_config = GenerationConfig.from_pretrained(path)
        self.device = torch.device("cpu")  # token ids stay here: vLLM takes plain lists
        self.pad_token_id = pad_token_id

    def generate(self, input_ids, attention_mask, generation_config, **_):
        """Prompt block + greedy new tokens, padded like transformers' output.

        `generation_config` is the one `evaluation.generate` passes (GREEDY_GENERATION: no
        repetition penalty), so both backends decode alike whatever the model's file says.
        """
        import torch
        from vllm import SamplingParams

        eos = generation_config.eos_token_id
        params = SamplingParams(
            temperature=0,
            max_tokens=generation_config.max_new_tokens,
            stop_token_ids=eos if isinstance(eos, list) else [eos],  # <|im_end|>, <|endoftext|>
            repetition_penalty=generation_config.repetition_penalty,
        )
        prompts = [
            {"prompt_token_ids": ids[mask.bool()].tolist()}
            for ids, mask in zip(input_ids, attention_mask, strict=True)
        ]
        answers = [list(out.outputs[0].token_ids) for out in self.llm.generate(prompts, params)]
        width = max(map(len, answers), default=0)
        padded = [row + [self.pad_token_id] * (width - len(row)) for row in answers]
        return torch.cat([input_ids, torch.tensor(padded, dtype=input_ids.dtype)], dim=1)


def load_vllm_model(base: str, adapter: Path | None):
    """(VLLMModel, tokenizer, base folder). vLLM reads weights from a folder: an adapter is
    merged into a temporary copy first."""
    import torch

    from grpo.models import inference_dtype, load_tokenizer, resolve_model

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


def summary_line(result) -> str:
    metrics = result.metrics
    correct = sum(row["correct"] for row in result.rows)
    return (
        f"accuracy {metrics['accuracy']:.3f} ({correct}/{metrics['num_examples']}), "
        f"strict format {metrics['strict_format']:.3f}, soft format {metrics['soft_format']:.3f}, "
        f"mean tokens {metrics['mean_tokens']:.1f}"
    )


def model_problem(error: Exception, args: argparse.Namespace, adapter: Path | None) -> str:
    """The loader's message, with the way out that fits how the model was named."""
    from grpo.models import OFFLINE_WAYS_OUT

    message = str(error)
    if args.model_from_flag:
        message = message.replace(
            OFFLINE_WAYS_OUT,
            "To run without it, pass --model tiny (the embedded demo model) or --model with "
            "a local folder that holds the downloaded model.",
        )
    if adapter is not None and args.adapter is None:
        message += " (the adapter's base model; pass it with --model BASE --adapter DIR)"
    return message


def load(args: argparse.Namespace, base: str, adapter: Path | None):
    """(model, tokenizer, base folder) for the chosen backend; a missing model is a UserError."""
    from grpo.models import ModelUnavailable, choose_device, inference_dtype

    try:
        if args.backend == "vllm":
            return load_vllm_model(base, adapter)
        device = choose_device()
        return load_model(base, adapter, device, inference_dtype(device))
    except ModelUnavailable as error:
        raise UserError(model_problem(error, args, adapter)) from None


def run(args: argparse.Namespace) -> dict:
    try:
        data.check_local_dir()
    except data.DataUnavailable as error:
        raise UserError(str(error)) from None
    if args.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise UserError("--backend vllm needs vLLM: `pip install vllm` (Linux + CUDA GPU only)")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    with RunDir(
        args.output_dir,
        OUTPUTS,
        settings,
        overwrite=args.overwrite,
        reuse_hint="pass --overwrite to replace it",
    ) as run_dir:
        metrics = evaluate_to(args, run_dir)
        run_dir.finish()
    return metrics


def evaluate_to(args: argparse.Namespace, run_dir: RunDir) -> dict:
    """Load, evaluate and write metrics.json and completions.jsonl into the claimed folder."""
    from grpo import artifacts
    from grpo.evaluation import GREEDY_GENERATION, evaluate
    from grpo.models import describe
    from grpo.run_record import data_source, git_commit, versions

    base, adapter = split_adapter(args.model, args.adapter)
    try:
        dataset = load_questions(args.dataset, args.split, args.limit, args.seed)
    except data.DataUnavailable as error:
        raise UserError(str(error)) from None
    if len(dataset) == 0:
        raise UserError(f"no {args.dataset} {args.split} questions to evaluate")
    settings = EVAL_SETTINGS[args.dataset]
    max_new_tokens = args.max_new_tokens or settings.max_new_tokens
    batch_size = args.batch_size or settings.batch_size
    model, tokenizer, base_path = load(args, base, adapter)
    if args.backend == "vllm":
        batch_size = len(dataset)  # one call: vLLM schedules the whole set itself

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
        "data_source": data_source(dataset),
        "eval_generation": GREEDY_GENERATION,  # both backends decode with these settings
        **result.metrics,
        "versions": versions(),
        "git_commit": git_commit(),
        "wall_time_s": run_dir.wall_time_s(),
    }
    artifacts.write_jsonl(args.output_dir / "completions.jsonl", result.rows)
    artifacts.write_json(args.output_dir / "metrics.json", metrics)
    print(f"{args.model}: {summary_line(result)}; results in {args.output_dir}")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    problem = path_problem(args)
    if problem:
        usage_error("evaluate_model.py", problem)
    return run_main("evaluate_model.py", lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    main()
