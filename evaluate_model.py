"""Measure a model on GSM8K (or the toy task): accuracy, format rates and every completion.

    python evaluate_model.py --model Qwen/Qwen2.5-0.5B-Instruct --output-dir runs/eval/base
    python evaluate_model.py --model runs/qwen/final --output-dir runs/eval/grpo    # a full model
    python evaluate_model.py --model runs/lora/final --output-dir runs/eval/lora    # a LoRA adapter
    python evaluate_model.py --model tiny --dataset toy --output-dir runs/eval/tiny  # offline

`--model` takes what `train_grpo.py --model` takes (a local folder, a model id, `tiny`;
default: $GRPO_MODEL, else the automatic choice) and also a LoRA adapter folder,
recognised by its adapter_config.json. The model is loaded by `grpo.models` (the one
loader) in the precision train_grpo.py evaluates in: bf16 on GPUs that have it, else
float32 (`eval_dtype` in metrics.json). The numbers come from `grpo.evaluation.evaluate`,
the function behind train_grpo.py's before/after numbers, so they can be compared
directly. Writes run.json (status "complete" last), metrics.json and completions.jsonl to
--output-dir; a folder that already holds this command's results is replaced only with
--overwrite, and a folder of another command (a training run) never. Arguments are
checked before torch loads; exit codes: see grpo/cli.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import data
from data import SPLITS
from grpo.cli import (
    Parser,
    UserError,
    output_folder,
    positive_int,
    random_seed,
    refuse_environment_problem,
    run_main,
    usage_error,
)
from grpo.model_names import ADAPTER_CONFIG, MODEL_ENV_VAR, looks_like_path, requested_name
from grpo.profiles import EVAL_SETTINGS, TINY
from grpo.run_dir import RunDir

PROG = "evaluate_model.py"
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
    defaults = {name: ", ".join(f"{getattr(s, name)} for {d}" for d, s in EVAL_SETTINGS.items())
                for name in ("batch_size", "max_new_tokens")}  # fmt: skip
    parser.add_argument(
        "--batch-size", type=positive_int, help=f"default: {defaults['batch_size']}"
    )
    parser.add_argument(
        "--max-new-tokens", type=positive_int, help=f"default: {defaults['max_new_tokens']}"
    )
    parser.add_argument("--output-dir", type=output_folder, required=True)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results already in --output-dir"
    )
    parser.add_argument("--debug", action="store_true", help="tracebacks for every error")
    args = parser.parse_args(argv)
    args.model_from_flag = bool((args.model or "").strip())  # for the wording of hints
    args.model = requested_name(args.model)
    return args


def argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths and sizes given, or None (nothing is written)."""
    if args.output_dir.exists() and not args.output_dir.is_dir():
        return f"argument --output-dir: {args.output_dir} is a file, not a folder"
    if args.adapter is not None and not (args.adapter / ADAPTER_CONFIG).is_file():
        return f"argument --adapter: no LoRA adapter in {args.adapter}: no {ADAPTER_CONFIG}"
    if looks_like_path(args.model) and not Path(args.model).expanduser().is_dir():
        return f"argument --model: model folder not found: {args.model}"
    if args.dataset == "toy" and args.split == "test" and args.limit:
        from offline_demo.toy_task import max_distinct

        if args.limit > max_distinct("eval"):
            return (
                f"argument --limit: the toy task holds {max_distinct('eval'):,} distinct "
                f"held-out questions, got {args.limit:,}"
            )
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


def summary_line(result) -> str:
    metrics = result.metrics
    correct = sum(row["correct"] for row in result.rows)
    return (
        f"accuracy {metrics['accuracy']:.3f} ({correct}/{metrics['num_examples']}), "
        f"strict format {metrics['strict_format']:.3f}, soft format {metrics['soft_format']:.3f}, "
        f"mean tokens {metrics['mean_tokens']:.1f}"
    )


def check_environment(args: argparse.Namespace) -> None:
    """The settings outside the command line, checked before anything loads (the endpoints
    and the cache folder were checked first, in main)."""
    if args.dataset == "gsm8k":
        data.chosen_source()
        data.check_local_dir()


