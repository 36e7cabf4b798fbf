"""Why training keeps fp32 master weights: how many weights one AdamW step really changes.

At the real profile's learning rate (5e-6) an AdamW update moves a weight by about 5e-6,
while a bf16 weight of typical size (std 0.02) can only move in steps of ~1e-4: most
updates round back to the old value. This script applies AdamW steps to a 4096 x 4096
matrix of N(0, 0.02) weights held in fp32 and in bf16, with the same gradients, and prints
the fraction of weights each step actually changed:

* the first step (Adam's update is then lr x sign(gradient) for every weight);
* a step after 20 steps of history, when Adam's moments are warmed up and updates vary.

The gradients are normal with a log-normal scale per row (some rows get much larger
gradients than others, as in a transformer), magnitude ~1e-4. Run from the repository root:

    python -m benchmarks.bench_precision
"""

from __future__ import annotations

import torch

SIZE = 4096
WEIGHT_STD = 0.02
LEARNING_RATE = 5e-6
HISTORY_STEPS = 20


def gradient(generator: torch.Generator) -> torch.Tensor:
    """A gradient with row scales spread over two orders of magnitude around 1e-4."""
    row_scale = torch.exp(torch.randn(SIZE, 1, generator=generator)) * 1e-4
    return torch.randn(SIZE, SIZE, generator=generator) * row_scale


def changed_fractions(dtype: torch.dtype) -> tuple[float, float]:
    """Fraction of weights changed by the first step and by step HISTORY_STEPS + 1."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(SIZE, SIZE, generator=generator) * WEIGHT_STD
    weight = torch.nn.Parameter(start.to(dtype))
    # The real recipe's AdamW settings (configs/real.yaml).
    optimizer = torch.optim.AdamW(
        [weight], lr=LEARNING_RATE, betas=(0.9, 0.99), weight_decay=0.1, foreach=False
    )
    gradients = torch.Generator().manual_seed(1)
    fractions = []
    for step in range(HISTORY_STEPS + 1):
        before = weight.detach().clone()
        weight.grad = gradient(gradients).to(dtype)
        optimizer.step()
        if step in (0, HISTORY_STEPS):
            fractions.append((weight.detach() != before).float().mean().item())
    return fractions[0], fractions[1]


def main() -> None:
    print(
        f"AdamW, lr {LEARNING_RATE:g}, {SIZE} x {SIZE} weights ~ N(0, {WEIGHT_STD}), "
        "fraction of weights changed by one step:\n"
    )
    print(f"| weights | first step | step {HISTORY_STEPS + 1} |")
    print("|---|---:|---:|")
    for dtype in (torch.float32, torch.bfloat16):
        first, later = changed_fractions(dtype)
        print(f"| {str(dtype).removeprefix('torch.')} | {first:.1%} | {later:.1%} |")
    print(
        f"\nbf16's spacing near |w| = {WEIGHT_STD}: "
        f"{torch.finfo(torch.bfloat16).eps * 2**-6:.2e} (2^-13 for |w| in [2^-6, 2^-5)); "
        f"half of it, {torch.finfo(torch.bfloat16).eps * 2**-7:.2e}, is what an update must "
        f"exceed, vs an update of ~{LEARNING_RATE:g}."
    )


if __name__ == "__main__":
    main()
