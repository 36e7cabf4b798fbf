"""The run's settings are resolved once (grpo.run_config): the automatic choice by machine,
`--dry-run` printing exactly the run that the same command starts, and the card fitting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import train_grpo
from grpo import plan

REPO = Path(__file__).resolve().parents[1]
QWEN_CONFIG = REPO / "assets" / "qwen2.5-0.5b-instruct" / "config.json"


@pytest.fixture
def no_gpu(monkeypatch):
    """Resolves as on a machine without a GPU, whatever this one has."""
    monkeypatch.setattr(plan, "visible_gpu", lambda: None)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture
def gpu_24gb(monkeypatch):
    """Resolves as on a machine with a visible 24 GB bf16 GPU (an L4, an A10G)."""
    import grpo.run_config

    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: (24.0, True))
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def resolve(tmp_path, *flags: str):
    return train_grpo.parse_args(["--output-dir", str(tmp_path), *flags])[1]


def refusal(capsys, tmp_path, *flags: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        resolve(tmp_path, *flags)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The automatic choice
# ---------------------------------------------------------------------------------------------


def test_no_gpu_means_the_offline_demo_even_with_network(tmp_path, no_gpu, monkeypatch):
    import netcheck

    monkeypatch.setattr(netcheck, "hub_reachable", lambda: True)  # a download would work
    run = resolve(tmp_path)
    assert (run.model, run.profile.name, run.device) == ("tiny", "tiny", "cpu")
    assert run.plan.steps == 80


def test_a_gpu_means_the_learner_profile_fitted_to_the_card(tmp_path, gpu_24gb):
    run = resolve(tmp_path)
    assert (run.model, run.profile.name, run.device) == ("real", "learner", "cuda")
    assert run.plan.steps == 250 and run.grpo["bf16"] is True
    layout = run.grpo["per_device_train_batch_size"] * run.grpo["gradient_accumulation_steps"]
    assert layout == 64 and run.plan.fits
    assert any("learner" in note for note in run.notes)


def test_the_full_epoch_only_when_asked(tmp_path, gpu_24gb):
    assert resolve(tmp_path, "--profile", "real").plan.steps == 1868


def test_the_real_model_on_a_cpu_is_refused_before_anything_loads(tmp_path, no_gpu, capsys):
    for ask in (["--profile", "learner"], ["--model", "real"], ["--profile", "real"]):
        message = refusal(capsys, tmp_path, *ask)
        assert "494M parameters" in message and "--allow-cpu" in message
    assert resolve(tmp_path, "--profile", "learner", "--allow-cpu").device == "cpu"


def test_a_folder_of_real_size_is_refused_on_a_cpu(tmp_path, no_gpu, capsys):
    """Known from config.json alone: the folder holds no weights at all."""
    config_json = QWEN_CONFIG
    folder = tmp_path / "qwen"
    folder.mkdir()
    shutil.copy(config_json, folder / "config.json")

    message = refusal(capsys, tmp_path / "run", "--model", str(folder), "--profile", "learner")
    assert "--allow-cpu" in message and "494M" in message


def test_dry_run_shows_the_plan_and_disk_of_a_run_this_machine_refuses(tmp_path, no_gpu):
    """--profile learner on a CPU: the plan (disk per checkpoint and peak, in GB) is printed,
    then the refusal the real command would give, with a usage exit status."""
    result = subprocess.run(
        [sys.executable, "train_grpo.py", "--profile", "learner", "--dry-run",
         "--output-dir", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert result.returncode == 2
    assert "one checkpoint 5.94 GB" in result.stdout and "peak 17.8 GB" in result.stdout
    assert "--allow-cpu" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_learner_profile_without_gsm8k_stops_before_writing(tmp_path, qwen_standin_dir):
    """No full GSM8K source (offline, no GSM8K_DIR): seconds, one line, nothing written;
    never the 300-row excerpt under a GSM8K run's name."""
    env = {k: v for k, v in os.environ.items() if k not in ("GSM8K_DIR", "GRPO_DATA_SOURCE")}
    env.update(
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT="http://127.0.0.1:9",
        MODELSCOPE_ENDPOINT="http://127.0.0.1:9",
    )
    output = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "train_grpo.py", "--model", str(qwen_standin_dir), "--profile",
         "learner", "--output-dir", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "GSM8K" in result.stderr and "GSM8K_DIR" in result.stderr
    assert not output.exists()


