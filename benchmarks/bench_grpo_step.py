"""GRPO seconds per optimiser step and peak memory: the seed's batch shape vs the recommended one.

Every configuration trains on the same prompts with the same amount of work per optimiser
step, 4 prompts x `num_generations` completions; only how that work is cut up differs:

* seed: what the seed tutorial's TRL did. One prompt's group per micro-batch
  (`per_device_train_batch_size = num_generations`), 4 gradient-accumulation steps, and a
  generation call per micro-batch (`steps_per_generation=1`): 4 small `generate` calls and
  4 small forward/backward passes per step;
* seed, pinned TRL: the same numbers under the pinned TRL's default `steps_per_generation`
  (= gradient accumulation), which already generates all 4 groups in one call;
* recommended: the 4 groups in one micro-batch (`per_device_train_batch_size =
  4 x num_generations`, no accumulation): one `generate` call and one forward/backward;
* recommended, steps_per_generation=2: one `generate` call for 8 prompts every 2 steps
  (its step times alternate, slow and fast, so compare the mean over whole 2-step cycles;
  the median means little for it).

Each configuration runs in its own process, so its peak RSS (and peak GPU memory, when
there is a GPU) is its own. The first step is a warm-up and is not counted.

Run from the repository root (offline: the embedded tiny model, random weights):

    python -m benchmarks.bench_grpo_step
    python -m benchmarks.bench_grpo_step --threads 1   # a CPU shared with other jobs: much faster
    python -m benchmarks.bench_grpo_step --only "GA 1)" --threads 1,2 --rounds 3  # the tiny
        # profile's own step (4 groups of 8 in one micro-batch) at 1 and 2 torch threads
    python -m benchmarks.bench_grpo_step --model real --max-completion-length 200  # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_generation import load_average

PROMPTS_PER_STEP = 4
RESULT_PREFIX = "RESULT "
TRAIN_PROMPTS = 256  # more than any configuration reads in its few steps


def configs(num_generations: int) -> dict[str, dict]:
    """GRPOConfig overrides of each batch shape, by name."""
    group = num_generations
    return {
        "seed (1 group/micro-batch, GA 4, gen per micro-batch)": dict(
            per_device_train_batch_size=group,
            gradient_accumulation_steps=PROMPTS_PER_STEP,
            steps_per_generation=1,
        ),
        "seed numbers, pinned TRL default": dict(
            per_device_train_batch_size=group,
            gradient_accumulation_steps=PROMPTS_PER_STEP,
        ),
        "recommended (4 groups/micro-batch, GA 1)": dict(
            per_device_train_batch_size=PROMPTS_PER_STEP * group,
            gradient_accumulation_steps=1,
        ),
        "recommended + steps_per_generation=2": dict(
            per_device_train_batch_size=PROMPTS_PER_STEP * group,
            gradient_accumulation_steps=1,
            steps_per_generation=2,
        ),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (default) | real | folder | id")
    parser.add_argument(
        "--steps",
        type=int,
        default=3,
        help="timed steps after a warm-up step (whole generation cycles with steps_per_generation)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the configurations this many times, interleaved; keep each one's fastest",
    )
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--max-completion-length", type=int, default=48)
    parser.add_argument(
        "--threads",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[0],
        help="torch intra-op threads, or several (1,2): each configuration runs at each, "
        "interleaved, and the ratio is printed (default: torch's choice)",
    )
    parser.add_argument("--only", help="run only the configurations whose name contains this")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one configuration
    return parser.parse_args(argv)


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Train `args.steps + 1` steps of configuration `name`; timings and memory as a dict."""
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback

    if args.threads[0]:
        torch.set_num_threads(args.threads[0])
    from grpo.models import load_tokenizer, resolve_model
    from grpo.profiles import TINY
    from grpo.training import make_config, make_trainer
    from offline_demo.toy_task import toy_dataset

    class StepTimer(TrainerCallback):
        """Wall time of each optimiser step: generation, all micro-batches and the update."""

        def __init__(self) -> None:
            self.started = 0.0
            self.seconds: list[float] = []

        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.started)

    on_gpu = torch.cuda.is_available()
    path = resolve_model(args.model)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    rss_after_load = current_rss_mib()
    overrides = configs(args.num_generations)[name]
    # A generation feeds steps_per_generation micro-batches, that is `cycle` optimiser steps:
    # warm up for one whole cycle and time whole cycles, so the mean is a fair amortised cost.
    accumulation = overrides["gradient_accumulation_steps"]
    cycle = max(1, overrides.get("steps_per_generation", accumulation) // accumulation)
    timed_steps = -(-args.steps // cycle) * cycle
    steps = cycle + timed_steps
    with tempfile.TemporaryDirectory() as output_dir:
        config = make_config(
            TINY,
            output_dir,
            num_generations=args.num_generations,
            max_completion_length=args.max_completion_length,
            max_steps=steps,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=not on_gpu,
            **overrides,
        )
        trainer = make_trainer(model, tokenizer, toy_dataset(TRAIN_PROMPTS, seed=1), config)
        timer = StepTimer()
        trainer.add_callback(timer)
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    timed = timer.seconds[cycle:]  # the first step pays for lazy initialisation
    trl_step_times = [row["step_time"] for row in trainer.state.log_history if "step_time" in row]
    return {
        "name": name,
        "overrides": overrides,
        "generation_batch_size": config.generation_batch_size,
        "steps_per_generation": config.steps_per_generation,
        "warmup_s": timer.seconds[:cycle],
        "median_s": statistics.median(timed),
        "mean_s": statistics.mean(timed),
        "step_s": timed,
        "trl_step_time_median_s": statistics.median(trl_step_times[cycle:] or [float("nan")]),
        "rss_after_load_mib": rss_after_load,
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
        "threads": torch.get_num_threads(),
    }


def run_child(name: str, args: argparse.Namespace, threads: int) -> dict:
    """Run one configuration in a fresh process (at `threads` torch threads, 0: torch's
    choice), so that its peak memory is its own."""
    command = [sys.executable, "-m", "benchmarks.bench_grpo_step", "--child", name]
    command += [f"--steps={args.steps}", f"--model={args.model}"]
    command += [f"--num-generations={args.num_generations}"]
    command += [f"--max-completion-length={args.max_completion_length}"]
    if threads:
        command.append(f"--threads={threads}")
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        sys.exit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    result["process_s"] = time.perf_counter() - started
    result["load_after"] = load_average()
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(RESULT_PREFIX + json.dumps(run_one(args.child, args)), flush=True)
        return

    names = [n for n in configs(args.num_generations) if not args.only or args.only in n]
    import torch  # only for the machine description; the children do the work

    threads = ", ".join(str(n or torch.get_num_threads()) for n in args.threads)
    print(
        f"model {args.model}, {PROMPTS_PER_STEP} prompts x {args.num_generations} completions "
        f"per step, max_completion_length={args.max_completion_length}, 1 warm-up + "
        f"{args.steps} timed steps per configuration (whole 2-step generation cycles with "
        "steps_per_generation=2), "
        f"best of {args.rounds} round(s)\n"
        f"torch {torch.__version__}, torch threads: {threads}, CPUs: {os.cpu_count()}, "
        f"GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}, "
        f"load average (1/5/15 min) {load_average()}\n"
    )
    best: dict[str, dict] = {}
    runs = [(name, n) for name in names for n in args.threads]
    for round_number in range(1, args.rounds + 1):
        for name, n in runs:
            result = run_child(name, args, n)
            label = f"{name}, {result['threads']} thread(s)" if len(args.threads) > 1 else name
            result["label"] = label
            steps = ", ".join(f"{s:.2f}" for s in result["step_s"])
            print(
                f"round {round_number}, {label}: generation batch "
                f"{result['generation_batch_size']} completions, steps {steps} s, "
                f"process {result['process_s']:.0f} s (load after: {result['load_after']})",
                flush=True,
            )
            if label not in best or result["mean_s"] < best[label]["mean_s"]:
                best[label] = result
    results = list(best.values())

    print(
        f"\n{'configuration':<54}{'median s/step':>14}{'mean s/step':>12}"
        f"{'peak RSS MiB':>14}{'(after load)':>13}"
        + (f"{'peak GPU MiB':>14}" if torch.cuda.is_available() else "")
    )
    for r in results:
        line = (
            f"{r['label']:<54}{r['median_s']:>14.2f}{r['mean_s']:>12.2f}"
            f"{r['peak_rss_mib']:>14.0f}{r['rss_after_load_mib']:>13.0f}"
        )
        if r["peak_gpu_mib"] is not None:
            line += f"{r['peak_gpu_mib']:>14.0f}"
        print(line)
    print()
    if len(args.threads) > 1:  # each configuration's speed at its first thread count vs the rest
        for name in names:
            at = [r for r in results if r["name"] == name]
            for r in at[1:]:
                print(
                    f"{name}: {at[0]['threads']} thread(s) ran {r['mean_s'] / at[0]['mean_s']:.2f}x"
                    f" the steps/s of {r['threads']} (mean s/step, this run)"
                )
    else:
        base = results[0]
        for r in results[1:]:
            print(
                f"{r['label']}: {base['mean_s'] / r['mean_s']:.2f}x the steps/s of "
                f"{base['label']} (mean s/step)"
            )
    print(f"\nload average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
