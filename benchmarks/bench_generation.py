"""Batched evaluation vs the seed's one-question-at-a-time generate loop.

Both paths answer the same GSM8K test questions with the same model, greedy decoding and
the same `max_new_tokens`:

* loop: the seed tutorial's approach, one `model.generate` call per question;
* batched: `evaluation.generate`, left-padded batches of `--batch-sizes` questions;
* length-sorted: the same, on the questions sorted by prompt length (less padding), for
  each batch size smaller than the number of questions.

The embedded tiny model has random weights and never emits its stop token, so every answer
runs to `max_new_tokens` in both paths: the comparison does the same amount of decoding on
each side. The real model stops early on most answers; a batch then runs until its longest
answer is done, which the tokens/s figure shows.

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
    parser.add_argument("--model", default="tiny", help="tiny (default) | real | folder | id")
    parser.add_argument("--device", help="cpu | cuda | mps (default: the best available)")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="64,16", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per path (best kept)")
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


def length_sorted(model, tokenizer, prompts, max_new_tokens: int, batch_size: int):
    """`evaluation.generate` on the prompts sorted by length, answers back in the input order.

    Batches of similar lengths carry less left padding, which every decoding step pays for.
    """
    texts = [
        tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    answers = generate(
        model, tokenizer, [prompts[i] for i in order], max_new_tokens, batch_size, progress=False
    )
    in_input_order: list[Generation] = [answers[0]] * len(prompts)
    for position, index in enumerate(order):
        in_input_order[index] = answers[position]
    return in_input_order


def timed(run: Callable[[], list[Generation]], repeats: int) -> tuple[float, list[Generation]]:
    """Best wall time of `repeats` runs, and the answers of the last one."""
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        answers = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), answers


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
        f"best of {args.repeats}\n"
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
                    model, tokenizer, prompts, args.max_new_tokens, batch_size=size, progress=False
                ),
            )
        )

    for size in batch_sizes:
        if size < len(prompts):
            paths.append(
                (
                    f"length-sorted, batch_size={size}",
                    lambda size=size: length_sorted(
                        model, tokenizer, prompts, args.max_new_tokens, size
                    ),
                )
            )

    header = f"{'path':<30}{'seconds':>9}{'questions/s':>13}{'tokens/s':>10}{'mean tokens':>13}"
    if on_gpu:
        header += f"{'peak GPU MiB':>14}"
    print(header)
    seconds_by_path: dict[str, float] = {}
    for name, run in paths:
        if on_gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        seconds, answers = timed(run, args.repeats)
        seconds_by_path[name] = seconds
        tokens = sum(answer.num_tokens for answer in answers)
        line = (
            f"{name:<30}{seconds:>9.2f}{len(prompts) / seconds:>13.2f}{tokens / seconds:>10.0f}"
            f"{statistics.mean(a.num_tokens for a in answers):>13.1f}"
        )
        if on_gpu:
            line += f"{torch.cuda.max_memory_allocated() / 2**20:>14.0f}"
        print(line, flush=True)

    loop_seconds = seconds_by_path.get("loop, 1 at a time")
    if loop_seconds:
        print()
        for name, seconds in seconds_by_path.items():
            if name != "loop, 1 at a time":
                print(f"speed-up of {name} over the loop: {loop_seconds / seconds:.1f}x")
    print(f"\nload average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
