"""Tests for grpo.plan: the shape copy, the memory arithmetic and fitting a card."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grpo import plan
from grpo.plan import GB, HEADROOM, QWEN2_5_0_5B, estimate_memory, make_plan
from grpo.profiles import LEARNER, PROFILES, REAL, TINY

REPO = Path(__file__).resolve().parents[1]
REAL_CONFIG = REPO / "assets" / "qwen2.5-0.5b-instruct" / "config.json"


def test_shape_from_qwens_config_json_is_the_shipped_copy_and_counts_like_transformers():
    """Read before any weight loads; the count is what transformers builds from the file."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = plan.ModelShape.from_config(REAL_CONFIG)
    assert replace(shape, name=QWEN2_5_0_5B.name) == QWEN2_5_0_5B
    assert plan.ModelShape.from_config(REAL_CONFIG.parent) == shape  # the folder works too
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(REAL_CONFIG.parent))
    assert shape.parameters() == sum(p.numel() for p in model.parameters()) == 494_032_768


@pytest.mark.parametrize(
    "content, words",
    [(None, "cannot read"), ("{not json", "cannot read"), ('{"hidden_size": 64}', "not a Qwen2")],
)
def test_an_unreadable_config_is_one_value_error(tmp_path, content, words):
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content)
    with pytest.raises(ValueError, match=words) as error:
        plan.ModelShape.from_config(config)
    assert "\n" not in str(error.value)


def test_a_given_shape_replaces_the_profiles_model():
    small = plan.ModelShape("small", 64, 2, 1000, 160, heads=4, kv_heads=2, tied_embeddings=True)
    planned = make_plan(REAL, shape=small)
    assert planned.shape == small
    assert planned.memory.weights == 4 * small.parameters()
    assert planned.disk.checkpoint < make_plan(REAL).disk.checkpoint / 50


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


def test_a_bigger_card_never_gets_a_slower_layout():
    """Checkpointing, once off, stays off on bigger cards; with the same checkpointing the
    micro-batch never shrinks."""
    plans = [make_plan(REAL, gpu_memory_gb=gb, bf16=True) for gb in (24, 40, 80)]
    checkpointing = [p.gradient_checkpointing for p in plans]
    assert checkpointing == sorted(checkpointing, reverse=True)
    for small, big in zip(plans, plans[1:], strict=False):
        if small.gradient_checkpointing == big.gradient_checkpointing:
            assert small.micro_batch <= big.micro_batch
    assert plans[-1].micro_batch == 64 and not plans[-1].gradient_checkpointing


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
def test_memory_grows_with_the_micro_batch(checkpointing, bf16):
    totals = [
        estimate_memory(QWEN2_5_0_5B, b, 64, 200, 140, checkpointing, bf16, beta=0.04).total
        for b in (1, 2, 4, 8, 16, 32, 64)
    ]
    assert totals == sorted(totals) and totals[0] < totals[-1]


def test_checkpointing_and_autocast_change_only_what_they_should():
    def memory(checkpointing, autocast=False):
        return estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, checkpointing, autocast, 0.04)

    full, checkpointed = memory(False), memory(True)
    assert checkpointed.activations < full.activations / 10  # 24 layers -> inputs + one layer
    bf16 = memory(False, autocast=True)
    assert full.activations / 2 < bf16.activations < full.activations  # 2.47 B, not 2 or 4
    assert full.weight_copies == 0 < bf16.weight_copies
    for name in ("weights", "grads", "optimizer", "reference", "head_grad"):
        assert getattr(bf16, name) == getattr(full, name)  # fp32 whatever the autocast
    assert full.weights == full.grads == full.reference == 4 * QWEN2_5_0_5B.parameters()
    assert full.optimizer == 2 * full.weights


def test_no_reference_model_without_kl_or_with_lora():
    base = estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, True, False, beta=0.04)
    assert base.reference > 0
    assert estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, True, False, beta=0.0).reference == 0
    lora = estimate_memory(QWEN2_5_0_5B, 16, 64, 200, 140, True, False, 0.04, lora_rank=16)
    assert lora.reference == 0 and lora.optimizer < base.optimizer / 50
    assert lora.head_grad == 0 < base.head_grad  # the frozen head gets no gradient