def model_problem(error: Exception, args: argparse.Namespace) -> str:
    """The loader's message, with the way out that fits how the model was named."""
    from grpo.models import OFFLINE_WAYS_OUT

    if not args.model_from_flag:
        return str(error)
    return str(error).replace(
        OFFLINE_WAYS_OUT,
        "To run without it, pass --model tiny (the embedded demo model) or --model with a "
        "local folder that holds the downloaded model.",
    )


def run(args: argparse.Namespace) -> dict:
    """Check, resolve and load (nothing written yet), then claim the folder and evaluate."""
    from grpo.models import ModelUnavailable, resolve_for_evaluation

    check_environment(args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    claim = dict(owner=PROG, overwrite=args.overwrite, reuse_hint="pass --overwrite to replace it")
    RunDir.preflight(args.output_dir, OUTPUTS, settings, **claim)
    try:
        model = resolve_for_evaluation(args.model, args.adapter)
    except ModelUnavailable as error:
        raise UserError(model_problem(error, args)) from None
    dataset = load_questions(args.dataset, args.split, args.limit, args.seed)
    if len(dataset) == 0:
        raise UserError(f"no {args.dataset} {args.split} questions to evaluate")
    if args.limit and len(dataset) < args.limit:  # what was used, never silently less
        print(
            f"--limit {args.limit:,}: the {args.dataset} {args.split} split holds "
            f"{len(dataset):,} questions here; evaluating all {len(dataset):,}"
        )
    from grpo.models import choose_device, load_for_evaluation
    from grpo.progress import quiet_weight_loading

    quiet_weight_loading()  # the load says itself in one line, without a bar
    loaded = load_for_evaluation(model, choose_device())
    inputs = (model.base, model.adapter) if model.adapter else (model.base,)
    with RunDir(args.output_dir, OUTPUTS, settings, inputs=inputs, **claim) as run_dir:
        metrics = evaluate_to(args, run_dir, model, dataset, loaded)
        run_dir.finish()
    return metrics


def evaluate_to(args: argparse.Namespace, run_dir: RunDir, model, dataset, loaded) -> dict:
    """Evaluate the `loaded` (model, tokenizer, dtype) and write metrics.json and
    completions.jsonl into the claimed folder."""
    from grpo import artifacts
    from grpo.evaluation import GREEDY_GENERATION, evaluate
    from grpo.models import describe, origin
    from grpo.run_record import data_source, git_commit, versions

    settings = EVAL_SETTINGS[args.dataset]
    max_new_tokens = args.max_new_tokens or settings.max_new_tokens
    batch_size = args.batch_size or settings.batch_size
    generator, tokenizer, dtype = loaded

    print(f"Evaluating {args.model} on {len(dataset)} {args.dataset} {args.split} questions ...")
    result = evaluate(generator, tokenizer, dataset, max_new_tokens, batch_size)
    metrics = {
        "model": str(model.adapter) if model.adapter else describe(model.base),
        "model_requested": args.model,  # what --model or GRPO_MODEL said ("real", "auto")
        "model_source": origin(model.base),
        "base_model": describe(model.base),
        "adapter": str(model.adapter) if model.adapter else None,
        "dataset": args.dataset,
        "split": args.split,
        "max_new_tokens": max_new_tokens,
        "eval_dtype": str(dtype).removeprefix("torch."),
        "data_source": data_source(dataset),
        "eval_generation": GREEDY_GENERATION,
        **result.metrics,
        "versions": versions(),
        "git_commit": git_commit(),
        "wall_time_s": run_dir.wall_time_s(),
    }
    artifacts.write_jsonl(args.output_dir / "completions.jsonl", result.rows)
    artifacts.write_json(args.output_dir / "metrics.json", metrics)
    print(f"{args.model}: {summary_line(result)}; results in {args.output_dir}")
    return metrics


def main(argv: list[str] | None = None) -> dict | None:
    run_main(PROG, refuse_environment_problem)  # before the imports that read HF_ENDPOINT
    args = parse_args(argv)
    problem = argument_problem(args)
    if problem:
        usage_error(PROG, problem)
    return run_main(PROG, lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    main()
