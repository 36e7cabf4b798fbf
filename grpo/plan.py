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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grpo.profiles import Profile
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
SHAPES = {"real": QWEN2_5_0_5B, "learner": QWEN2_5_0_5B, "tiny": TINY_SHAPE}

GSM8K_TRAIN_ROWS = 7473  # GSM8K's train split, all of which keep a '#### <answer>' line
# 95th percentile of a GSM8K prompt in Qwen2.5's chat template (system prompt included):
# 134-138 tokens over the 600 embedded questions (mean 95), measured with the real tokenizer.
PROMPT_TOKENS = 140
TOY_PROMPT_TOKENS = 60  # the toy task's prompts in the tiny tokenizer, rounded up

# TRL 1.16 never materialises the [tokens, vocab] logits in training: its fused LM head
# projects tiles of at most 4,096 tokens x 32,768 vocabulary entries (trl/kernels/
# chunked_logprob.py, trl/trainer/utils.py: _CHUNKED_LOGPROB_CHUNK_SIZE). Its backward
# accumulates the head's weight gradient in a full fp32 [vocab, hidden] buffer
# (`grad_weight = torch.zeros(weight.shape, dtype=torch.float32)`) before autograd adds it
# to .grad: one more vocab x hidden x 4 B while the backward runs (0.545 GB for Qwen2.5-0.5B).
LOGIT_TILE_TOKENS, LOGIT_TILE_VOCAB = 4096, 32_768
# Bytes autograd keeps per token for one decoder layer of Qwen2.5-0.5B's width (SDPA
# attention), measured on CPU by tests/test_plan.py: 107,584 B in fp32 (26,896 values x 4 B)
# and 66,368 B under bf16 or fp16 autocast (some tensors are kept in both precisions, the
# norms stay fp32), i.e. 2.47 B per fp32 value, not 2. Autocast also keeps a 16-bit copy of
# every layer's weight matrices for the backward (29.8 MB per layer at that width).
FP32_LAYER_VALUES, AUTOCAST_LAYER_BYTES = 26_896, 66_368
AUTOCAST_BYTES_PER_VALUE = AUTOCAST_LAYER_BYTES / FP32_LAYER_VALUES
CUDA_OVERHEAD_GB = 1.0  # assumed: CUDA context, cuBLAS workspace, allocator slack
HEADROOM = 0.85  # a plan fits when its estimate stays under 85% of the card
DEFAULT_LORA_RANK = 16
# vLLM's share of the card in colocate mode: TRL 1.16's vllm_gpu_memory_utilization
# default, which the run keeps unless --vllm-gpu-memory-utilization says otherwise.
DEFAULT_VLLM_UTILIZATION = 0.3
# Native bf16 from compute capability 8.0 (see `has_bf16`); a card planned by size alone has
# it above 16 GB (the card table's classes: L4, A10G and up have it, the 16 GB T4 has not).
BF16_COMPUTE_CAPABILITY, BF16_ABOVE_GB = 8.0, 16
# Beyond any card made (the largest in 2026 hold under 300 GB; compute capabilities are
# single digits to 12.x): an nvidia-smi answer past these is a misreading, not a GPU.
MAX_GPU_MEMORY_GB, MAX_COMPUTE_CAPABILITY = 2000.0, 100.0