def test_too_small_a_card_proposes_lora():
    fitted = make_plan(REAL, gpu_memory_gb=8)

    assert fitted.lora and fitted.fits
    assert "--lora" in fitted.command()


def test_the_lora_rank_reaches_the_memory_the_text_and_the_flags():
    """`--lora --lora-r 16` used to be planned and printed as the default rank."""
    planned = make_plan(REAL, lora=True, lora_rank=16)
    assert planned.memory.grads == 4 * plan.lora_parameters(QWEN2_5_0_5B, 16)
    assert 4 * planned.memory.grads == make_plan(REAL, lora=True).memory.grads  # rank 64
    assert "LoRA r=16" in planned.render()
    assert planned.flags[-2:] == ("--lora-r", "16")


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


@pytest.mark.parametrize(
    "overrides, rows, words",
    [
        ({"num_generations": 128}, None, "not a multiple of --num-generations 128"),
        ({"per_device_train_batch_size": 3}, None, "= 12 completions per step, not a multiple"),
        ({"per_device_train_batch_size": 5}, None, "= 20 completions per step, not a multiple"),
        ({"num_generations": 1}, None, "at least 2 completions"),
        ({"gradient_accumulation_steps": 0}, None, "must be at least 1"),
        ({}, 3, "one step needs 4 training prompts"),
    ],
)
@pytest.mark.parametrize("gpu_gb", [None, 24])
def test_a_batch_that_cannot_make_a_step_is_one_line_not_a_crash(overrides, rows, words, gpu_gb):
    """D10: these raised ZeroDivisionError (or planned 20 completions as '1 prompt x 16')."""
    with pytest.raises(ValueError, match=words) as error:
        make_plan(REAL, overrides, gpu_gb, train_rows=rows)
    assert "\n" not in str(error.value)


def test_bf16_and_fp16_together_are_refused():
    with pytest.raises(ValueError, match="exclude each other"):
        make_plan(REAL, bf16=True, fp16=True)


def test_the_time_line_shows_its_own_arithmetic():
    """The printed hours are the printed steps x seconds, for every precision and profile."""
    for profile in (REAL, LEARNER, TINY):
        for kwargs in ({}, {"bf16": True}, {"fp16": True}):
            planned = make_plan(profile, **kwargs)
            line = next(x for x in planned.render().splitlines() if x.startswith("Estimated time"))
            steps, seconds, hours = re.fullmatch(
                r"Estimated time: ([\d,]+) steps x ([\d.]+) s = ([\d.]+) h \(.+\)", line
            ).groups()
            expected = int(steps.replace(",", "")) * float(seconds) / 3600
            assert float(hours) == pytest.approx(expected, abs=0.05)


def test_unmeasured_speed_ups_are_not_claimed():
    """fp16 on a T4 and vLLM were never timed: neither makes a run look shorter."""
    fp32, fp16 = (
        make_plan(LEARNER, gpu_memory_gb=16),
        make_plan(LEARNER, gpu_memory_gb=16, fp16=True),
    )
    vllm = make_plan(LEARNER, gpu_memory_gb=24, bf16=True, use_vllm=True)
    assert fp16.hours >= fp32.hours
    assert vllm.hours >= make_plan(LEARNER, gpu_memory_gb=24, bf16=True).hours
    assert "--fp16" in fp16.flags and "--use-vllm" in vllm.flags


def test_vllm_takes_its_share_of_the_card_and_replaces_hf_generation():
    layout = {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 4}
    alone = make_plan(REAL, layout, 16)
    shared = make_plan(REAL, layout, 16, use_vllm=True, vllm_gpu_memory_utilization=0.3)
    assert shared.memory.vllm == pytest.approx(0.3 * 16 * GB)
    assert shared.memory.generation == 0 < alone.memory.generation
    assert alone.fits and not shared.fits  # ~13 + 4.8 GB does not fit a T4's 13.6 GB budget
    assert "--use-vllm" in shared.flags
    with pytest.raises(ValueError, match="not in"):
        make_plan(REAL, use_vllm=True, vllm_gpu_memory_utilization=1.5)
    no_card = make_plan(REAL, use_vllm=True)  # the share is unknown, HF generation still off
    assert no_card.memory.generation == 0 and "is not counted" in no_card.render()


