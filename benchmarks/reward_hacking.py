"""Does the toy model learn hollow reasoning, and does the opt-in stricter reward help?

Two runs from the same start, seed, prompts and steps: the five default rewards, and the
same five plus `rewards.grounded_reasoning_reward_func` (0.5 when the reasoning shows a
calculation that reaches the answer). Besides accuracy and format, the greedy evaluation
reports `shows_work`: the share of answers whose reasoning would earn that extra reward.
Writes `benchmarks/results/reward_hacking.json`, which
notebooks/appendix_04_robustness_and_hacking.ipynb reads.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m benchmarks.reward_hacking
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.toy_runs import run_grid, save_results
from rewards import REWARD_FUNCS, grounded_reasoning_reward_func

OUTPUT = Path(__file__).resolve().parent / "results" / "reward_hacking.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    setups = {
        "five default rewards": {"reward_funcs": REWARD_FUNCS},
        "+ grounded_reasoning": {"reward_funcs": [*REWARD_FUNCS, grounded_reasoning_reward_func]},
    }
    runs = run_grid(setups, args.seeds, args.steps)
    command = f"python -m benchmarks.reward_hacking --seeds {' '.join(map(str, args.seeds))}"
    return save_results(args.output, command + f" --steps {args.steps}", runs)


if __name__ == "__main__":
    main()