# Seconds per optimiser step of 64 completions of up to 200 tokens. Estimates, not
# measurements of this project (no GPU has been available to it):
# * fp32 (T4): 48 s, read from a third party's report: qunash's public gist "full GRPO
#   fine-tuning Qwen2.5 0.5B on a single T4"
#   (https://gist.github.com/qunash/820c86d1d267ec8051d9f68b4f4bb656) reports about 150
#   steps in about 30 minutes, ~12 s per step, with 16 completions per prompt, vLLM
#   generation, 8-bit AdamW and a patched TRL fork (read in a public copy of its text; the
#   gist itself is not reachable from this project's machines). Read conservatively (if
#   its step held more than one prompt's group, a T4 is faster than this) as 12 s per 16
#   completions, x 4 for our 64 = 48 s. Cross-check from the arithmetic: one forward +
#   backward of 64 x 340 tokens is 6 x 494M x 21,760 = 6.4e13 FLOP, 8 s at the T4's
#   8.1 TFLOPS fp32 peak (NVIDIA's figure) before checkpointing's recompute and generation.
# * fp16 autocast (T4): unmeasured; planned at the fp32 figure, an upper bound: fp16 tensor
#   cores (65 TFLOPS vs 8.1, NVIDIA's figures) can only shorten the matmul share of a step,
#   and token-by-token generation is bound by per-token overhead more than by FLOPS.
# * bf16 card (L4, A10G, RTX 3090/4090, A100, H100): an ASSUMPTION of 12 s, a quarter of
#   the T4's: TRL 1.16 generates the step's 64 completions in one batched call instead of
#   four calls of 16, and bf16 tensor cores speed up the forward and backward passes.
# * toy task (tiny model): 40 steps in 61 s on a busy 2-core CPU, one torch thread
#   (measured, tests/test_training.py).
# Replace the GPU figures with what benchmarks/bench_gpu_real.py prints on your card.
SECONDS_PER_STEP = {"fp32": 48.0, "fp16": 48.0, "bf16": 12.0, "toy": 1.5}
SECONDS_PER_STEP_SOURCE = {
    "fp32": "a T4 estimate from qunash's public GRPO-on-a-T4 gist, ~12 s per 16 completions x 4",
    "fp16": "fp16 on a T4 is unmeasured: the fp32 figure, an upper bound",
    "bf16": "assumed for a bf16 GPU; measure yours with python -m benchmarks.bench_gpu_real",
    "toy": "measured for the tiny model on a 2-core CPU",
}
VLLM_TIME_NOTE = (
    "vLLM unmeasured: the figure without it (vLLM usually generates faster, and TRL adds one "
    "no-grad forward over the step's completions for the old log-probs)"
)
FP16_RISK = (
    "fp16 risk: Qwen2 has overflow reports under pure fp16 weights; autocast keeps fp32 master "
    "weights and the fp32 residual stream and a gradient scaler skips overflowing steps, so "
    "the risk is lower but real: run python -m benchmarks.bench_gpu_real --variants fp16 first: it "
    "counts non-finite losses and skipped optimiser steps."
)

# The vLLM release for `--use-vllm`, verified from package metadata without installing
# (`pip install --dry-run --no-deps --report`, 2026-12-01): trl 1.16.0 declares
# `vllm>=0.22.0,<=0.31.0` (its "vllm" extra; trl/import_utils.py warns outside that range);
# vllm 0.28.0, 0.29.0 and 0.30.0 require torch==2.13.0 and transformers>=5.5.3 / >=5.10.4
# (so 5.24.0 is accepted); 0.31.0 also caps transformers<5.18.0, which excludes 5.24.0.
# The newest release that fits all three pins:
VLLM_REQUIREMENT = "vllm==0.30.0"