def test_vllm_requirement_names_one_release_trl_accepts():
    """The pin is one exact release inside the range TRL 1.16's import check accepts."""
    from packaging.version import Version
    from trl import import_utils

    name, version = plan.VLLM_REQUIREMENT.split("==")
    assert name == "vllm"
    source = Path(import_utils.__file__).read_text()
    low, high = re.search(
        r'Version\("([\d.]+)"\) <= _vllm_base_version <= Version\("([\d.]+)"\)', source
    ).groups()
    assert Version(low) <= Version(version) <= Version(high)


def test_render_names_every_nonzero_memory_part_and_labels_estimates():
    text = make_plan(LEARNER, gpu_memory_gb=24, bf16=True).render()
    for part in ("weights", "grads", "optimizer", "reference", "weight_copies", "head_grad"):
        assert f"\n  {part}" in text
    assert "\n  vllm" not in text  # zero parts are left out
    assert "Command: python train_grpo.py" in text
    assert re.search(r"Estimated disk: one checkpoint 5\.9\d GB", text)


def card_rows(table: str) -> list[str]:
    return [line for line in table.splitlines() if line.startswith("| ") and " GB | " in line]


def test_every_card_table_row_fits_its_card_and_its_command_plans_the_same_run():
    """Each row's estimate stays under its own budget, and the command printed in the row,
    given back to the plan as flags, gives that row's layout and memory again."""
    plans = list(plan.card_plans((REAL, LEARNER)))
    assert len(card_rows(plan.card_table((REAL, LEARNER)))) == len(plans)
    for _, card_gb, planned, _ in plans:
        assert planned.fits and planned.memory.total <= card_gb * GB * HEADROOM
        flags = dict(zip(planned.flags[::2], planned.flags[1::2], strict=False))
        again = make_plan(
            PROFILES[planned.profile],
            {
                "per_device_train_batch_size": int(flags["--per-device-train-batch-size"]),
                "gradient_accumulation_steps": int(flags["--gradient-accumulation-steps"]),
                "gradient_checkpointing": planned.gradient_checkpointing,
            },
            card_gb, bf16=planned.bf16, fp16="--fp16" in planned.flags,
        )  # fmt: skip
        assert again.memory.total == planned.memory.total and again.fits


@pytest.mark.parametrize("document", ["README.md", "docs/scaling.md"])
def test_the_documents_card_tables_are_the_planners(document):
    """The tables are pasted from card_table: a change of the planner (LoRA's rank, say)
    must reach them."""
    text = (Path(__file__).resolve().parents[1] / document).read_text()
    assert card_rows(text) == card_rows(plan.card_table((REAL, LEARNER)))


def test_the_t4_has_an_fp16_row_and_vllm_does_not_fit_its_full_fine_tune():
    rows = card_rows(plan.card_table((REAL, LEARNER)))
    t4 = [row for row in rows if row.startswith("| 16 GB")]
    assert {"fp32", "fp16 autocast"} <= {row.split(" | ")[2] for row in t4}
    assert all("full fine-tune: no" in row or "| no:" in row for row in t4)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_has_prompts_for_every_step(name):
    """A planned step never lacks prompts: steps x prompts per step fit the training rows
    x epochs, and one row fewer than a step needs is refused."""
    profile = PROFILES[name]
    planned = make_plan(profile)
    grpo = profile.grpo
    if grpo.get("max_steps", -1) <= 0:
        assert (
            planned.steps * planned.prompts_per_step
            <= planned.train_rows * grpo["num_train_epochs"]
        )
    with pytest.raises(ValueError, match="one step needs"):
        make_plan(profile, train_rows=planned.prompts_per_step - 1)


def test_disk_peak_is_the_rotation_or_the_end_whichever_is_larger():
    ckpt = plan.estimate_disk(QWEN2_5_0_5B, 250, 50, 2)
    assert ckpt.saves == 5
    assert ckpt.peak == 3 * ckpt.checkpoint  # limit 2 + the new one before the oldest goes
    assert 5.9 * GB < ckpt.checkpoint < 5.95 * GB  # measured: 1.98 + 3.95 GB of a real one
    every = plan.estimate_disk(QWEN2_5_0_5B, 250, 50, None)  # no limit: all are kept
    assert every.peak == 5 * ckpt.checkpoint + ckpt.final
    one = plan.estimate_disk(QWEN2_5_0_5B, 250, 50, 1)
    assert one.peak == 2 * one.checkpoint
    short = plan.estimate_disk(QWEN2_5_0_5B, 30, 50, 2)  # saved only at the last step
    assert short.saves == 1 and short.peak == short.checkpoint + short.final
    lora = plan.estimate_disk(QWEN2_5_0_5B, 250, 50, 2, lora_rank=16)
    assert lora.peak < ckpt.peak / 40


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


