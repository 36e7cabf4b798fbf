"""Train with GRPO and measure the effect: the pipeline of notebooks 05-06 as one command.

    python train_grpo.py --output-dir runs/demo            # real model if reachable, else tiny
    GRPO_MODEL=real python train_grpo.py --output-dir runs/qwen
    python train_grpo.py --output-dir runs/demo --resume    # continue after a crash or Ctrl-C
    accelerate launch --config_file configs/accelerate_ddp.yaml --num_processes 2 \
        train_grpo.py --output-dir runs/ddp                  # see docs/scaling.md

Steps: check every argument (before torch loads), pick the model and profile, evaluate
(greedy), train, evaluate again, and write to the output folder `metrics.json`, the
completions before/after (JSONL), `summary.png`, the final model in `final/` and
checkpoints in `checkpoints/`. `run.json` is written first and says "complete" only once
all of that is there (see grpo/run_dir.py); a folder holding a run is reused only with
--resume (same settings) or --overwrite. Exit codes: see grpo/cli.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import data
import netcheck
from grpo import checkpoints
from grpo.cli import (
    Parser,
    UserError,
    bounded,
    comma_list,
    non_negative_float,
    positive_float,
    positive_int,
    random_seed,
    run_main,
)
from grpo.model_names import EMBEDDED_MODELS, requested_name
from grpo.profiles import PROFILES, TINY, Profile
from grpo.run_dir import RunDir

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# TRL 1.16's GRPOConfig.loss_type values (tests/test_cli_args.py checks them).
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
CHECKPOINTS = "checkpoints"
OUTPUTS = (
    "metrics.json", "summary.png", "completions_before.jsonl", "completions_after.jsonl",
    "final", CHECKPOINTS,
)  # fmt: skip

# The GRPOConfig fields the command line can override (default None: the profile's value),
# with their argparse settings. One line per flag: a new one needs nothing else.
GRPO_FLAGS: dict[str, dict] = {
    "max_steps": dict(type=positive_int),
    "learning_rate": dict(type=positive_float),
    "num_generations": dict(type=bounded(int, 2), help="completions per prompt (at least 2)"),
    "per_device_train_batch_size": dict(type=positive_int, help="completions per micro-batch"),
    "gradient_accumulation_steps": dict(type=positive_int),
    "max_completion_length": dict(type=positive_int),
    "beta": dict(type=non_negative_float, help="KL penalty (0: no reference model)"),
    "loss_type": dict(choices=LOSS_TYPES),
    "temperature": dict(type=positive_float, help="sampling temperature (greater than 0)"),
    "save_steps": dict(type=positive_int),
    "save_total_limit": dict(type=positive_int),
    "logging_steps": dict(type=positive_int),
    "gradient_checkpointing": dict(
        action=argparse.BooleanOptionalAction,
        help="recompute activations in the backward pass: less memory, ~30%% slower",
    ),
}
# Fields that change only what is saved or printed: --resume accepts other values for them.
BOOKKEEPING_FIELDS = frozenset({"save_steps", "save_total_limit", "logging_steps"})


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def gpu_memory(text: str) -> float | str:
    """An argparse type: GB of GPU memory (greater than 0), or 'auto'."""
    return "auto" if text.strip().lower() == "auto" else positive_float(text)


def resolve_gpu(args: argparse.Namespace) -> bool:
    """Fill in --gpu-memory-gb auto from nvidia-smi (no torch); True if the GPU has bf16.

    With no GPU visible, an explicit size is planned like the README's card table: bf16
    autocast above 16 GB (L4, A10G, A100, H100 have it), fp32 up to 16 GB (a T4 has not).
    """
    from grpo.plan import BF16_ABOVE_GB, visible_gpu

    gpu = visible_gpu() if args.gpu_memory_gb is not None or args.dry_run else None
    if args.gpu_memory_gb == "auto" and gpu is not None:
        args.gpu_memory_gb = gpu[0]
    if gpu is None and isinstance(args.gpu_memory_gb, float):
        return args.gpu_memory_gb > BF16_ABOVE_GB
    return bool(gpu and gpu[1])


def make_plan(args: argparse.Namespace):
    """The run's plan (grpo.plan) from the command line; the real profile when the model
    choice is automatic (it is the real model wherever a source answers)."""
    from grpo.plan import make_plan

    profile = known_profile(args) or PROFILES["real"]
    overrides = config_overrides(args, fit=False)
    return make_plan(
        profile, overrides, args.gpu_memory_gb, bf16=args.gpu_bf16, lora=args.lora,
        train_rows=args.train_size,
    )  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, every value and combination checked: a mistake exits with status 2."""
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--model", help="auto | real | tiny | tiny-random | a folder | a model id")
    parser.add_argument(
        "--profile",
        choices=["auto", *PROFILES],
        default="auto",
        help="hyper-parameters and data; auto: tiny for the tiny model",
    )
    parser.add_argument("--seed", type=random_seed, default=0)
    parser.add_argument("--train-size", type=positive_int, help="prompts (default: profile)")
    parser.add_argument("--eval-size", type=positive_int, help="questions (default: profile)")
    parser.add_argument("--skip-eval", action="store_true", help="train only, no evaluation")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    reuse.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --output-dir"
    )
    parser.add_argument("--debug", action="store_true", help="tracebacks for every error")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (steps, batch layout, estimated GPU memory and time) and stop",
    )
    parser.add_argument(
        "--gpu-memory-gb",
        type=gpu_memory,
        help="fit this much GPU memory ('auto': the visible GPU's) by trading micro-batch "
        "for accumulation, keeping the completions per step",
    )

    grpo = parser.add_argument_group("GRPOConfig overrides (default: the profile's value)")
    for field, settings in GRPO_FLAGS.items():
        grpo.add_argument(flag(field), **settings)
    grpo.add_argument(
        "--use-vllm",
        action="store_true",
        help="generate with vLLM inside the training process (colocate mode)",
    )

    lora = parser.add_argument_group("LoRA (peft): train small adapters instead of all weights")
    lora.add_argument("--lora", action="store_true")
    lora.add_argument("--lora-r", type=positive_int, help="rank (default 16)")
    lora.add_argument("--lora-alpha", type=positive_int, help="scale (default 32)")
    lora.add_argument(
        "--lora-target-modules",
        type=comma_list(LORA_TARGETS),
        help="comma-separated Qwen2 projections (default: all seven)",
    )
    args = parser.parse_args(argv)
    args.gpu_bf16 = resolve_gpu(args)
    problem = argument_problem(args)
    if problem:
        parser.error(problem)
    return args