# Disk. Files of one checkpoint besides the weights and the optimizer, measured on a
# checkpoint of the Qwen2.5 stand-in (tests/test_plan.py writes one): the tokenizer
# (tokenizer.json, tokenizer_config.json, chat_template.jinja: 11,425,366 B, 75 B per entry
# of the 151,936-entry vocabulary) and the Trainer's small files (scheduler, RNG state,
# trainer_state.json, training_args.bin, configs, safetensors header and optimizer pickle
# framing: ~50 KB).
TOKENIZER_BYTES_PER_TOKEN = 75
CHECKPOINT_SMALL_FILES = 50_000
DEFAULT_SAVE_TOTAL_LIMIT = 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak GPU memory of a GRPO step, in bytes, with the arithmetic of each part."""

    weights: float
    grads: float
    optimizer: float
    reference: float
    weight_copies: float  # 16-bit copies autocast keeps for the backward
    head_grad: float  # the fused LM head's fp32 weight-gradient buffer during the backward
    logits: float
    activations: float
    generation: float  # KV cache and sampling logits while generating (grads are freed then)
    vllm: float  # vLLM's share of the card (colocate mode)
    overhead: float
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def training(self) -> float:
        return self.grads + self.weight_copies + self.head_grad + self.logits + self.activations

    @property
    def total(self) -> float:
        """Static memory plus the larger of the training and the generation phase."""
        static = self.weights + self.optimizer + self.reference + self.vllm + self.overhead
        return static + max(self.training, self.generation)

    def parts(self) -> dict[str, float]:
        names = ("weights", "grads", "optimizer", "reference", "weight_copies", "head_grad")
        names += ("logits", "activations", "generation", "vllm", "overhead")
        return {name: getattr(self, name) for name in names}


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
    bf16: bool,
    beta: float,
    lora: bool = False,
    *,
    fp16: bool = False,
    lora_rank: int = DEFAULT_LORA_RANK,
    vllm_bytes: float | None = None,
) -> MemoryEstimate:
    """Peak memory of one GRPO step (see the module doc for the assumptions).

    Master weights are always fp32 (4 bytes); `bf16` or `fp16` means autocast, which keeps
    16-bit copies of the layer weights and 2.47 B per activation value instead of 4, but
    leaves the weights, the gradients and the optimizer in fp32. `vllm_bytes` is vLLM's
    share of the card (None: no vLLM); with vLLM, HF generation and its KV cache do not run.
    """
    autocast = bf16 or fp16
    n = shape.parameters()
    trained = lora_parameters(shape, lora_rank) if lora else n
    value_bytes = AUTOCAST_BYTES_PER_VALUE if autocast else 4.0
    half = 2 if autocast else 4  # logit tiles and KV cache are in the compute dtype
    tokens = micro_batch * (prompt_tokens + completion_tokens)
    # Values one decoder layer keeps for its backward pass, per token: the two norms' inputs
    # and outputs, q/k/v before and after RoPE, the attention output (~8 x hidden), and the
    # MLP's gate, up, activation and product (4 x intermediate). Checked: for a layer of
    # Qwen2.5-0.5B's width autograd keeps 26,896 values per token (fp32, SDPA attention;
    # tests/test_plan.py measures it), this formula says 27,008.
    layer_values = 8 * shape.hidden + 3 * shape.kv_dim + 4 * shape.intermediate
    one_layer = layer_values * tokens * value_bytes
    per_value = f"{value_bytes:.2f} B" + (" (autocast, measured)" if autocast else "")
    if gradient_checkpointing:  # each layer's fp32 input, plus one layer being recomputed
        activations = shape.layers * shape.hidden * tokens * 4 + one_layer
        act_note = (
            f"checkpointing: {shape.layers} layer inputs x {shape.hidden} x {tokens:,} tokens "
            f"x 4 B + one layer recomputed ({layer_values:,} values/token x {per_value})"
        )
    else:
        activations = shape.layers * one_layer
        act_note = (
            f"{shape.layers} layers x {layer_values:,} values/token x {tokens:,} tokens "
            f"x {per_value} (no checkpointing)"
        )
    copies = 2.0 * shape.layers * shape.layer_matrices() if autocast else 0.0
    head_grad = 0.0 if lora else 4.0 * shape.vocab * shape.hidden
    scored = micro_batch * completion_tokens
    tile = min(scored, LOGIT_TILE_TOKENS) * LOGIT_TILE_VOCAB * half  # a full-width buffer
    materialised = 3 * scored * shape.vocab * 4
    kv_cache = (
        2
        * shape.layers
        * shape.kv_dim
        * half
        * generation_batch
        * (prompt_tokens + completion_tokens)
    )
    sampling = 4 * generation_batch * shape.vocab * 4  # logits and 3 processed copies, fp32
    generation = 0.0 if vllm_bytes is not None else float(kv_cache + sampling)
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
        "weight_copies": (
            f"autocast's 16-bit copies: {shape.layers} layers x "
            f"{shape.layer_matrices() / 1e6:.1f}M matrix weights x 2 B"
            if autocast
            else "none (no autocast)"
        ),
        "head_grad": (
            "none: the LM head is frozen under LoRA"
            if lora
            else f"fused LM head backward: fp32 [{shape.vocab:,} x {shape.hidden}] weight "
            "gradient before it is added to grads"
        ),
        "logits": (
            f"TRL's fused LM head: {min(scored, LOGIT_TILE_TOKENS):,} x "
            f"{LOGIT_TILE_VOCAB:,} tile x {half} B, x2 (forward, "
            f"backward); materialised it would be 3 x {scored:,} x {shape.vocab:,} x 4 B "
            f"= {materialised / GB:.2f} GB"
        ),
        "activations": act_note,
        "generation": (
            "none here: vLLM generates inside its share"
            if vllm_bytes is not None
            else f"KV cache of {generation_batch} sequences x "
            f"{prompt_tokens + completion_tokens} tokens + sampling logits (grads freed then)"
        ),
        "vllm": "none (no --use-vllm)" if vllm_bytes is None else "vLLM's share (colocate)",
        "overhead": "CUDA context, cuBLAS workspace, allocator slack (assumed)",
    }
    return MemoryEstimate(
        weights=4.0 * n,
        grads=4.0 * trained,
        optimizer=8.0 * trained,
        reference=reference,
        weight_copies=copies,
        head_grad=head_grad,
        logits=2.0 * tile,
        activations=float(activations),
        generation=generation,
        vllm=float(vllm_bytes or 0.0),
        overhead=CUDA_OVERHEAD_GB * GB,
        notes=notes,
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
    lora: bool = False,
    lora_rank: int = DEFAULT_LORA_RANK,
) -> DiskEstimate:
    """Disk of the run's checkpoints and final/ (an estimate, see the note).

    A full checkpoint holds fp32 weights (4 B per parameter) and AdamW's two moments (8 B
    per trained parameter); a LoRA one the adapter and its optimizer only. The Trainer
    saves at every `save_steps` and at the last step, and writes the new checkpoint before
    deleting the oldest beyond `save_total_limit`: limit + 1 exist for a moment.
    """
    tokenizer = TOKENIZER_BYTES_PER_TOKEN * shape.vocab
    trained = lora_parameters(shape, lora_rank) if lora else shape.parameters()
    weights = 4.0 * trained
    checkpoint = weights + 8.0 * trained + tokenizer + CHECKPOINT_SMALL_FILES
    final = weights + tokenizer
    every = math.ceil(save_steps * steps) if save_steps < 1 else int(save_steps)
    saves = math.ceil(steps / every) if steps > 0 and every > 0 else 0
    kept = saves if save_total_limit is None else min(saves, save_total_limit)
    during = saves if save_total_limit is None else min(saves, save_total_limit + 1)
    peak = max(during * checkpoint, kept * checkpoint + final)
    what = "adapter" if lora else "fp32 weights"

    def gb(size: float) -> str:  # small LoRA and tiny-model files keep 3 decimals
        return f"{size / GB:.2f}" if size >= 0.1 * GB else f"{size / GB:.3f}"

    note = (
        f"one checkpoint {gb(checkpoint)} GB = {what} {gb(weights)} + AdamW "
        f"{gb(8 * trained)} + tokenizer and Trainer files "
        f"{gb(tokenizer + CHECKPOINT_SMALL_FILES)}; {saves} save(s) (every {every} "
        f"steps and the last); peak = max({during} checkpoints while the newest is written "
        f"before the oldest is deleted, {kept} + final/ {gb(final)}) = {gb(peak)} GB"
        if save_total_limit is not None
        else f"steps and the last), all kept (no save_total_limit); peak = {saves} + final/ "
        f"{gb(final)} = {gb(peak)} GB"
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
    gradient_checkpointing: bool
    bf16: bool
    lora: bool
    prompt_tokens: int
    completion_tokens: int
    memory: MemoryEstimate
    disk: DiskEstimate
    gpu_memory_gb: float | None
    seconds_per_step: float
    seconds_source: str
    flags: tuple[str, ...]
    advice: str = ""
    fp16: bool = False
    lora_rank: int = DEFAULT_LORA_RANK
    use_vllm: bool = False
    vllm_gpu_memory_utilization: float = DEFAULT_VLLM_UTILIZATION
    processes: int = 1

    @property
    def completions_per_step(self) -> int:
        return self.micro_batch * self.accumulation * self.processes

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

    @property
    def checkpoint_bytes(self) -> float:
        return self.disk.checkpoint

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
        memory, gb = self.memory, lambda b: f"{b / GB:6.2f}"
        training = f"LoRA r={self.lora_rank}" if self.lora else "full fine-tune"
        lines = [
            f"Plan for profile {self.profile!r}: {self.shape.name}, "
            f"{self.shape.parameters() / 1e6:.1f}M parameters, {training}",
            f"  steps: {self.steps:,} ({self.steps_note})",
            f"  per optimiser step: {self.prompts_per_step} prompts x {self.num_generations} "
            f"completions = {self.completions_per_step} completions = micro-batch "
            f"{self.micro_batch} x {self.accumulation} accumulation x {self.processes} process(es)",
            f"  {'fp32 master weights + ' if self.bf16 or self.fp16 else ''}{self.precision}; "
            "gradient checkpointing "
            f"{'on' if self.gradient_checkpointing else 'off'}; {self.prompt_tokens} prompt "
            f"(95th percentile) + {self.completion_tokens} completion tokens"
            + ("; vLLM colocate" if self.use_vllm else ""),
            "Estimated peak GPU memory (GB = 1e9 bytes):",
        ]
        lines += [
            f"  {name:<14}{gb(value)}  {memory.notes[name]}"
            for name, value in memory.parts().items()
            if value
        ]
        lines.append(
            f"  {'total':<14}{gb(memory.total)}  static + max(training phase "
            f"{memory.training / GB:.2f}, generation {memory.generation / GB:.2f})"
        )
        if self.use_vllm and self.gpu_memory_gb is None:
            lines.append(
                f"  vLLM's share, {self.vllm_gpu_memory_utilization:g} x the card, is not "
                "counted: give the card's memory (--gpu-memory-gb)"
            )
        if self.gpu_memory_gb is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(
                f"  budget: {self.gpu_memory_gb:g} GB x {HEADROOM} = "
                f"{self.budget_bytes / GB:.1f} GB -> {verdict}"
            )
        lines += [
            f"Estimated disk: {self.disk.note}",
            f"Estimated time: {self.steps:,} steps x {self.seconds_per_step:g} s = "
            f"{self.hours:.1f} h ({self.seconds_source})",
        ]
        if self.use_vllm:
            lines.append(f"  {VLLM_TIME_NOTE}")
        if self.fp16:
            lines.append(FP16_RISK)
        if self.advice:
            lines.append(self.advice)
        lines.append(f"Command: {self.command(output_dir)}")
        return "\n".join(lines)


def batch_problem(grpo: Mapping[str, Any], rows: int | None, processes: int = 1) -> str | None:
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
    if rows is not None and rows < prompts:
        return (
            f"one step needs {prompts} training prompts ({completions} completions / "
            f"{generations} per prompt) but the training set has {rows}: "
            "raise --train-size or lower --per-device-train-batch-size"
        )
    return None


def _steps(grpo: Mapping[str, Any], rows: int, prompts: int) -> tuple[int, str]:
    if grpo.get("max_steps", -1) > 0:
        return grpo["max_steps"], "max_steps"
    epochs = grpo.get("num_train_epochs", 1)
    per_epoch = rows // prompts
    return int(per_epoch * epochs), f"{rows:,} prompts / {prompts} per step x {epochs:g} epoch(s)"


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

    With `gpu_memory_gb` and no batch flags given, the largest micro-batch whose estimate
    fits is chosen (turning gradient checkpointing on if needed, unless it was explicitly
    turned off); if none fits, the plan advises `--lora`. `shape` (from
    `ModelShape.from_config`) replaces the profile's usual model. A batch that cannot make
    a GRPO step raises ValueError with a one-line reason (never ZeroDivisionError).
    """
    if bf16 and fp16:
        raise ValueError("bf16 and fp16 autocast exclude each other: choose one")
    if use_vllm and not 0 < vllm_gpu_memory_utilization <= 1:
        raise ValueError(
            f"vllm_gpu_memory_utilization {vllm_gpu_memory_utilization:g} is not in (0, 1]"
        )
    overrides = dict(overrides or {})
    grpo = profile.with_grpo(**overrides)
    shape = shape or SHAPES.get(profile.name, QWEN2_5_0_5B)
    rows = train_rows or profile.train_size or GSM8K_TRAIN_ROWS
    problem = batch_problem(grpo, rows, processes)
    if problem:
        raise ValueError(problem)
    prompt_tokens = TOY_PROMPT_TOKENS if profile.dataset == "toy" else PROMPT_TOKENS
    generations = grpo["num_generations"]
    completions = grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"]
    checkpointing = bool(grpo["gradient_checkpointing"])
    vllm_bytes = None
    if use_vllm:  # colocate: vLLM takes its share of the whole card (unknown without a size)
        vllm_bytes = vllm_gpu_memory_utilization * (gpu_memory_gb or 0) * GB

    def estimate(micro: int, ckpt: bool, lora: bool = lora) -> MemoryEstimate:
        return estimate_memory(
            shape, micro, completions, grpo["max_completion_length"], prompt_tokens,
            ckpt, bf16, grpo["beta"], lora, fp16=fp16, lora_rank=lora_rank,
            vllm_bytes=vllm_bytes,
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
                profile, overrides, gpu_memory_gb, bf16=bf16, fp16=fp16, lora=True,
                lora_rank=lora_rank, use_vllm=use_vllm,
                vllm_gpu_memory_utilization=vllm_gpu_memory_utilization, train_rows=rows,
                shape=shape, processes=processes,
            )  # fmt: skip
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
    steps, steps_note = _steps(grpo, rows, completions * processes // generations)
    disk = estimate_disk(
        shape,
        steps,
        grpo.get("save_steps", 500),
        grpo.get("save_total_limit", DEFAULT_SAVE_TOTAL_LIMIT),
        lora,
        lora_rank,
    )
    flags = []
    if gpu_memory_gb is not None or user_set_batch:
        flags += ["--per-device-train-batch-size", str(micro)]
        flags += ["--gradient-accumulation-steps", str(accumulation)]
    if checkpointing != bool(profile.grpo["gradient_checkpointing"]):
        flags += ["--gradient-checkpointing", "true" if checkpointing else "false"]
    if fp16:
        flags.append("--fp16")
    if lora:
        flags.append("--lora")
        if lora_rank != DEFAULT_LORA_RANK:
            flags += ["--lora-r", str(lora_rank)]
    if use_vllm:
        flags.append("--use-vllm")
    speed = "toy" if profile.dataset == "toy" else ("bf16" if bf16 else "fp16" if fp16 else "fp32")
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
        disk=disk,
        gpu_memory_gb=gpu_memory_gb,
        seconds_per_step=SECONDS_PER_STEP[speed],
        seconds_source=SECONDS_PER_STEP_SOURCE[speed],
        flags=tuple(flags),
        advice=advice,
        fp16=fp16,
        lora_rank=lora_rank,
        use_vllm=use_vllm,
        vllm_gpu_memory_utilization=vllm_gpu_memory_utilization,
        processes=processes,
    )