def test_the_embedded_models_keep_the_toy_profile(tmp_path, gpu_24gb, capsys):
    assert resolve(tmp_path, "--model", "tiny").profile.name == "tiny"
    assert "--profile tiny" in refusal(capsys, tmp_path, "--model", "tiny", "--profile", "learner")


# ---------------------------------------------------------------------------------------------
# Flags and cards
# ---------------------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, no_gpu, capsys):
    output = tmp_path / "run"
    train_grpo.main(["--profile", "real", "--gpu-memory-gb", "16", "--dry-run",
                     "--output-dir", str(output)])  # fmt: skip
    result = capsys.readouterr()

    assert not output.exists()
    assert "4 prompts x 16 completions = 64 completions" in result.out
    assert "-> fits" in result.out and "Estimated time" in result.out


@pytest.mark.parametrize("profile", ["real", "learner"])
def test_a_16_gb_card_gets_a_layout_that_fits(tmp_path, no_gpu, profile):
    run = resolve(tmp_path, "--profile", profile, "--gpu-memory-gb", "16")
    micro = run.grpo["per_device_train_batch_size"]
    accumulation = run.grpo["gradient_accumulation_steps"]
    assert micro * accumulation == 64 and run.plan.fits
    assert run.plan.memory.total <= 16e9 * plan.HEADROOM


def test_a_card_too_small_is_refused_with_the_lora_advice(tmp_path, no_gpu, capsys):
    argv = ["--profile", "real", "--gpu-memory-gb", "8"]
    assert "--lora" in refusal(capsys, tmp_path, *argv)
    assert resolve(tmp_path, *argv, "--lora").plan.fits  # with LoRA it fits


def test_gradient_checkpointing_flag_both_ways(tmp_path, no_gpu):
    assert resolve(tmp_path, "--gradient-checkpointing").grpo["gradient_checkpointing"] is True
    off = resolve(tmp_path, "--gradient-checkpointing", "false")
    assert off.grpo["gradient_checkpointing"] is False


CONFIG_FILE = REPO / "configs" / "learner_lora.yaml"
CONFIG_FILE_AS_FLAGS = (
    "--profile", "learner", "--lora", "--lora-r", "64", "--lora-alpha", "128",
    "--learning-rate", "2e-5", "--save-steps", "50",
)  # fmt: skip


def test_lora_alone_trains_with_the_lora_recipes_rank_and_learning_rate(tmp_path, gpu_24gb):
    """`--lora` used to keep the full fine-tune's 5e-6 and a rank of 16."""
    recipe = resolve(tmp_path, "--config", str(CONFIG_FILE))
    flag = resolve(tmp_path, "--profile", "learner", "--lora")
    assert flag.lora == recipe.lora and flag.lora["r"] == 64
    assert flag.grpo["learning_rate"] == recipe.grpo["learning_rate"] == 2e-5
    assert flag.plan.lora_rank == 64
    chosen = resolve(tmp_path, "--profile", "learner", "--lora", "--learning-rate", "1e-5")
    assert chosen.grpo["learning_rate"] == 1e-5
    assert resolve(tmp_path, "--profile", "learner").grpo["learning_rate"] == 5e-6


def test_a_config_file_resolves_like_the_same_flags(tmp_path, gpu_24gb):
    from_file = resolve(tmp_path, "--config", str(CONFIG_FILE))
    from_flags = resolve(tmp_path, *CONFIG_FILE_AS_FLAGS)

    recipe_aside = {"recipe": None}  # the file names itself, the flags configs/learner.yaml
    assert {**from_file.settings(), **recipe_aside} == {**from_flags.settings(), **recipe_aside}
    assert from_file.lora["r"] == 64 and from_file.grpo["learning_rate"] == 2e-5


