"""Batched evaluation vs the seed's one-question-at-a-time generate loop.

Both paths answer the same GSM8K test questions with the same model, greedy decoding and
the same `max_new_tokens`:

* loop: the seed tutorial's approach, one `model.generate` call per question;
* batched: `evaluation.generate(..., sort_by_length=False)`, left-padded batches of
  `--batch-sizes` questions in the input order;
* length-sorted: `evaluation.generate` as the tutorial calls it, batches of questions of
  similar prompt length (less padding), answers returned in the input order.

The default model is the random-weight tiny model (`tiny-random`): it never emits its stop
token, so every answer runs to `max_new_tokens` in every path and each side does the same
amount of decoding. A trained model stops early on most answers; a batch then runs until
its longest answer is done, which the tokens/s figure shows.

Run from the repository root (offline: the tiny model and the embedded GSM8K excerpt):

    python -m benchmarks.bench_generation
    python -m benchmarks.bench_generation --threads 1   # a CPU shared with other jobs: much faster
    python -m benchmarks.bench_generation --model real --max-new-tokens 200   # on a GPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from data import load_gsm8k
from grpo.evaluation import Generation, generate
from grpo.models import load_policy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="tiny-random", help="tiny-random (default) | tiny | real | folder | id"
    )
    parser.add_argument("--device", help="cpu | cuda | mps (default: the best available)")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="64,16", help="comma-separated")
    parser.add_argument(
        "--repeats", type=int, default=1, help="interleaved timed rounds (best kept per path)"
    )
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's choice)"
    )
    parser.add_argument("--skip-loop", action="store_true", help="batched paths only")
    return parser.parse_args(argv)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_info(model) -> str:
    lines = [
        f"torch {torch.__version__}, torch threads: {torch.get_num_threads()}, "
        f"CPUs: {os.cpu_count()}, load average (1/5/15 min) {load_average()}",
        f"device {model.device}, dtype {str(model.dtype).removeprefix('torch.')}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters",
    ]
    if torch.cuda.is_available():
        lines.append(f"GPU {torch.cuda.get_device_name()}")
    return "\n".join(lines)


@torch.no_grad()
def one_at_a_time(model, tokenizer, prompts, max_new_tokens: int) -> list[Generation]:
    """The seed's loop: template, tokenize, generate and decode each question on its own."""
    eos = model.generation_config.eos_token_id
    stop_ids = set(eos if isinstance(eos, list) else [eos])
    results = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text, return_tensors="pt").to(model.device)
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        row = output[0, inputs["input_ids"].shape[1] :].tolist()
        stops = [position for position, token in enumerate(row) if token in stop_ids]
        length = stops[0] + 1 if stops else len(row)
        results.append(Generation(tokenizer.decode(row[:length], skip_special_tokens=True), length))
    return results


def timed(run: Callable[[], list[Generation]]) -> tuple[float, list[Generation]]:
    """Wall time of one run, and its answers."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    answers = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, answers


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tokenizer, _ = load_policy(args.model, device=args.device)
    model.eval()
    prompts = list(load_gsm8k("test", limit=args.questions, source="embedded")["prompt"])
    batch_sizes = [int(size) for size in args.batch_sizes.split(",") if size.strip()]
    on_gpu = model.device.type == "cuda"
    print(machine_info(model))
    print(
        f"{len(prompts)} questions, max_new_tokens={args.max_new_tokens}, greedy, "
        f"best of {args.repeats} interleaved rounds\n"
    )

    # Warm-up: the first generate call pays for lazy initialisation in both paths.
    generate(model, tokenizer, prompts[:2], max_new_tokens=4, batch_size=2, progress=False)

    paths: list[tuple[str, Callable[[], list[Generation]]]] = []
    if not args.skip_loop:
        paths.append(
            (
                "loop, 1 at a time",
                lambda: one_at_a_time(model, tokenizer, prompts, args.max_new_tokens),
            )
        )
    for size in batch_sizes:
        paths.append(
            (
                f"batched, batch_size={size}",
                lambda size=size: generate(
                    model,
                    tokenizer,
                    prompts,
                    args.max_new_tokens,
                    size,
                    progress=False,
                    sort_by_length=False,
                ),
            )
        )
        if size < len(prompts):  # one batch of everything is the same either way
            paths.append(
                (
                    f"length-sorted, batch_size={size}",
                    lambda size=size: generate(
                        model, tokenizer, prompts, args.max_new_tokens, size, progress=False
                    ),
                )
            )

    # Interleaved rounds: a change in the machine's load hits every path alike.
    times: dict[str, list[float]] = {name: [] for name, _ in paths}
    answers_by_path: dict[str, list[Generation]] = {}
    peak_mib: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in paths:
            if on_gpu:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            seconds, answers_by_path[name] = timed(run)
            times[name].append(seconds)
            if on_gpu:
                peak = torch.cuda.max_memory_allocated() / 2**20
                peak_mib[name] = max(peak_mib.get(name, 0.0), peak)

    header = f"{'path':<30}{'seconds':>9}{'questions/s':>13}{'tokens/s':>10}{'mean tokens':>13}"
    print(header + (f"{'peak GPU MiB':>14}" if on_gpu else ""))
    for name, _ in paths:
        seconds, answers = min(times[name]), answers_by_path[name]
        tokens = sum(answer.num_tokens for answer in answers)
        line = (
            f"{name:<30}{seconds:>9.2f}{len(prompts) / seconds:>13.2f}{tokens / seconds:>10.0f}"
            f"{statistics.mean(a.num_tokens for a in answers):>13.1f}"
        )
        print(line + (f"{peak_mib[name]:>14.0f}" if on_gpu else ""))

    print()
    loop = "loop, 1 at a time"
    for name, _ in paths:
        if loop in times and name != loop:
            print(f"speed-up of {name} over the loop: {min(times[loop]) / min(times[name]):.2f}x")
    for size in batch_sizes:
        plain, by_length = f"batched, batch_size={size}", f"length-sorted, batch_size={size}"
        if by_length in times:
            assert answers_by_path[by_length] == answers_by_path[plain], "sorting changed answers"
            rounds = ", ".join(
                f"{a / b:.2f}" for a, b in zip(times[plain], times[by_length], strict=True)
            )
            print(
                f"length-sorted over batched, batch_size={size}: "
                f"{min(times[plain]) / min(times[by_length]):.2f}x (each round: {rounds})"
            )
    print(f"\nload average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
