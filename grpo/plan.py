"""What a run will cost before anything heavy loads: steps, batch layout, GPU memory, disk, time.

Standard library only (no torch), so `train_grpo.py --dry-run` answers in well under a second
on a laptop without a GPU. Every figure here is an *estimate* from the model's shape and
the batch layout; `benchmarks/bench_gpu_real.py` measures the real thing on a GPU.

Fitting a card keeps the profile's completions per optimiser step (64 for the real model:
4 prompts x 16) and trades micro-batch for gradient accumulation. TRL 1.16 only needs the
*generation* batch (micro-batch x accumulation x processes) to hold whole groups of
`num_generations`, so a micro-batch of 4 with 16 accumulation steps is as valid as 16 x 4.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grpo.profiles import LORA, Profile
from offline_demo.tiny_model import TINY_BODY, TINY_VOCAB_SIZE

GB = 1e9  # decimal gigabytes, as GPU vendors count them


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Qwen2 config.json that memory and disk depend on."""

    name: str
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, path: str | Path) -> ModelShape:
        """The shape in a Qwen2 `config.json` (a file or the folder holding it), read before
        any weight loads: the plan and the CPU guard know the model's size from it."""
        path = Path(path)
        path = path / "config.json" if path.is_dir() else path
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read a model config from {path}: {error}") from None
        try:
            return cls.from_dict(config, default_name=path.parent.name)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{path} is not a Qwen2-style config.json (field {error})") from None

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], default_name: str = "") -> ModelShape:
        """The shape in Qwen2Config's keywords (a parsed config.json)."""
        heads = int(config["num_attention_heads"])
        return cls(
            name=str(config.get("_name_or_path") or default_name),
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            vocab=int(config["vocab_size"]),
            intermediate=int(config["intermediate_size"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            # transformers' Qwen2Config defaults to untied embeddings
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hidden // self.heads

    def layer_matrices(self) -> int:
        """Weight-matrix parameters of one decoder layer (q, k, v, o, gate, up, down)."""
        h, kv = self.hidden, self.kv_dim
        return 2 * h * h + 2 * h * kv + 3 * h * self.intermediate

    def parameters(self) -> int:
        """Exact parameter count of a Qwen2ForCausalLM of this shape (q/k/v carry biases)."""
        biases = self.hidden + 2 * self.kv_dim
        per_layer = self.layer_matrices() + biases + 2 * self.hidden  # two RMSNorm weights
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + self.hidden  # final norm


# Copied from Qwen/Qwen2.5-0.5B-Instruct's config.json, so a plan needs no file at hand;
# tests/test_plan.py checks the copy against the file shipped in assets/.
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
TINY_SHAPE = ModelShape.from_dict(
    {**TINY_BODY, "vocab_size": TINY_VOCAB_SIZE, "_name_or_path": "tiny Qwen2"}
)

GSM8K_TRAIN_ROWS = 7473  # GSM8K's train split, all of which keep a '#### <answer>' line
# 95th percentile of a GSM8K prompt in Qwen2.5's chat template (system prompt included):
# 134-138 tokens over the 600 embedded questions (mean 95), measured with the real tokenizer.
PROMPT_TOKENS = 140
TOY_PROMPT_TOKENS = 60  # the toy task's prompts in the tiny tokenizer, rounded up

# TRL 1.16's fused LM head projects tiles of at most 4,096 tokens x 32,768 vocabulary
# entries (trl/kernels/chunked_logprob.py) and its backward fills a full fp32 [vocab, hidden]
# weight-gradient buffer before autograd adds it to .grad (0.545 GB for Qwen2.5-0.5B).
LOGIT_TILE_TOKENS, LOGIT_TILE_VOCAB = 4096, 32_768
# Bytes autograd keeps per token for one decoder layer of Qwen2.5-0.5B's width (SDPA),
# measured on CPU by tests/test_plan.py: 26,896 fp32 values, and 66,368 B under bf16 or
# fp16 autocast (some tensors are kept in both precisions): 2.47 B per value, not 2.
AUTOCAST_BYTES_PER_VALUE = 66_368 / 26_896
CUDA_OVERHEAD_GB = 1.0  # assumed: CUDA context, cuBLAS workspace, allocator slack
HEADROOM = 0.85  # a plan fits when its estimate stays under 85% of the card
DEFAULT_LORA_RANK = LORA.run_flags["lora_r"]  # `--lora`'s rank (configs/learner_lora.yaml)
# vLLM's share of the card in colocate mode: TRL 1.16's vllm_gpu_memory_utilization default.
DEFAULT_VLLM_UTILIZATION = 0.3
# Beyond any card made (the largest in 2026 hold under 300 GB; compute capabilities are
# single digits to 12.x): an nvidia-smi answer past these is a misreading, not a GPU.
MAX_GPU_MEMORY_GB, MAX_COMPUTE_CAPABILITY = 2000.0, 100.0

# Seconds per optimiser step of 64 completions of up to 200 tokens. Estimates, not
# measurements of this project (no GPU has been available to it):
# * fp32 (T4): 48 s. qunash's public gist "full GRPO fine-tuning Qwen2.5 0.5B on a single T4"
#   (https://gist.github.com/qunash/820c86d1d267ec8051d9f68b4f4bb656) reports ~150 steps in
#   ~30 minutes with 16 completions per step: 12 s per 16 completions, x 4 for our 64.
#   Cross-check: one forward + backward of 64 x 340 tokens is 6 x 494M x 21,760 = 6.4e13
#   FLOP, 8 s at the T4's 8.1 TFLOPS fp32 peak, before recompute and generation.
# * fp16 autocast (T4): unmeasured; the fp32 figure, an upper bound.
# * bf16 card (L4, A10G, A100, H100): an ASSUMPTION of 12 s, a quarter of the T4's.
# * toy task (tiny model): 1.17 s mean per step measured at one torch thread on a busy 2-core
#   CPU (benchmarks/RESULTS.md, bench_grpo_step), planned at 1.5 s for slower machines.
SECONDS_PER_STEP = {"fp32": 48.0, "fp16": 48.0, "bf16": 12.0, "toy": 1.5}
SECONDS_PER_STEP_SOURCE = {
    "fp32": "a T4 estimate from qunash's public GRPO-on-a-T4 gist, ~12 s per 16 completions x 4",
    "fp16": "fp16 on a T4 is unmeasured: the fp32 figure, an upper bound",
    "bf16": "assumed for a bf16 GPU; measure yours with python -m benchmarks.bench_gpu_real",
    "toy": "measured for the tiny model on a 2-core CPU",
}

# The vLLM release for `--use-vllm`, checked from package metadata (2026-12-01): trl 1.16.0
# accepts vllm 0.22.0-0.31.0; 0.30.0 is the newest that accepts torch 2.13 and transformers
# 5.24 (0.31.0 caps transformers below 5.18).
VLLM_REQUIREMENT = "vllm==0.30.0"

# Files of one checkpoint besides the weights and the optimizer, measured on a checkpoint of
# the Qwen2.5 stand-in (tests/test_plan.py): the tokenizer, 75 B per vocabulary entry, and
# the Trainer's small files (scheduler, RNG state, trainer_state.json...), ~50 KB.
TOKENIZER_BYTES_PER_TOKEN = 75
CHECKPOINT_SMALL_FILES = 50_000

# What each part of the memory estimate counts, as `Plan.render` prints it.
MEMORY_PARTS = {
    "weights": "fp32 master weights, 4 B per parameter",
    "grads": "fp32, 4 B per trained parameter",
    "optimizer": "AdamW's two fp32 moments, 8 B per trained parameter",
    "reference": "frozen fp32 copy for the KL term (none with beta 0 or LoRA)",
    "weight_copies": "autocast's 16-bit copies of the layer matrices, kept for the backward",
    "head_grad": "TRL's fused LM head backward: an fp32 [vocab x hidden] gradient buffer",
    "logits": "TRL's fused LM head: a logit tile of <= 4,096 x 32,768, forward and backward",
    "activations": "kept for the backward: every layer's, or with checkpointing each layer's "
    "input and one layer recomputed",
    "generation": "KV cache and sampling logits of the generation batch (grads freed then)",
    "vllm": "vLLM's share of the card (colocate mode)",
    "overhead": "CUDA context, cuBLAS workspace, allocator slack (assumed)",
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak GPU memory of a GRPO step, in bytes, by part (see MEMORY_PARTS)."""

    weights: float
    grads: float
    optimizer: float
    reference: float
    weight_copies: float
    head_grad: float
    logits: float
    activations: float
    generation: float
    vllm: float
    overhead: float

    @property
    def training(self) -> float:
        return self.grads + self.weight_copies + self.head_grad + self.logits + self.activations

    @property
    def total(self) -> float:
        """Static memory plus the larger of the training and the generation phase."""
        static = self.weights + self.optimizer + self.reference + self.vllm + self.overhead
        return static + max(self.training, self.generation)


def lora_parameters(shape: ModelShape, rank: int = DEFAULT_LORA_RANK) -> int:
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
    autocast: bool,
    beta: float,
    lora_rank: int | None = None,
    vllm_bytes: float | None = None,
) -> MemoryEstimate:
    """Peak memory of one GRPO step.

    Master weights, gradients and optimizer are fp32 whatever the precision; bf16 or fp16
    `autocast` keeps 16-bit copies of the layer weights and 2.47 B per activation value
    instead of 4. `lora_rank` None is a full fine-tune. `vllm_bytes` is vLLM's share of the
    card (None: no vLLM); with vLLM, HF generation and its KV cache do not run.
    """
    n = shape.parameters()
    trained = n if lora_rank is None else lora_parameters(shape, lora_rank)
    value_bytes = AUTOCAST_BYTES_PER_VALUE if autocast else 4.0
    half = 2 if autocast else 4  # logit tiles and KV cache are in the compute dtype
    tokens = micro_batch * (prompt_tokens + completion_tokens)
    # Per token, one layer keeps the norms' inputs and outputs, q/k/v before and after RoPE,
    # the attention output (~8 x hidden) and the MLP's gate, up, activation and product
    # (4 x intermediate): 27,008 values at Qwen2.5-0.5B's width, 26,896 measured.
    layer_values = 8 * shape.hidden + 3 * shape.kv_dim + 4 * shape.intermediate
    one_layer = layer_values * tokens * value_bytes
    if gradient_checkpointing:  # each layer's fp32 input, plus one layer being recomputed
        activations = shape.layers * shape.hidden * tokens * 4 + one_layer
    else:
        activations = shape.layers * one_layer
    scored = micro_batch * completion_tokens
    sequence = prompt_tokens + completion_tokens
    kv_cache = 2 * shape.layers * shape.kv_dim * half * generation_batch * sequence
    sampling = 4 * generation_batch * shape.vocab * 4  # logits and 3 processed copies, fp32
    return MemoryEstimate(
        weights=4.0 * n,
        grads=4.0 * trained,
        optimizer=8.0 * trained,
        reference=0.0 if beta == 0 or lora_rank is not None else 4.0 * n,
        weight_copies=2.0 * shape.layers * shape.layer_matrices() if autocast else 0.0,
        head_grad=0.0 if lora_rank is not None else 4.0 * shape.vocab * shape.hidden,
        logits=2.0 * min(scored, LOGIT_TILE_TOKENS) * LOGIT_TILE_VOCAB * half,
        activations=float(activations),
        generation=0.0 if vllm_bytes is not None else float(kv_cache + sampling),
        vllm=float(vllm_bytes or 0.0),
        overhead=CUDA_OVERHEAD_GB * GB,
    )


@dataclass(frozen=True)
class DiskEstimate:
    """Bytes of one checkpoint, of final/, and the most the run holds at once."""

    checkpoint: float
    final: float
    saves: int
    peak: float
    note: str


def estimate_disk(
    shape: ModelShape,
    steps: int,
    save_steps: float,
    save_total_limit: int | None,
    lora_rank: int | None = None,
) -> DiskEstimate:
    """Disk of the run's checkpoints and final/.

    A full checkpoint holds fp32 weights and AdamW's two moments (4 + 8 B per parameter); a
    LoRA one the adapter and its optimizer only. The Trainer saves at every `save_steps` and
    at the last step, and writes the new checkpoint before deleting the oldest beyond
    `save_total_limit`: limit + 1 exist for a moment.
    """
    tokenizer = TOKENIZER_BYTES_PER_TOKEN * shape.vocab
    trained = shape.parameters() if lora_rank is None else lora_parameters(shape, lora_rank)
    checkpoint = 12.0 * trained + tokenizer + CHECKPOINT_SMALL_FILES
    final = 4.0 * trained + tokenizer
    every = math.ceil(save_steps * steps) if save_steps < 1 else int(save_steps)
    saves = math.ceil(steps / every) if steps > 0 and every > 0 else 0
    limit = saves if save_total_limit is None else save_total_limit
    during, kept = min(saves, limit + 1), min(saves, limit)
    peak = max(during * checkpoint, kept * checkpoint + final)
    what = "fp32 weights" if lora_rank is None else "adapter"
    note = (
        f"one checkpoint {checkpoint / GB:.3g} GB ({what} + AdamW + tokenizer), {saves} save(s) "
        f"every {every} steps and the last, at most {during} at once, {kept} kept + final/ "
        f"{final / GB:.3g} GB: peak {peak / GB:.3g} GB"
    )
    return DiskEstimate(checkpoint, final, saves, peak, note)


@dataclass(frozen=True)
class Plan:
    """A run's layout, memory, disk and time estimates, ready to print."""

    profile: str
    shape: ModelShape
    train_rows: int
    steps: int
    steps_note: str
    num_generations: int
    micro_batch: int
    accumulation: int
    processes: int
    gradient_checkpointing: bool
    bf16: bool
    fp16: bool
    lora_rank: int | None  # None: a full fine-tune
    use_vllm: bool
    prompt_tokens: int
    completion_tokens: int
    memory: MemoryEstimate
    disk: DiskEstimate
    gpu_memory_gb: float | None
    seconds_per_step: float
    seconds_source: str
    flags: tuple[str, ...]
    advice: str

    @property
    def lora(self) -> bool:
        return self.lora_rank is not None

    @property
    def completions_per_step(self) -> int:
        return self.micro_batch * self.accumulation * self.processes

    @property
    def prompts_per_step(self) -> int:
        return self.completions_per_step // self.num_generations

    @property
    def fits(self) -> bool | None:
        """Whether the estimate stays under HEADROOM of the card; None without a card size."""
        if self.gpu_memory_gb is None:
            return None
        return self.memory.total <= self.gpu_memory_gb * GB * HEADROOM

    @property
    def hours(self) -> float:
        return self.steps * self.seconds_per_step / 3600

    @property
    def precision(self) -> str:
        return "bf16 autocast" if self.bf16 else ("fp16 autocast" if self.fp16 else "fp32")

    def command(self, output_dir: str | None = None) -> str:
        folder = output_dir or f"runs/{self.profile}"
        words = ["python train_grpo.py", "--profile", self.profile, "--output-dir", folder]
        return " ".join([*words, *self.flags])

    def render(self, output_dir: str | None = None) -> str:
        """The plan as text for a terminal or a notebook cell."""
        memory = self.memory
        training = f"LoRA r={self.lora_rank}" if self.lora else "full fine-tune"
        lines = [
            f"Plan for profile {self.profile!r}: {self.shape.name}, "
            f"{self.shape.parameters() / 1e6:.1f}M parameters, {training}",
            f"  steps: {self.steps:,} ({self.steps_note})",
            f"  per optimiser step: {self.prompts_per_step} prompts x {self.num_generations} "
            f"completions = {self.completions_per_step} completions = micro-batch "
            f"{self.micro_batch} x {self.accumulation} "
            f"accumulation x {self.processes} process(es)",
            f"  {self.precision}; gradient checkpointing "
            f"{'on' if self.gradient_checkpointing else 'off'}; {self.prompt_tokens} prompt "
            f"(95th percentile) + {self.completion_tokens} completion tokens"
            + ("; vLLM colocate" if self.use_vllm else ""),
            "Estimated peak GPU memory (GB = 1e9 bytes):",
            *(
                f"  {name:<14}{value / GB:6.2f}  {MEMORY_PARTS[name]}"
                for name, value in asdict(memory).items()
                if value
            ),
            f"  {'total':<14}{memory.total / GB:6.2f}  static + max(training "
            f"{memory.training / GB:.2f}, generation {memory.generation / GB:.2f})",
        ]
        if self.use_vllm and self.gpu_memory_gb is None:
            lines.append("  vLLM's share of the card is not counted: give --gpu-memory-gb")
        if self.gpu_memory_gb is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(f"  budget: {self.gpu_memory_gb:g} GB x {HEADROOM} -> {verdict}")
        lines += [
            f"Estimated disk: {self.disk.note}",
            f"Estimated time: {self.steps:,} steps x {self.seconds_per_step:g} s = "
            f"{self.hours:.1f} h ({self.seconds_source})",
        ]
        if self.use_vllm:
            lines.append("  vLLM's speed is unmeasured: the figure is the one without it")
        if self.fp16:
            lines.append(
                "fp16 risk: Qwen2 has overflow reports under fp16; run python -m "
                "benchmarks.bench_gpu_real --variants fp16 first: it counts non-finite "
                "losses and skipped optimiser steps."
            )
        if self.advice:
            lines.append(self.advice)
        lines.append(f"Command: {self.command(output_dir)}")
        return "\n".join(lines)


def batch_problem(grpo: Mapping[str, Any], rows: int, processes: int) -> str | None:
    """Why this batch cannot make a GRPO step, in one line naming the flags, or None.

    TRL needs whole groups of `num_generations` completions per step across all processes
    (micro-batch x accumulation x processes), and drops a step that lacks prompts.
    """
    micro, accumulation = grpo["per_device_train_batch_size"], grpo["gradient_accumulation_steps"]
    generations = grpo["num_generations"]
    if min(micro, accumulation) < 1:
        return f"micro-batch {micro} x accumulation {accumulation}: both must be at least 1"
    if generations < 2:
        return f"num_generations {generations}: GRPO compares at least 2 completions per prompt"
    completions = micro * accumulation * processes
    if completions % generations:
        return (
            f"--per-device-train-batch-size {micro} x --gradient-accumulation-steps "
            f"{accumulation} x {processes} process(es) = {completions} completions per step, "
            f"not a multiple of --num-generations {generations} (whole groups only)"
        )
    prompts = completions // generations
    if rows < prompts:
        return (
            f"one step needs {prompts} training prompts ({completions} completions / "
            f"{generations} per prompt) but the training set has {rows}: "
            "raise --train-size or lower --per-device-train-batch-size"
        )
    return None


def make_plan(
    profile: Profile,
    overrides: Mapping[str, Any] | None = None,
    gpu_memory_gb: float | None = None,
    *,
    bf16: bool = False,
    fp16: bool = False,
    lora: bool = False,
    lora_rank: int = DEFAULT_LORA_RANK,
    use_vllm: bool = False,
    vllm_gpu_memory_utilization: float = DEFAULT_VLLM_UTILIZATION,
    train_rows: int | None = None,
    shape: ModelShape | None = None,
    processes: int = 1,
) -> Plan:
    """The plan for `profile` with command-line `overrides` (GRPOConfig fields).

    With `gpu_memory_gb` and no batch flags given, the layout is fitted to the card: the
    first that fits of no checkpointing with a micro-batch of at least one group (recomputing
    costs about 30% per step), then checkpointing with the largest micro-batch (an explicit
    `gradient_checkpointing` is kept), then the same with LoRA. `shape` replaces the
    profile's usual model. A batch that cannot make a GRPO step raises ValueError in one line.
    """
    if bf16 and fp16:
        raise ValueError("bf16 and fp16 autocast exclude each other: choose one")
    if use_vllm and not 0 < vllm_gpu_memory_utilization <= 1:
        raise ValueError(
            f"vllm_gpu_memory_utilization {vllm_gpu_memory_utilization:g} is not in (0, 1]"
        )
    overrides = dict(overrides or {})
    grpo = profile.with_grpo(**overrides)
    toy = profile.dataset == "toy"
    shape = shape or (TINY_SHAPE if toy else QWEN2_5_0_5B)
    rows = train_rows or profile.train_size or GSM8K_TRAIN_ROWS
    problem = batch_problem(grpo, rows, processes)
    if problem:
        raise ValueError(problem)
    prompt_tokens = TOY_PROMPT_TOKENS if toy else PROMPT_TOKENS
    generations = grpo["num_generations"]
    completions = grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"]
    # colocate: vLLM takes its share of the whole card (unknown without a size)
    vllm_bytes = vllm_gpu_memory_utilization * (gpu_memory_gb or 0) * GB if use_vllm else None

    def estimate(micro: int, checkpointing: bool, rank: int | None) -> MemoryEstimate:
        return estimate_memory(
            shape, micro, completions, grpo["max_completion_length"], prompt_tokens,
            checkpointing, bf16 or fp16, grpo["beta"], rank, vllm_bytes,
        )  # fmt: skip

    micro, checkpointing = grpo["per_device_train_batch_size"], bool(grpo["gradient_checkpointing"])
    rank = lora_rank if lora else None
    user_set_batch = {"per_device_train_batch_size", "gradient_accumulation_steps"} & set(overrides)
    advice = ""
    if gpu_memory_gb is not None and not user_set_batch:
        if "gradient_checkpointing" in overrides:
            tries = [(checkpointing, 1)]
        else:
            tries = [(False, generations), (True, 1)]
        candidates = [
            (m, c, r)
            for r in ([rank] if lora else [None, lora_rank])
            for c, smallest in tries
            for m in range(completions, smallest - 1, -1)
            if completions % m == 0
        ]
        budget = gpu_memory_gb * GB * HEADROOM
        fitted = next((c for c in candidates if estimate(*c).total <= budget), None)
        if fitted is None:
            rank = lora_rank
            advice = f"Does not fit {gpu_memory_gb:g} GB even with LoRA: use a larger GPU."
        else:
            micro, checkpointing, rank = fitted
            if rank is not None and not lora:
                advice = (
                    f"A full fine-tune does not fit {gpu_memory_gb:g} GB even with a "
                    "micro-batch of 1: this plan adds --lora (adapters only: no optimizer "
                    "state for the base weights and no separate reference model)."
                )
    prompts = completions * processes // generations
    if grpo.get("max_steps", -1) > 0:
        steps, steps_note = grpo["max_steps"], "max_steps"
    else:
        epochs = grpo.get("num_train_epochs", 1)
        steps = int(rows // prompts * epochs)
        steps_note = f"{rows:,} prompts / {prompts} per step x {epochs:g} epoch(s)"
    saving = grpo.get("save_steps", 500), grpo.get("save_total_limit")
    flags = []
    if gpu_memory_gb is not None or user_set_batch:
        flags += ["--per-device-train-batch-size", str(micro)]
        flags += ["--gradient-accumulation-steps", str(completions // micro)]
    if checkpointing != bool(profile.grpo["gradient_checkpointing"]):
        flags += ["--gradient-checkpointing", "true" if checkpointing else "false"]
    if fp16:
        flags.append("--fp16")
    if rank is not None:
        flags.append("--lora")
        if rank != DEFAULT_LORA_RANK:
            flags += ["--lora-r", str(rank)]
    if use_vllm:
        flags.append("--use-vllm")
    speed = "toy" if toy else ("bf16" if bf16 else "fp16" if fp16 else "fp32")
    return Plan(
        profile=profile.name,
        shape=shape,
        train_rows=rows,
        steps=steps,
        steps_note=steps_note,
        num_generations=generations,
        micro_batch=micro,
        accumulation=completions // micro,
        processes=processes,
        gradient_checkpointing=checkpointing,
        bf16=bf16,
        fp16=fp16,
        lora_rank=rank,
        use_vllm=use_vllm,
        prompt_tokens=prompt_tokens,
        completion_tokens=grpo["max_completion_length"],
        memory=estimate(micro, checkpointing, rank),
        disk=estimate_disk(shape, steps, *saving, rank),
        gpu_memory_gb=gpu_memory_gb,
        seconds_per_step=SECONDS_PER_STEP[speed],
        seconds_source=SECONDS_PER_STEP_SOURCE[speed],
        flags=tuple(flags),
        advice=advice,
    )


# The GPU classes of the README's table: (examples, memory in GB).
CARDS = (
    ("T4 (Colab free), V100-16GB", 16),
    ("L4, A10G, RTX 3090/4090", 24),
    ("A100-40GB, A6000 (48 GB)", 40),
    ("A100-80GB, H100", 80),
)


def card_plans(profiles: tuple[Profile, ...]) -> Iterator[tuple[str, int, Plan, Plan]]:
    """(examples, GB, plan, the same with --use-vllm) for every card class, precision and
    profile: bf16 autocast where the card has it, else fp32 and the opt-in fp16 autocast."""
    for examples, gb in CARDS:
        bf16 = has_bf16(memory_gb=gb)
        for fp16 in (False,) if bf16 else (False, True):
            for profile in profiles:
                plans = (
                    make_plan(profile, gpu_memory_gb=gb, bf16=bf16, fp16=fp16, use_vllm=vllm)
                    for vllm in (False, True)
                )
                yield examples, gb, *plans


def _vllm_cell(plan: Plan, vllm: Plan) -> str:
    """Whether the row's run fits beside vLLM's share, and the layout that does."""
    share = vllm.memory.vllm / GB
    if not vllm.fits:
        return f"no: {(vllm.memory.total - vllm.memory.vllm) / GB:.1f} + {share:.1f} GB"
    layout = f"{vllm.micro_batch} x {vllm.accumulation}, {vllm.memory.total / GB:.1f} GB"
    if vllm.lora and not plan.lora:
        return f"full fine-tune: no; --lora {layout} incl. {share:.1f}"
    return f"fits: {layout} incl. {share:.1f}"


def card_table(profiles: tuple[Profile, ...]) -> str:
    """Markdown: for each card class and precision, the fitted layout, memory and time per
    profile, and whether the run fits with vLLM's share of the card."""
    header = (
        "| GPU memory | e.g. | precision | profile | micro-batch x accumulation | checkpointing "
        "| est. peak memory | est. time | with `--use-vllm` | command |\n"
        "|---:|---|---|---|---|---|---:|---:|---|---|"
    )
    rows = [
        f"| {gb} GB | {examples} | {plan.precision} | {plan.profile} "
        f"| {plan.micro_batch} x {plan.accumulation} "
        f"| {'on' if plan.gradient_checkpointing else 'off'} "
        f"| {plan.memory.total / GB:.1f} GB | {plan.hours:.1f} h ({plan.steps:,} steps) "
        f"| {_vllm_cell(plan, vllm)} | `{plan.command()}` |"
        for examples, gb, plan, vllm in card_plans(profiles)
    ]
    notes = (
        "\n\nEstimates from `grpo.plan` (model shape x batch layout), not measurements. "
        "Memory: fp32 master weights always; 16-bit autocast keeps "
        f"{AUTOCAST_BYTES_PER_VALUE:.2f} B per activation value and 16-bit weight copies; "
        f"the budget is {HEADROOM:.0%} of the card; `--use-vllm` adds vLLM's share, "
        f"{DEFAULT_VLLM_UTILIZATION} x the card. Time: {SECONDS_PER_STEP['fp32']:g} s per step "
        f"on a T4 ({SECONDS_PER_STEP_SOURCE['fp32']}); fp16 on a T4 unmeasured, planned at the "
        f"same figure; {SECONDS_PER_STEP['bf16']:g} s on any bf16 card (an assumption: run "
        "`python -m benchmarks.bench_gpu_real` for your card's figure). "
        f"Disk ({profiles[0].name}): {make_plan(profiles[0]).disk.note}."
    )
    return "\n".join([header, *rows]) + notes


def has_bf16(compute_capability: float | None = None, memory_gb: float | None = None) -> bool:
    """Whether a CUDA GPU has native bf16: the one rule behind every precision choice.

    A GPU seen here (nvidia-smi's or torch's compute capability): 8.0 or newer (Ampere: A100,
    A10G, L4, RTX 30x0; then Ada and Hopper). Older cards (T4 7.5, V100 7.0) only emulate
    bf16, slower than fp32. A card planned by its memory alone (`--gpu-memory-gb` on a machine
    without it) is taken for its class in the card table: above 16 GB bf16, 16 GB (T4) not.
    """
    if compute_capability is not None:
        return compute_capability >= 8.0
    return memory_gb is not None and memory_gb > 16


def visible_gpu() -> tuple[float, bool] | None:
    """(memory in GB, has bf16) of the first visible NVIDIA GPU, from nvidia-smi (no torch).

    None when there is no GPU, no nvidia-smi, nvidia-smi fails (no driver), or
    CUDA_VISIBLE_DEVICES hides every GPU. ValueError, in one line, for an answer no GPU
    gives (a missing field, "[N/A]", zero, not finite, beyond any card made): planning from
    it would be planning blind.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return None
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--query-gpu=memory.total,compute_cap", "--format=csv,noheader,nounits"]
    try:
        answer = subprocess.run(query, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if answer.returncode != 0:
        return None
    lines = answer.stdout.strip().splitlines()
    try:
        memory_mib, capability = (float(value) for value in lines[0].split(","))
    except (ValueError, IndexError):
        message = f"nvidia-smi answered {answer.stdout.strip()[:80]!r}, not 'MiB, capability'"
        raise ValueError(message) from None
    memory_gb = memory_mib * 2**20 / GB
    if not (math.isfinite(memory_gb) and 0 < memory_gb <= MAX_GPU_MEMORY_GB):
        raise ValueError(f"nvidia-smi reports {memory_mib:g} MiB of GPU memory, not a card's size")
    if not (math.isfinite(capability) and 1 <= capability < MAX_COMPUTE_CAPABILITY):
        raise ValueError(f"nvidia-smi reports compute capability {capability:g}, not a GPU's")
    return memory_gb, has_bf16(capability)