def known_profile(args: argparse.Namespace) -> Profile | None:
    """The profile, if the names decide it; with the automatic model choice it waits for
    the model (the real one if a source answers, else tiny)."""
    if args.profile != "auto":
        return PROFILES[args.profile]
    return TINY if requested_name(args.model) in EMBEDDED_MODELS else None


def config_overrides(args: argparse.Namespace, fit: bool = True) -> dict:
    """The GRPOConfig fields the user set on the command line, and with --gpu-memory-gb
    (`fit`) the batch layout and checkpointing that fit the card."""
    overrides = {name: getattr(args, name) for name in GRPO_FLAGS}
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if fit and getattr(args, "gpu_memory_gb", None) is not None:
        plan = make_plan(args)
        overrides.update(
            per_device_train_batch_size=plan.micro_batch,
            gradient_accumulation_steps=plan.accumulation,
            gradient_checkpointing=plan.gradient_checkpointing,
        )
    if args.use_vllm:
        overrides.update(use_vllm=True, vllm_mode="colocate")
    return overrides


def batch_problem(profile: Profile, overrides: dict, train_rows: int | None) -> str | None:
    """Why the GRPO batch cannot work, or None. TRL needs whole groups of `num_generations`
    completions per step, and drops a step that lacks prompts (a run of 0 steps)."""
    grpo = profile.with_grpo(**overrides)
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
    micro, accumulation = grpo["per_device_train_batch_size"], grpo["gradient_accumulation_steps"]
    completions, generations = micro * accumulation * processes, grpo["num_generations"]
    if completions % generations:
        return (
            f"--per-device-train-batch-size {micro} x --gradient-accumulation-steps "
            f"{accumulation} x {processes} process(es) = {completions} completions per step, "
            f"not a multiple of --num-generations {generations}"
        )
    prompts = completions // generations
    if train_rows is not None and train_rows < prompts:
        return (
            f"one step needs {prompts} training prompts ({completions} completions / "
            f"{generations} per prompt) but the training set has {train_rows}: "
            "raise --train-size or lower --per-device-train-batch-size"
        )
    return None


def argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with this combination of arguments, or None (no file is touched)."""
    if args.output_dir.exists() and not args.output_dir.is_dir():
        return f"argument --output-dir: {args.output_dir} is a file, not a folder"
    lora_names = ("lora_r", "lora_alpha", "lora_target_modules")
    lora_options = [flag(name) for name in lora_names if getattr(args, name)]
    if lora_options and not args.lora:
        return f"{', '.join(lora_options)} without --lora has no effect: add --lora"
    if args.gpu_memory_gb == "auto":
        return "argument --gpu-memory-gb: auto, but nvidia-smi shows no GPU: give a size in GB"
    if args.gpu_memory_gb is not None and not args.dry_run:
        plan = make_plan(args)
        if plan.lora and not args.lora:
            return f"{plan.advice} Command: {plan.command(str(args.output_dir))}"
        if not plan.fits:
            budget = f"{args.gpu_memory_gb:g} GB"
            return f"the estimated peak memory does not fit {budget} (--dry-run shows it)"
    profile = known_profile(args)
    if profile is None:
        return None
    return batch_problem(profile, config_overrides(args), args.train_size or profile.train_size)


def check_environment(args: argparse.Namespace) -> None:
    """The settings that live outside the command line, checked before anything loads."""
    try:
        data.check_local_dir()
    except data.DataUnavailable as error:
        raise UserError(str(error)) from None
    if args.use_vllm and importlib.util.find_spec("vllm") is None:
        raise UserError("--use-vllm needs vLLM: `pip install vllm` (Linux + CUDA GPU only)")
    wandb_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if os.environ.get("GRPO_USE_WANDB") == "1" and wandb_mode not in netcheck.WANDB_LOCAL_MODES:
        if not netcheck.wandb_key_available():
            raise UserError(
                "GRPO_USE_WANDB=1 but wandb has no API key: set WANDB_API_KEY or run "
                "`wandb login` (or set WANDB_MODE=offline to log to ./wandb only)"
            )
        netcheck.wandb_offline_fallback()


def run_settings(args: argparse.Namespace) -> dict:
    """What decides the training itself: --resume continues a run only if these match."""
    grpo = {k: v for k, v in config_overrides(args).items() if k not in BOOKKEEPING_FIELDS}
    lora = None
    if args.lora:
        lora = {
            "r": args.lora_r or 16,
            "alpha": args.lora_alpha or 32,
            "targets": args.lora_target_modules or list(LORA_TARGETS),
        }
    return {
        "model": requested_name(args.model),
        "profile": args.profile,
        "seed": args.seed,
        "train_size": args.train_size,
        "data": {v: os.environ.get(v) for v in (data.SOURCE_ENV_VAR, data.LOCAL_DIR_ENV_VAR)},
        "grpo": grpo,
        "lora": lora,
    }


def lora_config(settings: dict | None):
    if settings is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        target_modules=settings["targets"],
        task_type="CAUSAL_LM",
    )


def model_problem(error: Exception, model_flag: str | None) -> str:
    """The loader's message, with its way out phrased for how the model was chosen."""
    from grpo.models import OFFLINE_WAYS_OUT

    if not model_flag:
        return str(error)
    return str(error).replace(
        OFFLINE_WAYS_OUT,
        "To run without it, pass --model tiny (the embedded demo model) or --model with a "
        "local folder that holds the downloaded model.",
    )