def test_the_command_line_wins_over_the_config_file(tmp_path, gpu_24gb):
    run = resolve(tmp_path, "--config", str(CONFIG_FILE), "--learning-rate", "1e-5")

    assert run.grpo["learning_rate"] == 1e-5 and run.lora["r"] == 64


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("extends: tiny.yaml\nlearning_rate: 2.0\n", "--learning-rate: must be greater than 0"),
        ("extends: tiny.yaml\nlora: maybe\n", "lora takes true or false"),
        ("extends: tiny.yaml\nmax_stepz: 3\n", "unrecognized arguments: --max_stepz 3"),
        ("extends: tiny.yaml\nweight_decay: .nan\n", "must be a finite number"),
        ("- profile\n", "expected 'name: value' lines"),
        ("extends: [tiny\n", "(line 2)"),
        ("learning_rate: 1.0e-5\n", "dataset must be one of gsm8k, toy"),
        ("extends: huge.yaml\n", "extends 'huge.yaml', which is neither next to it"),
        ("profile: learner\n", "profile is a command-line choice, not a recipe key"),
        ("extends: tiny.yaml\noverwrite: true\n", "overwrite is a command-line choice"),
        ("extends: tiny.yaml\nbeta: 0.1\nbeta: 0.2\n", "'beta' is given twice"),
        ("a: &x [1, 2]\nb: [*x, *x]\n", "aliases (*name) are not allowed"),
        ("a: " + "[" * 20 + "]" * 20 + "\n", "nested too deeply"),
    ],
)
def test_a_bad_config_file_is_one_line(tmp_path, no_gpu, capsys, text, named):
    config = tmp_path / "run.yaml"
    config.write_text(text)

    err = refusal(capsys, tmp_path / "out", "--config", str(config))

    assert named in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_is_one_line(tmp_path, no_gpu, capsys):
    assert "--config: no recipe file at" in refusal(capsys, tmp_path, "--config", "nowhere.yaml")


def test_gpu_memory_auto_without_a_gpu_is_a_usage_error(tmp_path, no_gpu, capsys):
    assert "no GPU" in refusal(capsys, tmp_path, "--gpu-memory-gb", "auto")


@pytest.mark.parametrize("size, bf16", [("16", False), ("24", True), ("80", True)])
def test_an_explicit_card_size_without_a_gpu_is_planned_like_the_card_table(
    tmp_path, no_gpu, size, bf16
):
    """Planning from a laptop for a rented card: a T4-class 16 GB card has no bf16, the
    larger classes in the README's table do."""
    run = resolve(tmp_path, "--profile", "learner", "--gpu-memory-gb", size)
    assert run.grpo["bf16"] is bf16 and run.device == "cuda"


def test_fp16_is_refused_on_a_card_with_bf16(tmp_path, gpu_24gb, capsys):
    assert "bf16" in refusal(capsys, tmp_path, "--fp16")


def test_fp16_on_a_t4_class_card_replaces_fp32(tmp_path, no_gpu, capsys):
    run = resolve(tmp_path, "--fp16", "--gpu-memory-gb", "16")
    assert (run.grpo["fp16"], run.grpo["bf16"]) == (True, False)
    assert "CUDA GPU" in refusal(capsys, tmp_path, "--fp16")  # none here, none planned


def test_a_batch_that_cannot_form_groups_is_refused_for_every_profile(tmp_path, no_gpu, capsys):
    """The default (tiny) profile too: its plan must never promise a broken batch."""
    assert "not a multiple of --num-generations" in refusal(
        capsys, tmp_path, "--per-device-train-batch-size", "5"
    )


# ---------------------------------------------------------------------------------------------
# --dry-run prints the run that starts
# ---------------------------------------------------------------------------------------------


