"""Tests for grpo.plan: the shape copy, the memory arithmetic and fitting a card."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grpo import plan
from grpo.plan import GB, HEADROOM, QWEN2_5_0_5B, estimate_memory, make_plan
from grpo.profiles import LEARNER, PROFILES, REAL, TINY

REPO = Path(__file__).resolve().parents[1]
REAL_CONFIG = REPO.parent / "shared/data/qwen2.5-0.5b-instruct-tokenizer/config.json"


@pytest.mark.skipif(not REAL_CONFIG.is_file(), reason=f"no {REAL_CONFIG}")
def test_shipped_shape_matches_qwens_config_json():
    config = json.loads(REAL_CONFIG.read_text())
    shape = QWEN2_5_0_5B
    assert (shape.hidden, shape.layers, shape.vocab) == (
        config["hidden_size"],
        config["num_hidden_layers"],
        config["vocab_size"],
    )
    assert shape.intermediate == config["intermediate_size"]
    assert (shape.heads, shape.kv_heads) == (
        config["num_attention_heads"],
        config["num_key_value_heads"],
    )
    assert shape.tied_embeddings == config["tie_word_embeddings"]


def test_parameter_count_matches_a_built_model():
    """The formula against transformers' own Qwen2 at a small shape (and 0.49B at full size)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    small = plan.ModelShape("small", 64, 2, 1000, 160, heads=4, kv_heads=2, tied_embeddings=True)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            hidden_size=64,
            num_hidden_layers=2,
            vocab_size=1000,
            intermediate_size=160,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
        )  # fmt: skip
    )
    assert small.parameters() == sum(p.numel() for p in model.parameters())
    assert QWEN2_5_0_5B.parameters() == 494_032_768


@pytest.mark.parametrize("gpu_gb", [8, 16, 24, 40, 80])
@pytest.mark.parametrize("bf16", [False, True])
def test_fitting_keeps_64_completions_per_step(gpu_gb, bf16):
    fitted = make_plan(REAL, gpu_memory_gb=gpu_gb, bf16=bf16)

    assert fitted.completions_per_step == 64
    assert fitted.prompts_per_step == 4
    assert fitted.micro_batch * fitted.accumulation == 64
    # TRL's rule: the generation batch holds whole groups.
    assert (fitted.micro_batch * fitted.accumulation) % fitted.num_generations == 0
    assert fitted.fits


def test_real_profile_fits_a_16_gb_card_under_15_gb():
    fitted = make_plan(REAL, gpu_memory_gb=16)

    assert fitted.memory.total < 15 * GB
    assert fitted.memory.total <= 16 * GB * HEADROOM
    assert not fitted.lora
    command = fitted.command()
    assert "--per-device-train-batch-size 16 --gradient-accumulation-steps 4" in command
    assert "--profile real" in command


def test_a_bigger_card_never_gets_a_smaller_micro_batch():
    micro = [make_plan(REAL, gpu_memory_gb=gb, bf16=True).micro_batch for gb in (24, 40, 80)]
    assert micro == sorted(micro)
    assert micro[-1] == 64  # one micro-batch per step on an 80 GB card


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
def test_memory_grows_with_the_micro_batch(checkpointing, bf16):
    totals = [
        estimate_memory(QWEN2_5_0_5B, b, 64, 200, 140, checkpointing, bf16, beta=0.04).total
        for b in (1, 2, 4, 8, 16, 32, 64)
    ]
    assert totals == sorted(totals) and totals[0] < totals[-1]


def test_checkpointing_saves_activation_memory_and_bf16_halves_it():
    def activations(checkpointing, bf16):
        return estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, checkpointing, bf16, 0.04)

    full, checkpointed = activations(False, False), activations(True, False)
    assert checkpointed.activations < full.activations / 10  # 24 layers -> inputs + one layer
    assert activations(False, True).activations == full.activations / 2
    assert full.weights == full.grads == full.reference == 4 * QWEN2_5_0_5B.parameters()
    assert full.optimizer == 2 * full.weights


def test_no_reference_model_without_kl_or_with_lora():
    base = estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, True, False, beta=0.04)
    assert base.reference > 0
    assert estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, True, False, beta=0.0).reference == 0
    lora = estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, True, False, 0.04, lora=True)
    assert lora.reference == 0 and lora.optimizer < base.optimizer / 50


def test_too_small_a_card_proposes_lora():
    fitted = make_plan(REAL, gpu_memory_gb=8)

    assert fitted.lora and fitted.fits
    assert "--lora" in fitted.command()
    assert "LoRA" in fitted.render() or "--lora" in fitted.advice


