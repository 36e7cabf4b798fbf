"""Does the toy model learn hollow reasoning, and does the opt-in stricter reward help?

Two runs from the same start, seed, prompts and steps: the five default rewards, and the
same five plus `rewards.grounded_reasoning_reward_func` (0.5 when the reasoning shows a
calculation that reaches the answer). Besides accuracy and format, the greedy evaluation
reports `shows_work`: the share of answers whose reasoning would earn that extra reward.
Writes `benchmarks/results/reward_hacking.json`, which notebook 04 reads.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m benchmarks.reward_hacking
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.toy_runs import train_toy
from grpo import artifacts
from rewards import REWARD_FUNCS, grounded_reasoning_reward_func

OUTPUT = Path(__file__).resolve().parent / "results" / "reward_hacking.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    setups = {
        "five default rewards": REWARD_FUNCS,
        "+ grounded_reasoning": [*REWARD_FUNCS, grounded_reasoning_reward_func],
    }
    runs = []
    for seed in args.seeds:
        for label, funcs in setups.items():
            print(f"--- {label} seed={seed}", flush=True)
            run = train_toy(args.steps, seed, reward_funcs=funcs, label=label)
            print(f"    {run['eval']} in {run['train_seconds']} s", flush=True)
            runs.append(run)
    results = {
        "command": "python -m benchmarks.reward_hacking --seeds "
        + " ".join(map(str, args.seeds))
        + f" --steps {args.steps}",
        "runs": runs,
    }
    artifacts.write_json(args.output, results)
    print(f"wrote {args.output}")
    return results


if __name__ == "__main__":
    main()
