"""What a run will cost before anything heavy loads: steps, batch layout, GPU memory, time.

Standard library only (no torch), so `train_grpo.py --dry-run` answers in well under a second
on a laptop without a GPU. Every figure here is an *estimate* from the model's shape and
the batch layout; `benchmarks/bench_gpu_real.py` measures the real thing on a GPU.

Fitting a card keeps the profile's completions per optimiser step (64 for the real model:
4 prompts x 16) and trades micro-batch for gradient accumulation. TRL 1.16 only needs the
*generation* batch (micro-batch x accumulation x processes) to hold whole groups of
`num_generations`, so a micro-batch of 4 with 16 accumulation steps is as valid as 16 x 4.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from grpo.profiles import Profile

GB = 1e9  # decimal gigabytes, as GPU vendors count them


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Qwen2 config.json that memory depends on."""

    name: str
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, path) -> ModelShape:
        """The shape in a Qwen2 config.json, read before any weight loads."""
        import json
        from pathlib import Path

        config = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            Path(path).parent.name,
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            vocab=int(config["vocab_size"]),
            intermediate=int(config["intermediate_size"]),
            heads=int(config["num_attention_heads"]),
            kv_heads=int(config.get("num_key_value_heads", config["num_attention_heads"])),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hidden // self.heads

    def parameters(self) -> int:
        """Exact parameter count of a Qwen2ForCausalLM of this shape (q/k/v carry biases)."""
        h, kv = self.hidden, self.kv_dim
        attention = (h * h + h) + 2 * (h * kv + kv) + h * h
        mlp = 3 * h * self.intermediate
        per_layer = attention + mlp + 2 * h  # two RMSNorm weights
        embeddings = self.vocab * h * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + h  # final norm


# Copied from Qwen/Qwen2.5-0.5B-Instruct's config.json (learners do not have the shared
# folder the tests read it from; tests/test_plan.py checks the copy against the file).
QWEN2_5_0_5B = ModelShape(
    "Qwen2.5-0.5B-Instruct",
    hidden=896,
    layers=24,
    vocab=151_936,
    intermediate=4864,
    heads=14,
    kv_heads=2,
    tied_embeddings=True,
)
# offline_demo.tiny_model.build_tiny_model's shape (vocabulary: TINY_VOCAB_SIZE).
TINY_SHAPE = ModelShape("tiny Qwen2", 128, 4, 1024, 384, heads=4, kv_heads=2, tied_embeddings=True)
SHAPES = {"real": QWEN2_5_0_5B, "learner": QWEN2_5_0_5B, "tiny": TINY_SHAPE}

GSM8K_TRAIN_ROWS = 7473  # GSM8K's train split, all of which keep a '#### <answer>' line
# 95th percentile of a GSM8K prompt in Qwen2.5's chat template (system prompt included):
# 134-138 tokens over the 600 embedded questions (mean 95), measured with the real tokenizer.
PROMPT_TOKENS = 140
TOY_PROMPT_TOKENS = 60  # the toy task's prompts in the tiny tokenizer, rounded up