def evaluate_and_log(model, tokenizer, dataset, profile, output_dir: Path, tag: str):
    """Greedy evaluation, with every completion written to `completions_<tag>.jsonl`."""
    from grpo import artifacts
    from grpo.evaluation import evaluate

    print(f"Evaluating {tag} training on {len(dataset)} questions ...")
    settings = profile.evaluation
    result = evaluate(model, tokenizer, dataset, settings.max_new_tokens, settings.batch_size)
    artifacts.write_jsonl(output_dir / f"completions_{tag}.jsonl", result.rows)
    print(f"  {tag}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()))
    return result


def wall_time_recorder(run_dir: RunDir):
    """A Trainer callback that keeps run.json's wall time current at every log, so the time
    of an attempt that gets killed still counts after --resume."""
    from transformers import TrainerCallback

    class RecordWallTime(TrainerCallback):
        def on_log(self, args, state, control, **kwargs):
            run_dir.update(wall_time_s=run_dir.wall_time_s(), global_step=state.global_step)

    return RecordWallTime()


def resolve_policy(args: argparse.Namespace) -> tuple[Path, Profile]:
    """The model folder and profile, found (or downloaded) before any output file exists:
    a run that cannot get the model it asked for stops here, having written nothing."""
    from grpo import training
    from grpo.models import ModelUnavailable

    try:
        return training.select_policy(args.model, args.profile)
    except ModelUnavailable as error:
        raise UserError(model_problem(error, args.model)) from None


def train(args: argparse.Namespace, run_dir: RunDir | None, policy: tuple[Path, Profile]) -> dict:
    """Evaluate, train, evaluate; `run_dir` is None in the non-main processes of a launch."""
    from transformers import set_seed
    from transformers.integrations import is_deepspeed_zero3_enabled

    from grpo import artifacts, plots, training
    from grpo.evaluation import GREEDY_GENERATION
    from grpo.models import describe, load_policy
    from grpo.run_record import run_metrics, trainer_precision

    set_seed(args.seed)
    model_path, profile = policy
    if run_dir:
        resolved = {"model_folder": describe(model_path), "resolved_profile": profile.name}
        run_dir.check_resolved(resolved, args.resume)
    overrides = config_overrides(args)
    try:
        train_set, eval_set = training.load_datasets(
            profile, args.train_size, args.eval_size, args.seed
        )
    except data.DataUnavailable as error:
        raise UserError(str(error)) from None
    problem = batch_problem(profile, overrides, len(train_set))
    if problem:
        raise UserError(problem)
    if not args.skip_eval and len(eval_set) == 0:
        raise UserError("no evaluation questions: check --eval-size and the data source")
    config = training.make_config(
        profile, args.output_dir / CHECKPOINTS, seed=args.seed, **overrides
    )
    if is_deepspeed_zero3_enabled() and not args.skip_eval:
        raise UserError(
            "ZeRO-3 splits the weights across processes, so the main process cannot evaluate "
            "alone: add --skip-eval and run evaluate_model.py on final/ afterwards"
        )
    resume_from = None
    if args.resume:
        resume_from = checkpoints.newest_complete(Path(config.output_dir), load=True, report=print)
        if resume_from is None:
            raise UserError(f"--resume: no complete checkpoint in {config.output_dir}")
        print(f"Resuming from {resume_from}")
    # config.device: cuda:<local rank> under `accelerate launch`, else cuda or cpu
    model, tokenizer, _ = load_policy(model_path, device=config.device, for_training=True)
    is_main = config.process_index == 0

    before = None
    if not args.skip_eval and is_main:
        before = evaluate_and_log(model, tokenizer, eval_set, profile, args.output_dir, "before")

    lora = run_settings(args)["lora"]
    trainer = training.make_trainer(
        model, tokenizer, train_set, config, peft_config=lora_config(lora)
    )
    if run_dir:
        trainer.add_callback(wall_time_recorder(run_dir))
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if trainer.state.global_step == 0:
        raise UserError("training ran 0 steps: check --max-steps, --train-size and the batch")
    trainer.save_model(str(args.output_dir / "final"))
    if not is_main:
        return {}

    after = None
    if not args.skip_eval:
        after = evaluate_and_log(
            trainer.model, tokenizer, eval_set, profile, args.output_dir, "after"
        )
    history = trainer.state.log_history
    metrics = {
        **run_metrics(
            model=describe(Path(model_path)),
            profile=profile.name,
            train_set=train_set,
            eval_set=eval_set,
            precision=trainer_precision(trainer),
            eval_generation=GREEDY_GENERATION,
            device=str(config.device),
        ),
        "eval_overlap_with_training": training.eval_overlap_with_training(
            profile, train_set, eval_set
        ),
        "seed": args.seed,
        "steps": trainer.state.global_step,
        "num_processes": config.world_size,
        "lora": args.lora,
        "wall_time_s": run_dir.wall_time_s() if run_dir else None,
        "reward_per_step": [
            {"step": entry["step"], "reward": entry["reward"]}
            for entry in history
            if "reward" in entry
        ],
    }
    if before and after:
        for name in ("accuracy", "strict_format", "soft_format", "mean_tokens"):
            metrics[f"{name}_before"] = before.metrics[name]
            metrics[f"{name}_after"] = after.metrics[name]
        metrics["num_eval_examples"] = after.metrics["num_examples"]
        figure = plots.summary_figure(history, before.metrics, after.metrics)
        artifacts.save_figure(figure, args.output_dir / "summary.png")
    artifacts.write_json(args.output_dir / "metrics.json", metrics)
    return metrics


def run(args: argparse.Namespace) -> dict:
    """Check, claim the output folder (main process only), train, mark the run complete."""
    check_environment(args)
    if args.resume and checkpoints.newest_complete(args.output_dir / CHECKPOINTS) is None:
        raise UserError(f"--resume: no complete checkpoint in {args.output_dir / CHECKPOINTS}")
    main_process = int(os.environ.get("RANK", "0")) == 0  # RANK: set by accelerate launch
    claim = dict(
        outputs=OUTPUTS,
        settings=run_settings(args),
        resume=args.resume,
        overwrite=args.overwrite,
        keep=(CHECKPOINTS,),
    )
    if main_process:  # refuse a folder we will not get before loading anything
        RunDir.preflight(args.output_dir, **claim)
    policy = resolve_policy(args)
    if not main_process:
        return train(args, None, policy)
    with RunDir(args.output_dir, **claim) as run_dir:
        metrics = train(args, run_dir, policy)
        run_dir.finish(global_step=metrics["steps"])
    print(f"Done in {metrics['wall_time_s']} s; results in {args.output_dir}")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.dry_run:  # nothing loaded, nothing written
        print(make_plan(args).render(str(args.output_dir)))
        return {}
    return run_main("train_grpo.py", lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    main()