@pytest.mark.parametrize(
    "answer",
    ["0, 8.0", "-1024, 8.0", "nan, 8.0", "inf, 8.0", "1e300, 8.0", "[N/A], 8.0", "24576, nan",
     "24576, 0", "24576", "", "24576, 8.0, 1"],
)  # fmt: skip
def test_an_nvidia_smi_answer_no_gpu_gives_is_not_trusted(monkeypatch, answer):
    """Planning from a nonsense size would fit any batch to it: one line instead, which the
    run's resolution turns into its usage error."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(plan.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(
        plan.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, answer, "")
    )
    with pytest.raises(ValueError, match="nvidia-smi") as error:
        plan.visible_gpu()
    assert "\n" not in str(error.value)

    from grpo.cli import ConfigError
    from grpo.run_config import detect_hardware

    with pytest.raises(ConfigError, match="nvidia-smi"):
        detect_hardware("24")


def test_visible_gpu_none_when_hidden_absent_or_failing(monkeypatch):
    monkeypatch.setattr(plan.shutil, "which", lambda name: None)
    assert plan.visible_gpu() is None
    monkeypatch.setattr(plan.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    failed = subprocess.CompletedProcess([], 9, "NVIDIA-SMI has failed: no driver", "")
    monkeypatch.setattr(plan.subprocess, "run", lambda *a, **k: failed)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert plan.visible_gpu() is None  # a machine without a driver runs the CPU demo
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert plan.visible_gpu() is None


@pytest.mark.parametrize(
    "capability, bf16", [((7, 0), False), ((7, 5), False), ((8, 0), True), ((8, 9), True),
                         ((9, 0), True), ((12, 0), True)],
)  # fmt: skip
def test_one_bf16_rule_for_nvidia_smi_torch_and_the_planned_card(monkeypatch, capability, bf16):
    """The plan (nvidia-smi's compute capability), the loader (torch's) and a card planned
    by size alone decide bf16 by `has_bf16`, so training's autocast and evaluation's dtype
    agree on every card: V100 7.0 and T4 7.5 have none, Ampere (8.0) and newer have it."""
    import torch

    from grpo import models
    from grpo.run_config import detect_hardware

    answer = f"16384, {capability[0]}.{capability[1]}"
    monkeypatch.setattr(plan.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(
        plan.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, answer, "")
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect_hardware().bf16 is bf16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    assert models.gpu_supports_bf16() is bf16
    expected_dtype = torch.bfloat16 if bf16 else torch.float32
    assert models.load_dtype(torch.device("cuda")) == expected_dtype
    # No GPU seen here: a card planned by its memory is taken for its class in the table.
    monkeypatch.setattr(plan.shutil, "which", lambda name: None)
    assert [detect_hardware(str(gb)).bf16 for gb in (8, 16, 24, 80)] == [False, False, True, True]
    assert [plan.has_bf16(memory_gb=gb) for _, gb in plan.CARDS] == [False, True, True, True]


def saved_bytes(layers: int, shape: plan.ModelShape, tokens: int, autocast=None) -> tuple[int, int]:
    """(values, bytes) autograd keeps for the backward pass of a Qwen2 forward, parameters
    excluded, optionally under CPU autocast to `autocast`: what the estimate claims to count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
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
    seen, values, total = {p.data_ptr() for p in model.parameters()}, 0, 0

    def pack(tensor):
        nonlocal values, total
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            values += tensor.numel()
            total += tensor.numel() * tensor.element_size()
        return tensor

    ids = torch.randint(0, shape.vocab, (2, tokens // 2))
    enabled = autocast is not None
    with (
        torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=enabled),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
    ):
        model.model(input_ids=ids)
    return values, total


def per_layer(shape: plan.ModelShape, autocast=None) -> tuple[float, float]:
    """(bytes per token, bytes per layer independent of tokens) of one decoder layer: the
    differences between 2 layers and 1, at 256 and at 128 tokens."""
    kept = {(n, t): saved_bytes(n, shape, t, autocast)[1] for n in (1, 2) for t in (128, 256)}
    layer = {t: kept[2, t] - kept[1, t] for t in (128, 256)}
    per_token = (layer[256] - layer[128]) / 128
    return per_token, layer[256] - 256 * per_token


def test_activation_estimate_matches_what_autograd_saves():
    """One decoder layer of Qwen2.5-0.5B's width in fp32: the estimate's values per token
    against the tensors autograd really keeps (the difference between 2 layers and 1)."""
    shape = replace(QWEN2_5_0_5B, vocab=1000)
    measured = saved_bytes(2, shape, 256)[0] - saved_bytes(1, shape, 256)[0]
    estimate = estimate_memory(shape, 1, 1, 100, 156, False, False, 0.0).activations
    per_layer_estimate = estimate / (shape.layers * 256 * 4)
    assert measured / 256 == pytest.approx(per_layer_estimate, rel=0.15)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_activation_and_weight_copy_estimates_match_autograd(dtype):
    """Under 16-bit autocast (CPU): per token, the bytes one layer keeps (2.47 B per fp32
    value, not 2); per layer, the 16-bit copies of its weight matrices."""
    import torch

    shape = replace(QWEN2_5_0_5B, vocab=1000)
    per_token, fixed = per_layer(shape, getattr(torch, dtype))
    memory = estimate_memory(shape, 1, 1, 100, 156, False, True, 0.0)
    assert per_token == pytest.approx(memory.activations / (shape.layers * 256), rel=0.02)
    assert fixed == memory.weight_copies / shape.layers


def test_the_fused_lm_head_backward_allocates_what_the_plan_adds():
    """TRL's fused LM head under bf16 autocast: its backward allocates a full fp32
    [vocab, hidden] weight gradient (head_grad) and a 16-bit logit tile (logits / 2)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    shape = plan.ModelShape("head", 64, 1, 5000, 128, heads=4, kv_heads=2, tied_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=5000,
                    tie_word_embeddings=True)
    )  # fmt: skip
    add_fused_lm_head(model)
    ids = torch.randint(0, shape.vocab, (2, 32))  # 2 x 31 scored positions on a CPU
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as trace:
        loss.backward()
    allocated = {(e.name, e.cpu_memory_usage) for e in trace.events()}
    memory = estimate_memory(shape, 2, 2, 31, 1, False, True, 0.0)
    assert ("aten::zeros", memory.head_grad) in allocated
    assert ("aten::empty", memory.logits / 2) in allocated


@pytest.mark.slow
def test_disk_estimate_matches_a_checkpoint_really_written(qwen_standin_dir, tmp_path, monkeypatch):
    """One GRPO step of the Qwen2.5 stand-in saved by the Trainer: the bytes on disk of
    checkpoint-1 and of final/ against the plan's arithmetic for the shape in its config.json."""
    import torch

    import data
    from grpo import training
    from grpo.models import load_policy

    monkeypatch.setenv("GRPO_DATA_SOURCE", "embedded")
    torch.set_num_threads(1)
    config = training.make_config(
        REAL, tmp_path / "run", max_steps=1, save_steps=1, report_to=[], disable_tqdm=True,
        per_device_train_batch_size=2, gradient_accumulation_steps=1, num_generations=2,
        max_completion_length=4,
    )  # fmt: skip
    model, tokenizer, _ = load_policy(qwen_standin_dir, device=config.device, for_training=True)
    trainer = training.make_trainer(model, tokenizer, data.load_gsm8k("train", limit=2), config)
    trainer.train()
    trainer.save_model(str(tmp_path / "run" / "final"))

    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())

    disk = plan.estimate_disk(plan.ModelShape.from_config(qwen_standin_dir), 1, 1, 2)
    assert size(tmp_path / "run" / "checkpoint-1") == pytest.approx(disk.checkpoint, rel=0.02)
    assert size(tmp_path / "run" / "final") == pytest.approx(disk.final, rel=0.02)