def dry_run_settings(output: Path, flags: list[str], env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "train_grpo.py", "--output-dir", str(output), *flags, "--dry-run"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout.split("Settings (run.json records these):\n", 1)[1]
    return json.JSONDecoder().raw_decode(text)[0]


def real_run(output: Path, flags: list[str], env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "train_grpo.py", "--output-dir", str(output), *flags],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads((output / "run.json").read_text())


SMALL = [
    "--max-steps",
    "1",
    "--train-size",
    "4",
    "--eval-size",
    "2",
    "--max-completion-length",
    "4",
]
SMALL_REAL = [
    *SMALL, "--num-generations", "2", "--per-device-train-batch-size", "2",
    "--gradient-accumulation-steps", "1",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", ["tiny default", "standin real", "standin lora r64"])
def test_dry_run_equals_the_recorded_run(case, tmp_path, qwen_standin_dir, gsm8k_dir):
    """The dry run's settings are the ones run.json records, and TRL received each of them.
    (The learner profile differs from the real one only in its sizes, as data.)"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GSM8K_DIR": str(gsm8k_dir)}
    env.pop("GRPO_USE_WANDB", None)
    standin = ["--model", str(qwen_standin_dir)]
    # The stand-in never stops, so each of its evaluations generates 512 tokens (about 10 s
    # here): the tiny run evaluates before and after through the same code, and
    # tests/test_real_path.py evaluates the stand-in itself.
    flags = {
        "tiny default": SMALL,
        "standin real": [*standin, "--profile", "real", *SMALL_REAL, "--skip-eval"],
        "standin lora r64": [
            *standin,
            "--lora",
            "--lora-r",
            "64",
            "--lora-alpha",
            "96",
            "--lora-target-modules",
            "q_proj,v_proj",
            *SMALL_REAL,
            "--skip-eval",
        ],  # fmt: skip
    }[case]
    output = tmp_path / "run"

    planned = dry_run_settings(output, flags, env)
    record = real_run(output, flags, env)

    assert record["config"] == planned
    for key, value in planned["grpo"].items():
        assert record["grpo_config"][key] == value, key
    if "lora" in case:
        assert planned["lora"]["r"] == 64
        adapter = json.loads((output / "final" / "adapter_config.json").read_text())
        assert (adapter["r"], adapter["lora_alpha"]) == (64, 96)
        assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["profile"] == planned["profile"] and metrics["steps"] == 1
    assert str(gsm8k_dir) in metrics["data_source"] or planned["dataset"] == "toy"
    if "--skip-eval" not in flags:
        assert metrics["eval_dtype"] == "float32"  # before and after, one precision (CPU)
        assert metrics["num_eval_examples"] == planned["eval_size"]
        assert metrics["param_dtype"] == "float32" and metrics["mixed_precision"] == "no"
        assert metrics["eval_generation"]["do_sample"] is False
        assert metrics["eval_generation"]["repetition_penalty"] == 1.0  # not the file's 1.1
        assert metrics["device"] == "cpu" and all(metrics["versions"].values())


def test_use_vllm_is_colocated_with_its_share_planned(tmp_path, gpu_24gb, monkeypatch, gsm8k_dir):
    """The GRPOConfig wiring TRL needs for vLLM inside the training process, and the plan
    counting vLLM's share of the card; a fake `vllm` module stands in for the real one."""
    import types

    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setenv("GSM8K_DIR", str(gsm8k_dir))
    monkeypatch.setattr(train_grpo.importlib.util, "find_spec", lambda name, *a: object())
    run = resolve(tmp_path, "--use-vllm", "--vllm-gpu-memory-utilization", "0.5", "--lora")

    assert (run.grpo["use_vllm"], run.grpo["vllm_mode"]) == (True, "colocate")
    assert run.grpo["vllm_gpu_memory_utilization"] == 0.5
    assert run.plan.memory.total >= 0.5 * 24e9  # vLLM's half of the card is in the plan
    train_grpo.check_environment(run)  # vLLM importable: no complaint


def test_vllm_settings_without_vllm_are_refused(tmp_path, no_gpu, capsys):
    assert "--use-vllm" in refusal(capsys, tmp_path, "--vllm-gpu-memory-utilization", "0.5")


# ---------------------------------------------------------------------------------------------
# What TRL, the tutorial's limits and the launcher refuse: before any folder is claimed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--generation-batch-size", "7"], "TRL's GRPOConfig refuses these settings"),
        (["--steps-per-generation", "0"], "--steps-per-generation: must be at least 1"),
        (["--warmup-steps", "nan"], "--warmup-steps: must be a finite number"),
        (["--warmup-steps", "-5"], "--warmup-steps: must be at least 0"),
        (["--adam-beta1", "2"], "--adam-beta1: must be at least 0 and at most 1"),
        (["--top-k", "-5"], "--top-k: must be at least 0"),
        (["--min-p", "nan"], "--min-p: must be a finite number"),
        (["--repetition-penalty", "0"], "--repetition-penalty: must be greater than 0"),
        (["--scale-rewards", "bogus"], "--scale-rewards 'bogus': choose from"),
        (["--reward-weights", "1", "2"], "one weight per reward function (5)"),
        (["--reward-weights", "nan", "nan", "nan", "nan", "nan"], "must be a finite number"),
        (["--save-steps", "1.5"], "a ratio below 1 or a whole number of steps"),
        (["--eval-strategy", "steps"], "not supported here"),
        (["--push-to-hub", "true"], "not supported here"),
        (["--weight-decay", "nan"], "--weight-decay: must be a finite number"),
        (["--entropy-coef", "nan"], "--entropy-coef: must be a finite number"),
    ],
)
def test_settings_trl_would_reject_later_are_refused_first(tmp_path, no_gpu, capsys, flags, named):
    err = refusal(capsys, tmp_path / "run", "--model", "tiny", *flags)

    assert named in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT unset"),
        ({"LOCAL_RANK": "abc"}, "LOCAL_RANK='abc' is not a number"),
        ({"LOCAL_RANK": "3"}, "LOCAL_RANK=3 without WORLD_SIZE"),
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, "ACCELERATE_USE_DEEPSPEED is set outside a launch"),
        ({"ACCELERATE_MIXED_PRECISION": "fp16"}, "but this run plans no"),
    ],
)
def test_stray_launcher_variables_are_one_line_in_the_dry_run_as_in_the_run(
    tmp_path, no_gpu, capsys, monkeypatch, env, named
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    for extra in ([], ["--dry-run"]):
        err = refusal(capsys, tmp_path / "run", "--model", "tiny", *extra)
        assert named in err and len(err.strip().splitlines()) == 1, err


def test_a_switch_a_recipe_turns_on_can_be_turned_off(tmp_path, gpu_24gb):
    run = resolve(tmp_path, "--config", str(CONFIG_FILE), "--lora", "false")
    assert run.lora is None
    assert run.grpo["learning_rate"] == 2e-5  # the rest of the recipe still holds


def test_a_recipe_in_another_folder_extends_a_profile_and_its_typed_by_trl(tmp_path, no_gpu):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("extends: tiny.yaml\nlearning_rate: 1e-4\nmax_steps: 5\nseed: 3\n")

    run = resolve(tmp_path / "run", "--config", str(recipe))

    # YAML reads 1e-4 as text; TRL's parser types it as the flag would be
    assert run.grpo["learning_rate"] == 1e-4 and run.grpo["max_steps"] == 5
    assert (run.profile.name, run.seed, run.model) == ("tiny", 3, "tiny")


def test_resolve_run_is_the_command_lines_run(tmp_path, gpu_24gb):
    from grpo.run_config import resolve_run

    in_notebook = resolve_run(tmp_path, profile="learner", lora=True, learning_rate=2e-5)
    on_command_line = resolve(tmp_path, "--profile", "learner", "--lora", "--learning-rate", "2e-5")

    assert in_notebook.settings() == on_command_line.settings()
    layout = (in_notebook.plan.micro_batch, in_notebook.plan.accumulation)  # the card's fit
    grpo = in_notebook.grpo
    assert (grpo["per_device_train_batch_size"], grpo["gradient_accumulation_steps"]) == layout


def test_a_toy_run_records_no_gsm8k_source(tmp_path, no_gpu, monkeypatch):
    """A GSM8K_DIR the toy task never reads must not make --resume refuse a toy run."""
    monkeypatch.setenv("GSM8K_DIR", str(tmp_path))
    assert resolve(tmp_path / "run", "--model", "tiny").settings()["data"] is None


def test_an_adapter_folder_is_no_model_to_train(tmp_path, no_gpu, capsys):
    adapter = tmp_path / "lora" / "final"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "tiny"}')
    err = refusal(capsys, tmp_path / "run", "--model", str(adapter))
    assert "holds a LoRA adapter" in err and len(err.strip().splitlines()) == 1