def test_explicit_batch_flags_are_checked_not_replaced():
    chosen = make_plan(
        REAL, {"per_device_train_batch_size": 64, "gradient_accumulation_steps": 1}, 16
    )
    assert (chosen.micro_batch, chosen.accumulation) == (64, 1)
    assert chosen.fits is False
    assert "does NOT fit" in chosen.render()


def test_explicit_no_checkpointing_is_respected():
    chosen = make_plan(REAL, {"gradient_checkpointing": False}, gpu_memory_gb=24, bf16=True)
    assert chosen.gradient_checkpointing is False


def test_steps_per_epoch_and_for_the_learner():
    assert make_plan(REAL).steps == 1868  # 7,473 questions / 4 prompts per step
    assert make_plan(REAL, train_rows=400).steps == 100
    assert make_plan(LEARNER).steps == 250
    assert make_plan(TINY).steps == TINY.grpo["max_steps"]


def test_learner_is_about_an_hour_on_a_24_gb_card():
    learner = make_plan(LEARNER, gpu_memory_gb=24, bf16=True)
    hours = learner.steps * learner.seconds_per_step / 3600
    assert 0.5 <= hours <= 1.25
    assert learner.fits


def test_render_names_every_memory_part_and_labels_estimates():
    text = make_plan(REAL, gpu_memory_gb=16).render()
    for part in ("weights", "grads", "optimizer", "reference", "logits", "activations"):
        assert f"\n  {part}" in text
    assert "estimate" in text.lower() and "Command: python train_grpo.py" in text


def test_card_table_has_a_row_per_card_and_profile():
    table = plan.card_table((REAL, LEARNER))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "GB |" in line]
    assert len(rows) == len(plan.CARDS) * 2
    assert all("`python train_grpo.py" in row for row in rows)
    assert "Estimates" in table


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_has_a_plan(name):
    assert make_plan(PROFILES[name]).steps > 0


def test_plan_module_imports_no_torch():
    code = "import sys, grpo.plan; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    "answer, expected",
    [("15360, 7.5\n", (15360 * 2**20 / GB, False)), ("81559, 9.0\n", (81559 * 2**20 / GB, True))],
)
def test_visible_gpu_reads_nvidia_smi(monkeypatch, answer, expected):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(plan.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(
        plan.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, answer, "")
    )
    assert plan.visible_gpu() == expected


def test_visible_gpu_none_when_hidden_or_absent(monkeypatch):
    monkeypatch.setattr(plan.shutil, "which", lambda name: None)
    assert plan.visible_gpu() is None
    monkeypatch.setattr(plan.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert plan.visible_gpu() is None


def saved_values_per_token(layers: int, shape: plan.ModelShape, tokens: int = 256) -> float:
    """fp32 values autograd keeps for the backward pass of a Qwen2 forward, per token
    (parameters excluded): what the activation estimate claims to count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model = Qwen2ForCausalLM(
        Qwen2Config(
            hidden_size=shape.hidden,
            intermediate_size=shape.intermediate,
            num_hidden_layers=layers,
            num_attention_heads=shape.heads,
            num_key_value_heads=shape.kv_heads,
            vocab_size=shape.vocab,
            attn_implementation="sdpa",
        )  # fmt: skip
    )
    seen, total = {p.data_ptr() for p in model.parameters()}, 0

    def pack(tensor):
        nonlocal total
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.model(input_ids=torch.randint(0, shape.vocab, (2, tokens // 2)))
    return total / tokens


def test_activation_estimate_matches_what_autograd_saves():
    """One decoder layer of Qwen2.5-0.5B's width: the estimate's values per token against
    the tensors autograd really keeps (the difference between 2 layers and 1)."""
    shape = replace(QWEN2_5_0_5B, vocab=1000)
    measured = saved_values_per_token(2, shape) - saved_values_per_token(1, shape)
    estimate = estimate_memory(shape, 1, 1, 100, 156, False, False, 0.0).activations
    per_layer_estimate = estimate / (shape.layers * 256 * 4)
    assert measured == pytest.approx(per_layer_estimate, rel=0.15)


@pytest.mark.parametrize("document", ["README.md", "docs/scaling.md"])
def test_documents_show_the_card_table_the_code_computes(document):
    """The card tables in the documents are pasted from `card_table`: after a change to
    the plan's arithmetic they must be pasted again, or this fails."""
    text = (Path(__file__).resolve().parents[1] / document).read_text(encoding="utf-8")
    assert plan.card_table((REAL, LEARNER)).strip() in text
