"""Loss-type ablation on the toy task: the same start, seed, prompts and steps, only
`loss_type` differs. Writes `benchmarks/results/ablation_loss_types.json`, which
notebooks/appendix_05_loss_types_and_gpus.ipynb plots.

Run from the repository root (CPU, about 1 to 3 minutes per run, longer on a busy machine):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m benchmarks.ablation_loss_types
    python -m benchmarks.ablation_loss_types --loss-types grpo dapo --seeds 0 1 --steps 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.toy_runs import run_grid, save_results

OUTPUT = Path(__file__).resolve().parent / "results" / "ablation_loss_types.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss-types", nargs="+", default=["grpo", "dr_grpo", "dapo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    setups = {loss_type: {"loss_type": loss_type} for loss_type in args.loss_types}
    runs = run_grid(setups, args.seeds, args.steps)
    command = (
        "python -m benchmarks.ablation_loss_types "
        + " ".join(["--loss-types", *args.loss_types, "--seeds", *map(str, args.seeds)])
        + f" --steps {args.steps}"
    )
    return save_results(args.output, command, runs)


if __name__ == "__main__":
    main()
