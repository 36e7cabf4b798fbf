"""Train with GRPO and measure the effect: the pipeline of notebooks 05-06 as one command.

    python train_grpo.py --output-dir runs/demo            # GPU: learner profile; CPU: offline demo
    python train_grpo.py --output-dir runs/demo --dry-run  # the same run's settings and plan
    python train_grpo.py --profile real --output-dir runs/epoch   # the full epoch (GPU)
    python train_grpo.py --output-dir runs/demo --resume    # continue after a crash or Ctrl-C
    python train_grpo.py --config configs/learner_lora.yaml --output-dir runs/lora  # a recipe
    accelerate launch --config_file configs/accelerate_ddp.yaml --num_processes 2 \
        train_grpo.py --output-dir runs/ddp                  # see docs/scaling.md

Steps: resolve the run's settings once (grpo.run_config: recipe, flags, machine), claim the
output folder, get the model and data, evaluate (greedy), train, evaluate the saved model
again the same way, and write `metrics.json`, the completions before/after (JSONL),
`summary.png`, the final model in `final/` and checkpoints in `checkpoints/`. `run.json` is
written first and says "complete" only once all of that is there (see grpo/run_dir.py).
Exit codes: see grpo/cli.py.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
from pathlib import Path

import data
import netcheck
from grpo import checkpoints
from grpo.cli import UserError, refuse_environment_problem, run_main, usage_error
from grpo.plan import VLLM_REQUIREMENT
from grpo.run_config import CHECKPOINTS, RunArguments, RunConfig, parse
from grpo.run_dir import RunDir, check_launch_resume, is_main_process

PROG = "train_grpo.py"
BEFORE_METRICS = "evaluation_before.json"
OUTPUTS = (
    "metrics.json", "summary.png", "completions_before.jsonl", "completions_after.jsonl",
    BEFORE_METRICS, "final", CHECKPOINTS,
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> tuple[RunArguments, RunConfig]:
    """The arguments and the run they resolve to (grpo.run_config.parse); a mistake exits
    with status 2; a run this machine must not start (a real-size model on a CPU) too,
    except with --dry-run, which prints the plan first."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, config = parse(argv, PROG, description=__doc__.split("\n\n")[0])
    if config.refusal and not args.dry_run:
        usage_error(PROG, config.refusal)
    return args, config


def check_environment(config: RunConfig) -> None:
    """The settings that live outside the command line, checked before anything loads
    (the endpoints and the cache folder were checked first, in main)."""
    if config.real_data:  # the learner and real profiles never fall back to the excerpt
        data.check_full_gsm8k_available()  # GSM8K_DIR's files included
    else:
        data.check_local_dir()
    if config.grpo.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        raise UserError(
            f"--use-vllm needs vLLM (Linux + CUDA GPU): pip install '{VLLM_REQUIREMENT}', the "
            "release that fits the pinned torch, transformers and TRL"
        )
    wandb_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if "wandb" in config.grpo["report_to"] and wandb_mode not in netcheck.WANDB_LOCAL_MODES:
        if not netcheck.wandb_key_available():
            raise UserError(
                "GRPO_USE_WANDB is on but wandb has no API key: set WANDB_API_KEY or run "
                "`wandb login` (or set WANDB_MODE=offline to log to ./wandb only)"
            )
        netcheck.wandb_offline_fallback()  # no network: log offline, not a 100 s hang


def check_device(config: RunConfig) -> None:
    """The run was planned for a CUDA GPU: torch must see it (a CPU wheel or an old driver
    would otherwise train on the CPU without a word)."""
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        seen = (
            "nvidia-smi shows a GPU" if config.hardware.visible else "--gpu-memory-gb planned one"
        )
        raise UserError(
            f"{seen}, but torch {torch.__version__} cannot use CUDA (a CPU-only wheel or a "
            "driver too old for it): install the CUDA build of torch for this machine"
        )


def model_inputs(name: str) -> tuple[Path, ...]:
    """The model folder a run reads, when `name` is one: never one of the run's outputs."""
    from grpo.model_names import looks_like_path

    return (Path(name).expanduser(),) if looks_like_path(name) else ()