@dataclass(frozen=True)
class Card:
    """A GPU class the README's table covers."""

    examples: str
    memory_gb: int

    @property
    def bf16(self) -> bool:
        return has_bf16(memory_gb=self.memory_gb)


CARDS = (
    Card("T4 (Colab free), V100-16GB", 16),
    Card("L4, A10G, RTX 3090/4090", 24),
    Card("A100-40GB, A6000 (48 GB)", 40),
    Card("A100-80GB, H100", 80),
)


def card_plans(profiles: tuple[Profile, ...]) -> Iterator[tuple[Card, Plan, Plan]]:
    """(card, plan, the same with --use-vllm) for every card class, precision and profile:
    bf16 autocast where the card has it, else fp32 and the opt-in fp16 autocast."""
    for card in CARDS:
        for fp16 in (False,) if card.bf16 else (False, True):
            for profile in profiles:
                kwargs = dict(bf16=card.bf16, fp16=fp16)
                yield (
                    card,
                    make_plan(profile, gpu_memory_gb=card.memory_gb, **kwargs),
                    make_plan(profile, gpu_memory_gb=card.memory_gb, use_vllm=True, **kwargs),
                )


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
        f"| {card.memory_gb} GB | {card.examples} | {plan.precision} | {plan.profile} "
        f"| {plan.micro_batch} x {plan.accumulation} "
        f"| {'on' if plan.gradient_checkpointing else 'off'} "
        f"| {plan.memory.total / GB:.1f} GB | {plan.hours:.1f} h ({plan.steps:,} steps) "
        f"| {_vllm_cell(plan, vllm)} | `{plan.command()}` |"
        for card, plan, vllm in card_plans(profiles)
    ]
    disk = make_plan(profiles[0]).disk
    notes = (
        "\n\nEstimates from `grpo.plan` (model shape x batch layout), not measurements. "
        "Memory: fp32 master weights always; 16-bit autocast keeps "
        f"{AUTOCAST_BYTES_PER_VALUE:.2f} B per activation value and 16-bit weight copies; "
        f"the budget is {HEADROOM:.0%} of the card; `--use-vllm` adds vLLM's share, "
        f"{DEFAULT_VLLM_UTILIZATION} x the card. Time: {SECONDS_PER_STEP['fp32']:g} s per step "
        f"on a T4 ({SECONDS_PER_STEP_SOURCE['fp32']}); fp16 on a T4 unmeasured, planned at the "
        f"same figure; {SECONDS_PER_STEP['bf16']:g} s on any bf16 card (an assumption: run "
        "`python -m benchmarks.bench_gpu_real` for your card's figure). "
        f"Disk ({profiles[0].name}): {disk.note}."
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
        return compute_capability >= BF16_COMPUTE_CAPABILITY
    return memory_gb is not None and memory_gb > BF16_ABOVE_GB


def parse_nvidia_smi(answer: str) -> tuple[float, bool]:
    """(memory in GB, has bf16) of the first GPU in nvidia-smi's CSV answer ("MiB, capability").

    ValueError, in one line, for an answer no GPU gives (a missing field, "[N/A]", zero,
    negative, not finite, or beyond any card made): planning from it would be planning blind.
    """
    lines = answer.strip().splitlines()
    fields = lines[0].split(",") if lines else []
    try:
        memory_mib, capability = (float(value) for value in fields)
    except ValueError:
        message = f"nvidia-smi answered {answer.strip()[:80]!r}, not 'MiB, capability'"
        raise ValueError(message) from None
    memory_gb = memory_mib * 2**20 / GB
    if not (math.isfinite(memory_gb) and 0 < memory_gb <= MAX_GPU_MEMORY_GB):
        raise ValueError(f"nvidia-smi reports {memory_mib:g} MiB of GPU memory, not a card's size")
    if not (math.isfinite(capability) and 1 <= capability < MAX_COMPUTE_CAPABILITY):
        raise ValueError(f"nvidia-smi reports compute capability {capability:g}, not a GPU's")
    return memory_gb, has_bf16(capability)


def visible_gpu() -> tuple[float, bool] | None:
    """(memory in GB, has bf16) of the first visible NVIDIA GPU, from nvidia-smi (no torch).

    None when there is no GPU, no nvidia-smi, nvidia-smi fails (no driver), or
    CUDA_VISIBLE_DEVICES hides every GPU; ValueError when it answers nonsense (see
    `parse_nvidia_smi`).
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
    return parse_nvidia_smi(answer.stdout) if answer.returncode == 0 else None
