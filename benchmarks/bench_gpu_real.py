"""The GPU check: the learner profile's first GRPO steps on Qwen2.5-0.5B-Instruct, measured.

One command for the day a CUDA GPU is at hand. It trains `--steps` optimiser steps (after
one warm-up step that is not counted) exactly as `train_grpo.py --profile learner` would:
the run `grpo.run_config.resolve_run` gives for it on this GPU (64 completions of up to 200
tokens per step, the batch fitted to the card, fp32 master weights, bf16 autocast where the
GPU has it). Then it saves one checkpoint and prints, as markdown for
benchmarks/RESULTS.md: the card, seconds per step, generation tokens per second, peak GPU
memory next to grpo.plan's estimate, the bytes of one checkpoint next to the plan's, the
projected learner run and epoch, and the steps whose loss or gradient norm was not finite
and the optimiser steps the gradient scaler skipped (what tells a T4 owner whether
`--fp16` is safe).

With `--variants auto` (the default) it also runs `--fp16` on a GPU without bf16 (a T4):
one table per variant. (vLLM is not measured here: generation through it is TRL's code,
and no machine of this project has run it.)

The model is the real one if it is cached or downloadable; otherwise a Qwen2.5-0.5B-shaped
model with random weights, built from the Qwen2.5 tokenizer and config files (`--tokenizer-
dir`, default the copy in assets/): the same shapes and so the same memory and matmul
time, but random weights rarely stop early, so every completion runs to the limit (the
worst case for time).

Run from the repository root:

    python -m benchmarks.bench_gpu_real                      # on a CUDA machine
    python -m benchmarks.bench_gpu_real --model random       # never download
    python -m benchmarks.bench_gpu_real --gpu-memory-gb 16   # the layout fitted to 16 GB
    python -m benchmarks.bench_gpu_real --variants fp16      # only the fp16 run
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import GRPOConfig

import data
from grpo import plan, training
from grpo.cli import ConfigError, bounded, positive_int
from grpo.models import ModelUnavailable, describe, load_policy, resolve_model
from grpo.profiles import LEARNER, REAL
from grpo.run_config import Hardware, RunConfig, detect_hardware, resolve_run
from grpo.run_record import versions
from offline_demo.qwen_standin import QWEN_FILES_DIR, build_full_shape

LAYOUT = ("num_generations", "per_device_train_batch_size",
          "gradient_accumulation_steps", "max_completion_length")  # fmt: skip
VARIANTS = ("auto", "base", "fp16")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=positive_int, default=5, help="timed steps (after 1 warm-up)"
    )
    parser.add_argument("--model", default="auto", help="auto | real | random | a model folder")
    parser.add_argument("--tokenizer-dir", type=Path, default=QWEN_FILES_DIR)
    parser.add_argument(
        "--gpu-memory-gb", type=bounded(float, 0.0, plan.MAX_GPU_MEMORY_GB, strict=True),
        help="plan for a card of this size (default: the visible GPU's)",
    )  # fmt: skip
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=["auto"],
        help="auto: the base run, then --fp16 on a GPU without bf16",
    )  # fmt: skip
    for name in LAYOUT:
        parser.add_argument(
            "--" + name.replace("_", "-"), type=positive_int, help="default: profile's"
        )
    return parser.parse_args(argv)


def variants(requested: list[str], hardware: Hardware) -> list[str]:
    """The variants to run: `auto` adds fp16 on a visible GPU without bf16. Whether a
    variant can run here is the run's resolution's to say (`--fp16` needs such a GPU)."""
    if "auto" in requested:
        return ["base"] + (["fp16"] if hardware.visible and not hardware.bf16 else [])
    return list(dict.fromkeys(requested))


def model_folder(args: argparse.Namespace, scratch: Path) -> tuple[Path, str]:
    """(folder, description): the real model when asked for or available, else random."""
    if args.model not in ("auto", "random"):
        folder = resolve_model(args.model, require_real=True)
        return folder, describe(folder)
    if args.model == "auto":
        try:
            return resolve_model("real", require_real=True), "Qwen2.5-0.5B-Instruct"
        except ModelUnavailable as error:
            print(f"[bench] {error}\n[bench] Using a random model of the same shape.")
    if not args.tokenizer_dir.is_dir():
        raise SystemExit(f"--model random needs Qwen2.5's tokenizer and config files in a folder: "
                         f"{args.tokenizer_dir} is missing (pass --tokenizer-dir)")  # fmt: skip
    folder = build_full_shape(scratch / "qwen-shape-random", args.tokenizer_dir)
    return folder, "random weights, Qwen2.5-0.5B-Instruct's shape"


class StepWatch(TrainerCallback):
    """Wall time of each optimiser step (the GPU synchronised at both ends), the logged
    steps whose loss or gradient norm is not finite, and the optimiser steps the fp16
    gradient scaler skipped (accelerate's `AcceleratedOptimizer.step_was_skipped`)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.non_finite: list[int] = []
        self.skipped: list[int] = []

    def on_train_begin(self, args, state, control, **kwargs):
        """The peaks the report reads are this variant's alone: the last one's cached
        blocks are freed and the counters start again."""
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = self._now()

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.seconds.append(self._now() - self.started)
        if getattr(optimizer, "step_was_skipped", False):
            self.skipped.append(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        values = [(logs or {}).get(key) for key in ("loss", "grad_norm")]
        if any(v is not None and not math.isfinite(float(v)) for v in values):
            self.non_finite.append(state.global_step)


def time_generation(model, record: list[tuple[float, int]]) -> None:
    """Wrap `model.generate` to record (seconds, new non-pad tokens) of every call."""
    original, pad = model.generate, model.generation_config.pad_token_id

    def timed(*args, **kwargs):
        start = time.perf_counter()
        output = original(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        new = int((output[:, kwargs["input_ids"].shape[1] :] != pad).sum())
        record.append((time.perf_counter() - start, new))
        return output

    model.generate = timed


def learner_run(args: argparse.Namespace, variant: str, folder: Path, out: Path) -> RunConfig:
    """The run `train_grpo.py --profile learner --model FOLDER --output-dir OUT` with this
    variant's flags resolves to (grpo.run_config.resolve_run: the same recipe, card fitting
    and precision), stopped after the warm-up and `--steps` steps, saved as one checkpoint.
    A setting this machine refuses is train_grpo's one-line usage error (exit 2)."""
    steps = args.steps + 1
    layout = {name: getattr(args, name) for name in LAYOUT}
    run = resolve_run(
        out, profile="learner", model=str(folder), skip_eval=True,
        gpu_memory_gb=args.gpu_memory_gb, fp16=variant == "fp16", max_steps=steps,
        save_strategy="steps", save_steps=steps, disable_tqdm="true",
        **layout,
    )  # fmt: skip
    if run.refusal:
        raise SystemExit(f"bench_gpu_real: {run.refusal}")
    return run


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def report(
    variant: str, description: str, config, watch: StepWatch, generations: list,
    checkpoint_bytes: int, shape: plan.ModelShape,
) -> str:  # fmt: skip
    """The measurements as markdown, next to the plan's estimates for the same run."""
    timed = watch.seconds[1:] or watch.seconds  # the first step is a warm-up
    per_step = statistics.median(timed)
    gen_seconds = sum(s for s, _ in generations[1:] or generations)
    gen_tokens = sum(n for _, n in generations[1:] or generations)
    card_gb = None  # the card's own memory, or none
    if torch.cuda.is_available():
        card = torch.cuda.get_device_name()
        card_gb = torch.cuda.get_device_properties(0).total_memory / plan.GB
        peak = f"{torch.cuda.max_memory_allocated() / plan.GB:.2f} GB allocated"
        peak += f" ({torch.cuda.max_memory_reserved() / plan.GB:.2f} GB reserved)"
    else:  # ru_maxrss is in KiB on Linux
        card = f"CPU ({platform.processor() or platform.machine()})"
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / plan.GB:.2f} GB RSS"
    ran = {name: getattr(config, name) for name in (*LAYOUT, "gradient_checkpointing")}
    kwargs = dict(bf16=bool(config.bf16), fp16=bool(config.fp16), shape=shape)
    learner = plan.make_plan(LEARNER, ran, card_gb, **kwargs)  # the layout that ran, not refitted
    epoch = plan.make_plan(REAL, ran, card_gb, **kwargs)
    completions = config.per_device_train_batch_size * config.gradient_accumulation_steps
    precision = "bf16 autocast" if config.bf16 else ("fp16 autocast" if config.fp16 else "fp32")
    ratio = checkpoint_bytes / learner.disk.checkpoint
    rows = [
        ("variant", variant),
        ("device", f"{card} ({config.device})" + (f", {card_gb:.1f} GB" if card_gb else "")),
        ("model", description),
        ("layout", f"{completions} completions/step = {config.per_device_train_batch_size} x "
                   f"{config.gradient_accumulation_steps}, max {config.max_completion_length} "
                   f"tokens, checkpointing {'on' if config.gradient_checkpointing else 'off'}, "
                   f"{precision}"),
        ("seconds per step (median)", f"{per_step:.2f} s over {len(timed)} step(s): "
                                      + ", ".join(f"{s:.2f}" for s in timed)),
        ("generation", f"{gen_tokens / gen_seconds:,.0f} tokens/s "
                       f"({gen_tokens:,} tokens in {gen_seconds:.1f} s)"),
        ("peak memory (measured)", peak),
        ("peak memory (plan's estimate)", f"{learner.memory.total / plan.GB:.2f} GB"),
        ("disk per checkpoint (measured)", f"{checkpoint_bytes / plan.GB:.3f} GB "
                                           f"({ratio:.3f} x the plan's "
                                           f"{learner.disk.checkpoint / plan.GB:.3f} GB)"),
        ("non-finite loss or grad norm", f"{len(watch.non_finite)} of {len(watch.seconds)} "
                                         f"steps {watch.non_finite or ''}".rstrip()),
        ("skipped optimiser steps", f"{len(watch.skipped)} of {len(watch.seconds)} "
                                    f"{watch.skipped or ''}".rstrip()),
        ("projected learner run", f"{learner.steps} steps x {per_step:.2f} s = "
                                  f"{learner.steps * per_step / 60:.0f} min + evaluation"),
        ("projected epoch (real)", f"{epoch.steps:,} steps x {per_step:.2f} s = "
                                   f"{epoch.steps * per_step / 3600:.1f} h"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions().items())),
    ]  # fmt: skip
    return "\n".join(
        ["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    )


def run_variant(args, variant: str, folder: Path, description: str, scratch: Path) -> str:
    """Train warm-up + `--steps` steps of the learner profile, save one checkpoint, report."""
    run = learner_run(args, variant, folder, scratch / f"out-{variant}")
    config = GRPOConfig(**run.grpo)
    model, tokenizer, _ = load_policy(folder, device=config.device, for_training=True)
    prompts = config.max_steps * config.generation_batch_size // config.num_generations
    train_set = data.load_gsm8k("train", limit=prompts)
    trainer = training.make_trainer(model, tokenizer, train_set, config)
    watch, generations = StepWatch(), []
    trainer.add_callback(watch)
    time_generation(trainer.model, generations)
    trainer.train()
    checkpoint = folder_bytes(Path(config.output_dir) / f"checkpoint-{config.max_steps}")
    text = report(variant, description, config, watch, generations, checkpoint, run.plan.shape)
    del trainer, model  # freed before the next variant's on_train_begin empties the cache
    return text


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    try:
        chosen = variants(args.variants, detect_hardware(args.gpu_memory_gb))
    except ConfigError as error:
        raise SystemExit(f"bench_gpu_real: {error}") from None
    with tempfile.TemporaryDirectory() as scratch:
        folder, description = model_folder(args, Path(scratch))
        tables = [run_variant(args, v, folder, description, Path(scratch)) for v in chosen]
    text = "\n\n".join(tables)
    print(text)
    return text


if __name__ == "__main__":
    main()
