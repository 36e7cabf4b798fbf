"""The GPU check: real-profile GRPO steps on Qwen2.5-0.5B-Instruct, timed and measured.

One command for the day a CUDA GPU is at hand. It trains `--steps` optimiser steps with the
real profile (64 completions of up to 200 tokens per step, fp32 weights, bf16 autocast
where the GPU has it) and prints, as markdown for benchmarks/RESULTS.md: seconds per step,
generation tokens per second, peak GPU memory next to grpo.plan's estimate, and the
projected time of an epoch and of the learner profile. The first step is a warm-up and is
not counted.

The model is the real one if it is cached or downloadable; otherwise a Qwen2.5-0.5B-shaped
model with random weights, built from the Qwen2.5 tokenizer and config files (`--tokenizer-
dir`, default the project's shared copy): the same shapes and so the same memory and
matmul time, but random weights rarely stop early, so every completion runs to the limit
(the worst case for time).

Run from the repository root:

    python -m benchmarks.bench_gpu_real                      # on a CUDA machine
    python -m benchmarks.bench_gpu_real --model random       # never download
    python -m benchmarks.bench_gpu_real --gpu-memory-gb 16   # the layout fitted to 16 GB
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

import data
from grpo import plan, training
from grpo.models import ModelUnavailable, describe, load_policy, resolve_model
from grpo.profiles import LEARNER, REAL
from grpo.run_record import versions
from offline_demo.qwen_standin import SHARED_QWEN_DIR, build_full_shape


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 1 warm-up)")
    parser.add_argument("--model", default="auto", help="auto | real | random | a model folder")
    parser.add_argument("--tokenizer-dir", type=Path, default=SHARED_QWEN_DIR)
    parser.add_argument("--gpu-memory-gb", type=float, help="use grpo.plan's fitted layout")
    for name in ("num_generations", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "max_completion_length"):  # fmt: skip
        parser.add_argument("--" + name.replace("_", "-"), type=int, help="default: profile's")
    return parser.parse_args(argv)


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


class StepTimer(TrainerCallback):
    """Wall time of each optimiser step (the GPU synchronised at both ends)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = self._now()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(self._now() - self.started)


def time_generation(model, record: list[tuple[float, int]]) -> None:
    """Wrap `model.generate` to record (seconds, new non-pad tokens) of every call."""
    original = model.generate

    def timed(*args, **kwargs):
        start = time.perf_counter()
        output = original(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        prompt_length = kwargs["input_ids"].shape[1]
        pad = model.generation_config.pad_token_id
        new = output[:, prompt_length:]
        record.append((time.perf_counter() - start, int((new != pad).sum())))
        return output

    model.generate = timed


def overrides_from(args: argparse.Namespace) -> dict:
    names = ("num_generations", "per_device_train_batch_size",
             "gradient_accumulation_steps", "max_completion_length")  # fmt: skip
    chosen = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.gpu_memory_gb is not None:
        fitted = plan.make_plan(REAL, chosen, args.gpu_memory_gb, bf16=training.gpu_supports_bf16())
        chosen.update(
            per_device_train_batch_size=fitted.micro_batch,
            gradient_accumulation_steps=fitted.accumulation,
            gradient_checkpointing=fitted.gradient_checkpointing,
        )
    return chosen


def report(description: str, config, timer: StepTimer, generations: list, overrides: dict) -> str:
    """The measurements as markdown, with the epoch projected from the measured step time."""
    timed = timer.seconds[1:] or timer.seconds  # the first step is a warm-up
    per_step = statistics.median(timed)
    gen_seconds = sum(s for s, _ in generations[1:] or generations)
    gen_tokens = sum(n for _, n in generations[1:] or generations)
    fitted = plan.make_plan(REAL, overrides, bf16=bool(config.bf16))
    epoch_steps, learner_steps = fitted.steps, plan.make_plan(LEARNER, overrides).steps
    if torch.cuda.is_available():
        peak = f"{torch.cuda.max_memory_allocated() / plan.GB:.2f} GB allocated"
        peak += f" ({torch.cuda.max_memory_reserved() / plan.GB:.2f} GB reserved)"
        card = torch.cuda.get_device_name()
    else:  # ru_maxrss is in KiB on Linux
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / plan.GB:.2f} GB RSS"
        card = f"CPU ({platform.processor() or platform.machine()})"
    completions = config.per_device_train_batch_size * config.gradient_accumulation_steps
    rows = [
        ("device", f"{card} ({config.device})"),
        ("model", description),
        ("layout", f"{completions} completions/step = {config.per_device_train_batch_size} x "
                   f"{config.gradient_accumulation_steps}, max {config.max_completion_length} "
                   f"tokens, checkpointing {'on' if config.gradient_checkpointing else 'off'}, "
                   f"{'bf16 autocast' if config.bf16 else 'fp32'}"),
        ("seconds per step (median)", f"{per_step:.2f} s over {len(timed)} step(s): "
                                      + ", ".join(f"{s:.2f}" for s in timed)),
        ("generation", f"{gen_tokens / gen_seconds:,.0f} tokens/s "
                       f"({gen_tokens:,} tokens in {gen_seconds:.1f} s)"),
        ("peak memory (measured)", peak),
        ("peak memory (estimate, Qwen2.5-0.5B shape)", f"{fitted.memory.total / plan.GB:.2f} GB"),
        ("projected epoch (real)", f"{epoch_steps:,} steps x {per_step:.2f} s = "
                                   f"{epoch_steps * per_step / 3600:.1f} h"),
        ("projected learner run", f"{learner_steps} steps x {per_step:.2f} s = "
                                  f"{learner_steps * per_step / 60:.0f} min + evaluation"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions().items())),
    ]  # fmt: skip
    return "\n".join(
        ["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    )


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder, description = model_folder(args, Path(scratch))
        overrides = overrides_from(args)
        config = training.make_config(
            REAL, Path(scratch) / "out", max_steps=args.steps + 1, save_strategy="no",
            report_to=[], disable_tqdm=True, **overrides,
        )  # fmt: skip
        model, tokenizer, _ = load_policy(folder, device=config.device, for_training=True)
        prompts = (args.steps + 1) * config.generation_batch_size // config.num_generations
        train_set = data.load_gsm8k("train", limit=prompts)
        trainer = training.make_trainer(model, tokenizer, train_set, config)
        timer, generations = StepTimer(), []
        trainer.add_callback(timer)
        time_generation(trainer.model, generations)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        text = report(description, config, timer, generations, overrides)
    print(text)
    return text


if __name__ == "__main__":
    main()