# TRL 1.16 never materialises the [tokens, vocab] logits in training: its fused LM head
# projects tiles of at most 4,096 tokens x 32,768 vocabulary entries (trl/kernels/
# chunked_logprob.py, trl/trainer/utils.py: _CHUNKED_LOGPROB_CHUNK_SIZE).
LOGIT_TILE_TOKENS, LOGIT_TILE_VOCAB = 4096, 32_768
CUDA_OVERHEAD_GB = 1.0  # assumed: CUDA context, cuBLAS workspace, allocator slack
HEADROOM = 0.85  # a plan fits when its estimate stays under 85% of the card
# Seconds per optimiser step of 64 completions of up to 200 tokens:
# * fp32 (T4): the seed tutorial's 12 s per 16 completions on a T4, x 4 = 48 s (measured
#   there, with the seed's TRL);
# * bf16 card (L4, A10G, RTX 3090/4090, A100, H100): an ASSUMPTION of 12 s, a quarter of
#   the T4's: TRL 1.16 generates the step's 64 completions in one batched call instead of
#   four calls of 16 (decoding a 0.5B model is bound by per-token overhead, not batch size),
#   and bf16 tensor cores speed up the forward and backward passes. Replace it with the
#   figure benchmarks/bench_gpu_real.py prints on your card.
# * toy task (tiny model): 40 steps in 61 s on a busy 2-core CPU, one torch thread
#   (measured, tests/test_training.py).
SECONDS_PER_STEP = {"fp32": 48.0, "bf16": 12.0, "toy": 1.5}
SECONDS_PER_STEP_SOURCE = {
    "fp32": "the seed tutorial's T4 figure, 12 s per 16 completions x 4",
    "bf16": "assumed for a bf16 GPU; measure yours with python -m benchmarks.bench_gpu_real",
    "toy": "measured for the tiny model on a 2-core CPU",
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak GPU memory of a GRPO step, in bytes, with the arithmetic of each part."""

    weights: float
    grads: float
    optimizer: float
    reference: float
    logits: float
    activations: float
    generation: float  # KV cache and sampling logits while generating (grads are freed then)
    overhead: float
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Static memory plus the larger of the training and the generation phase."""
        static = self.weights + self.optimizer + self.reference + self.overhead
        return static + max(self.grads + self.logits + self.activations, self.generation)

    def parts(self) -> dict[str, float]:
        names = ("weights", "grads", "optimizer", "reference", "logits", "activations")
        return {name: getattr(self, name) for name in (*names, "generation", "overhead")}


def lora_parameters(shape: ModelShape, rank: int = 16) -> int:
    """Adapter parameters of rank `rank` on every attention and MLP projection."""
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    per_layer = (h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h)
    return shape.layers * rank * per_layer


def estimate_memory(
    shape: ModelShape,
    micro_batch: int,
    generation_batch: int,
    completion_tokens: int,
    prompt_tokens: int,
    gradient_checkpointing: bool,
    bf16: bool,
    beta: float,
    lora: bool = False,
) -> MemoryEstimate:
    """Peak memory of one GRPO step (see the module doc for the assumptions).

    Master weights are always fp32 (4 bytes); `bf16` means autocast, which halves the
    activations, the logit tiles and the KV cache but not the weights or the optimizer.
    """
    n = shape.parameters()
    trained = lora_parameters(shape) if lora else n
    act_bytes = 2 if bf16 else 4
    tokens = micro_batch * (prompt_tokens + completion_tokens)
    # Values one decoder layer keeps for its backward pass, per token: the two norms' inputs
    # and outputs, q/k/v before and after RoPE, the attention output (~8 x hidden), and the
    # MLP's gate, up, activation and product (4 x intermediate). Checked: for a layer of
    # Qwen2.5-0.5B's width autograd keeps 26,896 values per token (fp32, SDPA attention;
    # tests/test_plan.py measures it), this formula says 27,008.
    layer_values = 8 * shape.hidden + 3 * shape.kv_dim + 4 * shape.intermediate
    one_layer = layer_values * tokens * act_bytes
    if gradient_checkpointing:  # each layer's fp32 input, plus one layer being recomputed
        activations = shape.layers * shape.hidden * tokens * 4 + one_layer
        act_note = (
            f"checkpointing: {shape.layers} layer inputs x {shape.hidden} x {tokens:,} tokens "
            f"x 4 B + one layer recomputed ({layer_values:,} values/token x {act_bytes} B)"
        )
    else:
        activations = shape.layers * one_layer
        act_note = (
            f"{shape.layers} layers x {layer_values:,} values/token x {tokens:,} tokens "
            f"x {act_bytes} B (no checkpointing)"
        )
    scored = micro_batch * completion_tokens
    tile = min(scored, LOGIT_TILE_TOKENS) * min(shape.vocab, LOGIT_TILE_VOCAB) * act_bytes
    materialised = 3 * scored * shape.vocab * 4
    kv_cache = (
        2
        * shape.layers
        * shape.kv_dim
        * act_bytes
        * generation_batch
        * (prompt_tokens + completion_tokens)
    )
    sampling = 4 * generation_batch * shape.vocab * 4  # logits and 3 processed copies, fp32
    reference = 0.0 if (beta == 0 or lora) else 4.0 * n
    notes = {
        "weights": f"{n / 1e6:.1f}M parameters x 4 B (fp32 master weights)",
        "grads": f"{trained / 1e6:.1f}M trained parameters x 4 B",
        "optimizer": f"AdamW: 2 moments x {trained / 1e6:.1f}M x 4 B",
        "reference": (
            f"frozen fp32 copy for the KL term (beta {beta})"
            if reference
            else ("none: the frozen base is the reference" if lora else "none (beta 0)")
        ),
        "logits": (
            f"TRL's fused LM head: {min(scored, LOGIT_TILE_TOKENS):,} x "
            f"{min(shape.vocab, LOGIT_TILE_VOCAB):,} tile x {act_bytes} B, x2 (forward, "
            f"backward); materialised it would be 3 x {scored:,} x {shape.vocab:,} x 4 B "
            f"= {materialised / GB:.2f} GB"
        ),
        "activations": act_note,
        "generation": (
            f"KV cache of {generation_batch} sequences x {prompt_tokens + completion_tokens} "
            f"tokens + sampling logits (the grads are freed while generating)"
        ),
        "overhead": "CUDA context, cuBLAS workspace, allocator slack (assumed)",
    }
    return MemoryEstimate(
        weights=4.0 * n,
        grads=4.0 * trained,
        optimizer=8.0 * trained,
        reference=reference,
        logits=2.0 * tile,
        activations=float(activations),
        generation=float(kv_cache + sampling),
        overhead=CUDA_OVERHEAD_GB * GB,
        notes=notes,
    )


@dataclass(frozen=True)
class Plan:
    """A run's layout, memory estimate and time estimate, ready to print."""

    profile: str
    shape: ModelShape
    train_rows: int
    steps: int
    steps_note: str
    num_generations: int
    micro_batch: int
    accumulation: int
    gradient_checkpointing: bool
    bf16: bool
    lora: bool
    prompt_tokens: int
    completion_tokens: int
    memory: MemoryEstimate
    gpu_memory_gb: float | None
    seconds_per_step: float
    seconds_source: str
    flags: tuple[str, ...]
    advice: str = ""

    @property
    def completions_per_step(self) -> int:
        return self.micro_batch * self.accumulation

    @property
    def prompts_per_step(self) -> int:
        return self.completions_per_step // self.num_generations

    @property
    def budget_bytes(self) -> float | None:
        return None if self.gpu_memory_gb is None else self.gpu_memory_gb * GB * HEADROOM

    @property
    def fits(self) -> bool | None:
        budget = self.budget_bytes
        return None if budget is None else self.memory.total <= budget

    def command(self, output_dir: str | None = None) -> str:
        folder = output_dir or f"runs/{self.profile}"
        words = ["python train_grpo.py", "--profile", self.profile, "--output-dir", folder]
        return " ".join([*words, *self.flags])

    def render(self, output_dir: str | None = None) -> str:
        """The plan as text for a terminal or a notebook cell."""
        memory, gb = self.memory, lambda b: f"{b / GB:6.2f}"
        precision = "bf16 autocast" if self.bf16 else "fp32 (no bf16 autocast)"
        lines = [
            f"Plan for profile {self.profile!r}: {self.shape.name}, "
            f"{self.shape.parameters() / 1e6:.1f}M parameters"
            + (" (LoRA r=16)" if self.lora else ""),
            f"  steps: {self.steps:,} ({self.steps_note})",
            f"  per optimiser step: {self.prompts_per_step} prompts x {self.num_generations} "
            f"completions = {self.completions_per_step} completions",
            f"    = micro-batch {self.micro_batch} x {self.accumulation} gradient accumulation "
            "steps (one process)",
            f"  precision: fp32 weights, {precision}; gradient checkpointing: "
            + ("on" if self.gradient_checkpointing else "off"),
            f"  sequence: {self.prompt_tokens} prompt tokens (95th percentile) + "
            f"{self.completion_tokens} completion tokens (the maximum)",
            "Estimated peak GPU memory (an estimate; GB = 1e9 bytes):",
        ]
        for name, value in memory.parts().items():
            lines.append(f"  {name:<12}{gb(value)}  {memory.notes[name]}")
        total = f"  {'total':<12}{gb(memory.total)}  static + max(grads + logits + activations, "
        lines.append(total + "generation)")
        if self.gpu_memory_gb is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(
                f"  budget: {self.gpu_memory_gb:g} GB x {HEADROOM} headroom = "
                f"{self.budget_bytes / GB:.1f} GB -> {verdict}"
            )
        hours = self.steps * self.seconds_per_step / 3600
        lines += [
            f"Estimated time: {self.steps:,} steps x {self.seconds_per_step:g} s = {hours:.1f} h "
            f"({self.seconds_source})",
        ]
        if self.advice:
            lines.append(self.advice)
        lines.append(f"Command: {self.command(output_dir)}")
        return "\n".join(lines)


def _steps(profile: Profile, grpo: Mapping[str, Any], rows: int, prompts: int) -> tuple[int, str]:
    if grpo.get("max_steps", -1) > 0:
        return grpo["max_steps"], "max_steps"
    epochs = grpo.get("num_train_epochs", 1)
    per_epoch = rows // prompts
    return per_epoch * epochs, f"{rows:,} prompts / {prompts} per step x {epochs} epoch(s)"


def _micro_batches(completions: int) -> list[int]:
    """Micro-batch sizes that divide the step's completions, largest first."""
    return [b for b in range(completions, 0, -1) if completions % b == 0]


def fit_micro_batch(
    estimate: Callable[[int, bool], MemoryEstimate],
    completions: int,
    num_generations: int,
    budget: float,
    checkpointing: bool,
    explicit: bool,
) -> tuple[int, bool] | None:
    """(micro-batch, checkpointing) that fits `budget`, or None.

    Without an explicit choice, checkpointing goes off when a micro-batch of at least one
    whole group fits without it (recomputing costs about 30% per step), and otherwise on
    with the largest micro-batch that fits (small micro-batches waste GPU time).
    """
    tries = [(False, num_generations), (True, 1)] if not explicit else [(checkpointing, 1)]
    for ckpt, smallest in tries:
        for micro in _micro_batches(completions):
            if micro >= smallest and estimate(micro, ckpt).total <= budget:
                return micro, ckpt
    return None


def make_plan(
    profile: Profile,
    overrides: Mapping[str, Any] | None = None,
    gpu_memory_gb: float | None = None,
    *,
    bf16: bool = False,
    lora: bool = False,
    train_rows: int | None = None,
) -> Plan:
    """The plan for `profile` with command-line `overrides` (GRPOConfig fields).

    With `gpu_memory_gb` and no batch flags given, the largest micro-batch whose estimate
    fits is chosen (turning gradient checkpointing on if needed, unless it was explicitly
    turned off); if none fits, the plan advises `--lora`.
    """
    overrides = dict(overrides or {})
    grpo = profile.with_grpo(**overrides)
    shape = SHAPES.get(profile.name, QWEN2_5_0_5B)
    rows = train_rows or profile.train_size or GSM8K_TRAIN_ROWS
    prompt_tokens = TOY_PROMPT_TOKENS if profile.dataset == "toy" else PROMPT_TOKENS
    generations = grpo["num_generations"]
    completions = grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"]
    checkpointing = bool(grpo["gradient_checkpointing"])

    def estimate(micro: int, ckpt: bool) -> MemoryEstimate:
        return estimate_memory(
            shape, micro, completions, grpo["max_completion_length"], prompt_tokens,
            ckpt, bf16, grpo["beta"], lora,
        )  # fmt: skip

    micro, advice = grpo["per_device_train_batch_size"], ""
    user_set_batch = {"per_device_train_batch_size", "gradient_accumulation_steps"} & set(overrides)
    if gpu_memory_gb is not None and not user_set_batch:
        budget = gpu_memory_gb * GB * HEADROOM
        explicit = "gradient_checkpointing" in overrides
        fitted = fit_micro_batch(
            estimate, completions, generations, budget, checkpointing, explicit
        )
        if fitted is None and not lora:
            plan = make_plan(
                profile, overrides, gpu_memory_gb, bf16=bf16, lora=True, train_rows=rows
            )
            advice = (
                f"A full fine-tune does not fit {gpu_memory_gb:g} GB even with a micro-batch of 1:"
                " this plan adds --lora (adapters only: no optimizer state for the base weights"
                " and no separate reference model)."
            )
            return replace(plan, advice=advice) if plan.fits else plan
        if fitted is None:
            advice = f"Does not fit {gpu_memory_gb:g} GB even with LoRA: use a larger GPU."
        else:
            micro, checkpointing = fitted
    memory = estimate(micro, checkpointing)
    accumulation = completions // micro
    steps, steps_note = _steps(profile, grpo, rows, completions // generations)
    flags = []
    if gpu_memory_gb is not None or user_set_batch:
        flags += ["--per-device-train-batch-size", str(micro)]
        flags += ["--gradient-accumulation-steps", str(accumulation)]
    if checkpointing != bool(profile.grpo["gradient_checkpointing"]):
        flags.append("--gradient-checkpointing" if checkpointing else "--no-gradient-checkpointing")
    if lora:
        flags.append("--lora")
    speed = "toy" if profile.dataset == "toy" else ("bf16" if bf16 else "fp32")
    return Plan(
        profile=profile.name,
        shape=shape,
        train_rows=rows,
        steps=steps,
        steps_note=steps_note,
        num_generations=generations,
        micro_batch=micro,
        accumulation=accumulation,
        gradient_checkpointing=checkpointing,
        bf16=bf16,
        lora=lora,
        prompt_tokens=prompt_tokens,
        completion_tokens=grpo["max_completion_length"],
        memory=memory,
        gpu_memory_gb=gpu_memory_gb,
        seconds_per_step=SECONDS_PER_STEP[speed],
        seconds_source=SECONDS_PER_STEP_SOURCE[speed],
        flags=tuple(flags),
        advice=advice,
    )


@dataclass(frozen=True)
class Card:
    """A GPU class the README's table covers."""

    examples: str
    memory_gb: int
    bf16: bool


# Cards above this size have bf16 (Ampere or newer); the 16 GB class (T4) does not.
BF16_ABOVE_GB = 16
CARDS = (
    Card("T4 (Colab free), V100-16GB", 16, bf16=False),
    Card("L4, A10G, RTX 3090/4090", 24, bf16=True),
    Card("A100-40GB, A6000 (48 GB)", 40, bf16=True),
    Card("A100-80GB, H100", 80, bf16=True),
)


def card_table(profiles: tuple[Profile, ...]) -> str:
    """Markdown: for each card class, the fitted batch layout, memory and time per profile."""
    header = (
        "| GPU memory | e.g. | profile | micro-batch x accumulation | checkpointing "
        "| est. peak memory | est. time | command |\n"
        "|---:|---|---|---|---|---:|---:|---|"
    )
    rows = []
    for card in CARDS:
        for profile in profiles:
            plan = make_plan(profile, gpu_memory_gb=card.memory_gb, bf16=card.bf16)
            hours = plan.steps * plan.seconds_per_step / 3600
            rows.append(
                f"| {card.memory_gb} GB | {card.examples} | {profile.name} "
                f"| {plan.micro_batch} x {plan.accumulation} "
                f"| {'on' if plan.gradient_checkpointing else 'off'} "
                f"| {plan.memory.total / GB:.1f} GB | {hours:.1f} h ({plan.steps:,} steps) "
                f"| `{plan.command()}` |"
            )
    notes = (
        "\n\nEstimates from `grpo.plan` (model shape x batch layout), not measurements: "
        f"fp32 on the 16 GB row (no bf16 on a T4), bf16 autocast above; {HEADROOM:.0%} of the "
        f"card is the budget. Time assumes {SECONDS_PER_STEP['fp32']:g} s per step on a T4 "
        f"({SECONDS_PER_STEP_SOURCE['fp32']}) and {SECONDS_PER_STEP['bf16']:g} s on any bf16 card "
        "(an assumption: run `python -m benchmarks.bench_gpu_real` for your card's figure)."
    )
    return "\n".join([header, *rows]) + notes


def visible_gpu() -> tuple[float, bool] | None:
    """(memory in GB, has bf16) of the first visible NVIDIA GPU, from nvidia-smi (no torch).

    None when there is no GPU, no nvidia-smi, or CUDA_VISIBLE_DEVICES hides every GPU.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return None
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--query-gpu=memory.total,compute_cap", "--format=csv,noheader,nounits"]
    try:
        first = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
        memory_mib, capability = first.strip().splitlines()[0].split(",")
        return float(memory_mib) * 2**20 / GB, float(capability) >= 8.0
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