def model_folder(config: RunConfig, source: str | None = None) -> Path:
    """The model's local folder, found or downloaded (from `source`, see --model-source)
    before any output file exists; a real-size model found only now (a hub id) is checked
    against the CPU rule here."""
    from grpo.models import check_model_folder, resolve_model
    from grpo.run_config import cpu_problem, model_shape

    path = resolve_model(config.model, require_real=config.real_data, source=source)
    check_model_folder(path)
    if config.device == "cpu":
        problem = cpu_problem(model_shape(str(path)), config.plan.steps, config.allow_cpu)
        if problem:
            raise UserError(problem)
    return path


def load_data(config: RunConfig):
    """(training prompts, evaluation questions); GSM8K runs use the full data set only."""
    from grpo import training

    train_set, eval_set = training.load_datasets(
        config.profile, config.train_size, config.eval_size, config.seed
    )
    if not config.skip_eval and len(eval_set) == 0:
        raise UserError("no evaluation questions: check --eval-size and the data source")
    if config.train_size and len(train_set) < config.train_size:  # said, never silently less
        print(
            f"--train-size {config.train_size:,}: the training split holds {len(train_set):,} "
            "questions here; training on all of them"
        )
    return train_set, eval_set


def evaluate_folder(folder: Path, config: RunConfig, eval_set, output_dir: Path, tag: str):
    """Greedy evaluation of a saved model, loaded the same way before and after training
    (evaluation precision, no training wrappers); every completion goes to JSONL."""
    from grpo import artifacts
    from grpo.evaluation import evaluate
    from grpo.models import choose_device, load_for_evaluation, resolve_for_evaluation

    saved = resolve_for_evaluation(str(folder))
    model, tokenizer, dtype = load_for_evaluation(saved, choose_device(config.device))
    print(f"Evaluating {tag} training on {len(eval_set)} questions ...")
    settings = config.profile.evaluation
    result = evaluate(
        model, tokenizer, eval_set, settings.max_new_tokens, settings.batch_size,
        also_scored_at=settings.also_scored_at,
    )  # fmt: skip
    result.metrics["eval_dtype"] = str(dtype).removeprefix("torch.")
    artifacts.write_jsonl(output_dir / f"completions_{tag}.jsonl", result.rows)
    scores = {k: v for k, v in result.metrics.items() if isinstance(v, float)}
    print(f"  {tag}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    del model
    free_memory()
    return result


def evaluation_before(
    model_path: Path, config: RunConfig, eval_set, output_dir: Path, resume: bool
):
    """The evaluation of the untrained model. A resumed run reuses the one its first attempt
    saved (--resume has checked that model, questions and settings are the same): on a GPU
    that is minutes of generation not spent again after a Colab disconnect."""
    import json

    from grpo import artifacts
    from grpo.evaluation import EvalResult

    saved = output_dir / BEFORE_METRICS
    if resume and (output_dir / "completions_before.jsonl").is_file():
        try:
            metrics = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # not saved, or cut short: evaluate again
            metrics = None
        if saved_scores_usable(metrics, config, len(eval_set)):
            print(f"Reusing the evaluation before training from {saved} (--resume)")
            return EvalResult(metrics)
    result = evaluate_folder(model_path, config, eval_set, output_dir, "before")
    artifacts.write_json(saved, result.metrics)
    return result


def saved_scores_usable(metrics: object, config: RunConfig, questions: int) -> bool:
    """True if a saved evaluation_before.json holds every score this run's evaluation
    gives, as finite numbers, for as many questions: a hand-edited `{}` is evaluated again,
    not a KeyError once training has finished."""
    import math

    if not isinstance(metrics, dict):
        return False
    budgets = config.profile.evaluation.also_scored_at
    rates = ("accuracy", "strict_format", "soft_format")
    names = [*rates, "mean_tokens", *(f"{r}_at_{b}_tokens" for b in budgets for r in rates)]
    return (
        metrics.get("num_examples") == questions
        and isinstance(metrics.get("eval_dtype"), str)
        and all(isinstance(metrics.get(n), float) and math.isfinite(metrics[n]) for n in names)
    )


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_recorder(run_dir: RunDir, settings: dict):
    """A Trainer callback that keeps run.json's wall time current at every log, so the time
    of an attempt that gets killed still counts after --resume, and marks each checkpoint
    with the training settings of the run that saved it (checked by --resume)."""
    from transformers import TrainerCallback

    class RecordRun(TrainerCallback):
        def on_log(self, args, state, control, **kwargs):
            run_dir.update(wall_time_s=run_dir.wall_time_s(), global_step=state.global_step)

        def on_save(self, args, state, control, **kwargs):  # which run saved the checkpoint
            from grpo import artifacts

            folder = Path(args.output_dir) / f"{checkpoints.PREFIX}{state.global_step}"
            artifacts.write_json(folder / checkpoints.SETTINGS_FILE, settings)

    return RecordRun()


def checkpoint_match(config: RunConfig) -> dict:
    """What a checkpoint must share with this run to be resumed (one copied in from a run
    with other settings is skipped): its kind (LoRA or full), its planned steps and the
    training settings its run saved beside it."""
    max_steps = config.grpo.get("max_steps", -1)
    expected = {"max_steps": max_steps} if max_steps > 0 else {}
    settings = config.training_settings()
    return {"lora": config.lora is not None, "expected": expected, "settings": settings}


def resume_point(config: RunConfig, resume: bool) -> Path | None:
    """The newest complete checkpoint to continue from, when --resume asks for one."""
    if not resume:
        return None
    found = checkpoints.resume_point(
        Path(config.grpo["output_dir"]), load=True, report=print, **checkpoint_match(config)
    )
    print(f"Resuming from {found}")
    return found


def build_trainer(config: RunConfig, model_path: Path, train_set, run_dir: RunDir | None):
    """The model in fp32 master weights and TRL's GRPOTrainer with the resolved GRPOConfig."""
    from grpo import training
    from grpo.models import load_policy

    grpo_config = training.grpo_config(config)
    # grpo_config.device: cuda:<local rank> under `accelerate launch`, else cuda or cpu
    model, tokenizer, _ = load_policy(model_path, device=grpo_config.device, for_training=True)
    trainer = training.make_trainer(
        model, tokenizer, train_set, grpo_config, peft_config=training.lora_config(config.lora)
    )
    if run_dir:
        run_dir.update(grpo_config=grpo_config.to_dict())
        trainer.add_callback(run_recorder(run_dir, config.training_settings()))
    return trainer


def run_metrics(config, model_path, train_set, eval_set, trainer, before, after) -> dict:
    """metrics.json: the run's setup, its reward per step, and before/after results."""
    from grpo import training
    from grpo.evaluation import GREEDY_GENERATION
    from grpo.models import describe, origin
    from grpo.run_record import run_metrics as setup_metrics
    from grpo.run_record import trainer_precision

    metrics = {
        **setup_metrics(
            model=describe(model_path),
            model_source=origin(model_path),
            profile=config.profile.name,
            train_set=train_set,
            eval_set=eval_set,
            precision=trainer_precision(trainer),
            eval_generation=GREEDY_GENERATION,
            device=str(trainer.args.device),
        ),
        "eval_overlap_with_training": training.eval_overlap_with_training(
            config.profile, train_set, eval_set
        ),
        "seed": config.seed,
        "steps": trainer.state.global_step,
        "num_processes": trainer.args.world_size,
        "lora": config.lora is not None,
        "reward_per_step": [
            {"step": entry["step"], "reward": entry["reward"]}
            for entry in trainer.state.log_history
            if "reward" in entry
        ],
    }
    if before and after:
        metrics["eval_dtype"] = after.metrics["eval_dtype"]
        scores = [k for k, v in after.metrics.items() if isinstance(v, float)]
        for name in scores:
            metrics[f"{name}_before"] = before.metrics[name]
            metrics[f"{name}_after"] = after.metrics[name]
        metrics["eval_max_new_tokens"] = config.profile.evaluation.max_new_tokens
        metrics["num_eval_examples"] = after.metrics["num_examples"]
    return metrics


def train(args: RunArguments, config: RunConfig, model_path: Path, run_dir: RunDir | None) -> dict:
    """Evaluate, train, evaluate; `run_dir` is None in the non-main processes of a launch."""
    from transformers import set_seed
    from transformers.integrations import is_deepspeed_zero3_enabled

    from grpo import artifacts, plots

    set_seed(config.seed)
    if run_dir:
        from grpo.models import describe, origin

        run_dir.check_resolved({"model_folder": describe(model_path)}, args.resume)
        run_dir.update(model_source=origin(model_path))
    train_set, eval_set = load_data(config)
    if run_dir:
        from grpo.run_record import data_sources

        run_dir.update(data_sources=data_sources(train_set, eval_set))
    if is_deepspeed_zero3_enabled() and not config.skip_eval:
        raise UserError(
            "ZeRO-3 splits the weights across processes, so the main process cannot evaluate "
            "alone: add --skip-eval and run evaluate_model.py on final/ afterwards"
        )
    resume_from = resume_point(config, args.resume)
    evaluate_here = run_dir is not None and not config.skip_eval
    before = after = None
    if evaluate_here:
        before = evaluation_before(model_path, config, eval_set, args.folder, args.resume)

    trainer = build_trainer(config, model_path, train_set, run_dir)
    final = args.folder / "final"
    if resume_from and checkpoints.training_finished(resume_from):  # killed after training
        from transformers import TrainerState

        print(f"Training had finished at {resume_from.name}: its model becomes final/")
        trainer.state = TrainerState.load_from_json(str(resume_from / checkpoints.STATE_FILE))
        if run_dir is not None:
            checkpoints.export_model(resume_from, final)
    else:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if trainer.state.global_step == 0:
            raise UserError("training ran 0 steps: check --max-steps, --train-size and the batch")
        trainer.save_model(str(final))
    if run_dir is None:
        return {}
    if evaluate_here:
        trainer.model.to("cpu")  # make room: "after" reloads final/ as "before" loaded its model
        free_memory()
        after = evaluate_folder(final, config, eval_set, args.folder, "after")
    metrics = run_metrics(config, model_path, train_set, eval_set, trainer, before, after)
    if before and after:
        figure = plots.summary_figure(trainer.state.log_history, before.metrics, after.metrics)
        artifacts.save_figure(figure, args.folder / "summary.png")
    metrics["wall_time_s"] = run_dir.wall_time_s()
    artifacts.write_json(args.folder / "metrics.json", metrics)
    return metrics


def run(args: RunArguments, config: RunConfig) -> dict:
    """Check, claim the output folder (main process only), train, mark the run complete."""
    check_environment(config)
    claim = dict(
        outputs=OUTPUTS,
        settings=config.training_settings(),
        resume=args.resume,
        overwrite=args.overwrite,
        keep=(CHECKPOINTS,),
        owner="train_grpo.py",
        inputs=model_inputs(config.model),
    )
    main_process = is_main_process()
    if args.resume:  # every process of a launch must agree on what --resume continues
        check_launch_resume(args.folder, config.plan.processes)
    if main_process:  # refuse a folder we will not get before torch loads
        # False for --resume of an --overwrite cut short: the claim finishes it, afresh
        args.resume = RunDir.preflight(args.folder, **claim)
    if args.resume:
        checkpoints.resume_point(Path(config.grpo["output_dir"]), **checkpoint_match(config))
    check_device(config)
    for line in config.notes:
        print(line)
    from grpo import progress  # imports transformers: after the checks that need none

    progress.quiet_weight_loading()  # each load says itself in one line, without a bar
    # a model that cannot be had stops the run here
    model_path = model_folder(config, args.model_source)
    claim["inputs"] = (model_path,)
    if not main_process:
        return train(args, config, model_path, None)
    with RunDir(args.folder, **claim) as run_dir:
        run_dir.update(config=config.settings())
        metrics = train(args, config, model_path, run_dir)
        wall = run_dir.finish(global_step=metrics["steps"], wall_time_s=metrics["wall_time_s"])
    print(f"Done in {wall} s.")
    print("\n".join(progress.closing_lines(args.folder)))
    return metrics


def main(argv: list[str] | None = None) -> dict:
    # before the parser, which imports TRL: huggingface_hub reads HF_ENDPOINT at import
    run_main(PROG, refuse_environment_problem)
    args, config = parse_args(argv)
    if args.dry_run:  # nothing loaded, nothing written
        print(config.render())
        if config.refusal:  # the plan, and why this machine would refuse to start it
            usage_error(PROG, config.refusal)
        return {}
    return run_main(PROG, lambda: run(args, config), debug=args.debug)


if __name__ == "__main__":
    main()
