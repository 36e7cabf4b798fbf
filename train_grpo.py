"""Train with GRPO and measure the effect: the pipeline of notebooks 05-06 as one command.

    python train_grpo.py --output-dir runs/demo            # real model if reachable, else tiny
    GRPO_MODEL=real python train_grpo.py --output-dir runs/qwen
    accelerate launch --config_file configs/accelerate_ddp.yaml --num_processes 2 \
        train_grpo.py --output-dir runs/ddp                  # see docs/scaling.md

Steps: pick the model and profile, evaluate (greedy), train, evaluate again, and write to
the output folder `metrics.json`, the completions before/after (JSONL), `summary.png`,
the final model in `final/` and checkpoints in `checkpoints/`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

from transformers import set_seed
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from grpo import artifacts, plots
from grpo.evaluation import EvalResult, evaluate
from grpo.models import describe, load_policy
from grpo.training import load_datasets, make_config, make_trainer, select_policy

LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--model", help="auto | real | tiny | a local folder | a model id")
    parser.add_argument(
        "--profile",
        choices=["auto", "real", "tiny"],
        default="auto",
        help="hyper-parameters and data; auto: tiny for the tiny model",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, help="training prompts (default: profile)")
    parser.add_argument("--eval-size", type=int, help="evaluation questions (default: profile)")
    parser.add_argument("--skip-eval", action="store_true", help="train only, no evaluation")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")

    grpo = parser.add_argument_group("GRPOConfig overrides (default: the profile's value)")
    for flag, kind in [
        ("--max-steps", int),
        ("--learning-rate", float),
        ("--num-generations", int),
        ("--per-device-train-batch-size", int),
        ("--gradient-accumulation-steps", int),
        ("--max-completion-length", int),
        ("--beta", float),
        ("--loss-type", str),
        ("--temperature", float),
        ("--save-steps", int),
        ("--save-total-limit", int),
        ("--logging-steps", int),
    ]:
        grpo.add_argument(flag, type=kind)
    grpo.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass: less memory, ~30%% slower",
    )
    grpo.add_argument(
        "--use-vllm",
        action="store_true",
        help="generate with vLLM inside the training process (colocate mode)",
    )

    lora = parser.add_argument_group("LoRA (peft): train small adapters instead of all weights")
    lora.add_argument("--lora", action="store_true")
    lora.add_argument("--lora-r", type=int, default=16)
    lora.add_argument("--lora-alpha", type=int, default=32)
    lora.add_argument("--lora-target-modules", default=LORA_TARGETS)
    return parser.parse_args(argv)


def config_overrides(args: argparse.Namespace) -> dict:
    """Only the GRPOConfig fields the user set on the command line."""
    names = [
        "max_steps", "learning_rate", "num_generations", "per_device_train_batch_size",
        "gradient_accumulation_steps", "max_completion_length", "beta", "loss_type",
        "temperature", "save_steps", "save_total_limit", "logging_steps",
    ]  # fmt: skip
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.gradient_checkpointing:
        overrides["gradient_checkpointing"] = True
    if args.use_vllm:
        if importlib.util.find_spec("vllm") is None:
            raise SystemExit("--use-vllm needs vLLM: `pip install vllm` (Linux + CUDA GPU only).")
        overrides.update(use_vllm=True, vllm_mode="colocate")
    return overrides


def lora_config(args: argparse.Namespace):
    if not args.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        target_modules=args.lora_target_modules.split(","),
        task_type="CAUSAL_LM",
    )


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint that was fully written.

    The Trainer writes `trainer_state.json` last, so a run killed in the middle of a save
    leaves a newer folder without it; resuming from that one would crash every time.
    """
    complete = []
    for checkpoint in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        complete.append(checkpoint)
    if not complete:
        return None
    return str(max(complete, key=lambda c: int(c.name.rsplit("-", 1)[1])))


def evaluate_and_log(model, tokenizer, dataset, profile, output_dir: Path, tag: str) -> EvalResult:
    """Greedy evaluation, with every completion written to `completions_<tag>.jsonl`."""
    print(f"Evaluating {tag} training on {len(dataset)} questions ...")
    settings = profile.evaluation
    result = evaluate(model, tokenizer, dataset, settings.max_new_tokens, settings.batch_size)
    artifacts.write_jsonl(output_dir / f"completions_{tag}.jsonl", result.rows)
    print(f"  {tag}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()))
    return result


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    set_seed(args.seed)
    model_path, profile = select_policy(args.model, args.profile)
    train_set, eval_set = load_datasets(profile, args.train_size, args.eval_size, args.seed)
    config = make_config(
        profile, args.output_dir / "checkpoints", seed=args.seed, **config_overrides(args)
    )
    if is_deepspeed_zero3_enabled() and not args.skip_eval:
        raise SystemExit(
            "ZeRO-3 splits the weights across processes, so the main process cannot evaluate "
            "alone: add --skip-eval and run evaluate_model.py on final/ afterwards."
        )
    # config.device: cuda:<local rank> under `accelerate launch`, else cuda or cpu
    model, tokenizer, _ = load_policy(model_path, device=config.device, for_training=True)
    is_main = config.process_index == 0

    before = None
    if not args.skip_eval and is_main:
        before = evaluate_and_log(model, tokenizer, eval_set, profile, args.output_dir, "before")

    trainer = make_trainer(model, tokenizer, train_set, config, peft_config=lora_config(args))
    resume_from = None
    if args.resume:
        resume_from = last_complete_checkpoint(Path(config.output_dir))
        if resume_from is None:
            raise SystemExit(f"--resume: no checkpoint found in {config.output_dir}")
        print(f"Resuming from {resume_from}")
    trainer.train(resume_from_checkpoint=resume_from)
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
        "profile": profile.name,
        "model": describe(Path(model_path)),
        "seed": args.seed,
        "steps": trainer.state.global_step,
        "num_processes": config.world_size,
        "lora": args.lora,
        "wall_time_s": round(time.perf_counter() - started, 1),
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
    print(f"Done in {metrics['wall_time_s']} s; results in {args.output_dir}")
    return metrics


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
