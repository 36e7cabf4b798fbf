"""Tests for evaluate_model.py: a LoRA adapter saved by train_grpo.py, the tiny model, bad input.

Everything runs in this process (`main([...])`), which saves the ~10 s that a fresh Python
spends importing torch and transformers. The warm start is the copy shipped in
assets/tiny_qwen2_warm/ (after a recipe change not yet shipped, one built once into the
default cache), so GRPO_CACHE_DIR is left alone.
"""

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

import evaluate_model
import train_grpo
from grpo import artifacts, models
from grpo.models import describe
from grpo.run_dir import RunDir
from offline_demo.warm_start import warm_start_path

pytestmark = pytest.mark.usefixtures("warm_start_model", "one_torch_thread")

LIMIT = 16
METRIC_KEYS = {"accuracy", "strict_format", "soft_format", "mean_tokens", "num_examples"}
ROW_KEYS = {"question", "answer", "completion", "num_tokens", "correct"}
ROW_KEYS |= {"strict_format", "soft_format"}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """Two GRPO steps with LoRA on the tiny profile (8 completions = 1 prompt per step)."""
    output_dir = tmp_path_factory.mktemp("lora-run")
    train_grpo.main(
        ["--model", "tiny", "--output-dir", str(output_dir), "--lora", "--max-steps", "2"]
        + ["--skip-eval", "--train-size", "64", "--per-device-train-batch-size", "8"]
        + ["--num-generations", "8", "--max-completion-length", "16"]
    )
    return output_dir


def run_cli(*args: str) -> dict:
    """`evaluate_model.main` with the given arguments; returns the metrics.json it wrote."""
    returned = evaluate_model.main(list(args))
    output_dir = args[args.index("--output-dir") + 1]
    with open(f"{output_dir}/metrics.json", encoding="utf-8") as file:
        written = json.load(file)
    assert written == returned
    return written


def read_rows(output_dir) -> list[dict]:
    lines = (output_dir / "completions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# ---------------------------------------------------------------------------------------------
# LoRA: train_grpo.py --lora saves an adapter, evaluate_model.py finds its base and merges it
# ---------------------------------------------------------------------------------------------


def test_lora_run_saves_an_adapter_not_a_full_model(lora_run):
    final = lora_run / "final"
    assert (final / "adapter_config.json").is_file()
    assert (final / "adapter_model.safetensors").is_file()
    assert not (final / "model.safetensors").exists()
    config = json.loads((final / "adapter_config.json").read_text(encoding="utf-8"))
    assert Path(config["base_model_name_or_path"]) == warm_start_path()


def test_evaluate_a_lora_adapter(lora_run, tmp_path):
    final = lora_run / "final"
    metrics = run_cli(
        "--model", str(final), "--dataset", "toy", "--limit", str(LIMIT),
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert metrics.keys() >= METRIC_KEYS
    assert metrics["num_examples"] == LIMIT
    assert metrics["adapter"] == str(final)
    assert metrics["base_model"] == describe(warm_start_path())
    assert metrics["max_new_tokens"] == 48  # the tiny profile's default for the toy task
    rows = read_rows(tmp_path)
    assert len(rows) == LIMIT
    assert all(row.keys() == ROW_KEYS for row in rows)
    assert metrics["accuracy"] == sum(row["correct"] for row in rows) / LIMIT


def test_adapter_is_merged_into_the_base_weights(lora_run):
    resolved = models.resolve_for_evaluation(str(lora_run / "final"))
    merged, _, dtype = models.load_for_evaluation(resolved, torch.device("cpu"))
    plain = AutoModelForCausalLM.from_pretrained(resolved.base, dtype=torch.float32)
    assert resolved.adapter == lora_run / "final"
    assert dtype == torch.float32  # on a CPU
    assert not isinstance(merged, PeftModel)
    assert not any("lora" in name for name in merged.state_dict())
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[name], plain.state_dict()[name])


def test_adapter_flag_applies_an_adapter_to_an_explicit_base(lora_run, tmp_path):
    base = json.loads((lora_run / "final" / "adapter_config.json").read_text())
    metrics = run_cli(
        "--model", base["base_model_name_or_path"], "--adapter", str(lora_run / "final"),
        "--dataset", "toy", "--limit", "4", "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert metrics["adapter"] == str(lora_run / "final")
    assert metrics["num_examples"] == 4


# ---------------------------------------------------------------------------------------------
# A plain model
# ---------------------------------------------------------------------------------------------


def test_evaluate_the_tiny_model(tmp_path):
    metrics = run_cli(
        "--model", "tiny", "--dataset", "toy", "--limit", "8", "--max-new-tokens", "16",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert metrics["adapter"] is None
    assert metrics["base_model"] == describe(warm_start_path())  # tiny means the warm start
    assert metrics["num_examples"] == 8
    assert len(read_rows(tmp_path)) == 8
    assert 1 <= metrics["mean_tokens"] <= 16


def test_toy_test_split_is_what_train_grpo_evaluates_on():
    from grpo.profiles import TINY
    from grpo.training import load_datasets

    _, held_out = load_datasets(TINY, eval_size=5)
    questions = evaluate_model.load_questions("toy", "test", limit=5)["question"]
    assert list(questions) == list(held_out["question"])


# ---------------------------------------------------------------------------------------------
# Bad input: clear messages, non-zero exits
# ---------------------------------------------------------------------------------------------


def test_missing_model_path_names_the_path(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", str(missing), "--dataset", "toy", "--output-dir", str(tmp_path / "out")]
        )
    assert exit_info.value.code == 2  # refused with the arguments, before anything loads
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_nested_missing_folder_is_refused_with_the_arguments(tmp_path, capsys):
    """One rule for "is this a path" (grpo.model_names.looks_like_path): more than one '/'
    is a folder, never a hub id."""
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", "no/such/model", "--dataset", "toy", "--output-dir", str(tmp_path)]
        )
    assert exit_info.value.code == 2
    assert "model folder not found: no/such/model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_with_results_is_replaced_only_with_overwrite(tmp_path):
    args = ["--model", "tiny", "--dataset", "toy", "--limit", "2", "--max-new-tokens", "4"]
    first = run_cli(*args, "--output-dir", str(tmp_path))
    before = (tmp_path / "metrics.json").read_bytes()

    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main([*args, "--limit", "3", "--output-dir", str(tmp_path)])
    assert "--overwrite" in exit_info.value.code
    assert (tmp_path / "metrics.json").read_bytes() == before

    again = run_cli(*args, "--limit", "3", "--output-dir", str(tmp_path), "--overwrite")
    assert (first["num_examples"], again["num_examples"]) == (2, 3)


def test_adapter_with_a_missing_base_suggests_the_adapter_flag(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    gone = tmp_path / "base-from-another-machine"
    config = {"base_model_name_or_path": str(gone)}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", str(adapter), "--dataset", "toy", "--output-dir", str(tmp_path / "out")]
        )
    assert str(gone) in exit_info.value.code
    assert "--adapter" in exit_info.value.code
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_adapter_flag_needs_an_adapter_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", "tiny", "--adapter", str(tmp_path), "--output-dir", str(tmp_path)]
        )
    assert exit_info.value.code == 2
    assert "adapter_config.json" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--limit", "--batch-size", "--max-new-tokens"])
def test_zero_is_refused(flag, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.parse_args(["--model", "tiny", "--output-dir", str(tmp_path), flag, "0"])
    assert exit_info.value.code == 2  # argparse's usage error


# ---------------------------------------------------------------------------------------------
# A folder belongs to the command that made it
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_an_interrupted_training_folder_is_never_taken_over(tmp_path, overwrite):
    """Evaluating into a training run's folder used to mark it complete/evaluate_model.py,
    after which `--resume` refused it and only --overwrite (deleting the checkpoints) freed it."""
    outputs = ("metrics.json", "final", "checkpoints")
    with pytest.raises(KeyboardInterrupt), RunDir(tmp_path, outputs, {}, owner="train_grpo.py"):
        (tmp_path / "checkpoints" / "checkpoint-5").mkdir(parents=True)
        raise KeyboardInterrupt
    record = (tmp_path / "run.json").read_bytes()

    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", "tiny", "--dataset", "toy", "--limit", "2", "--output-dir", str(tmp_path)]
            + overwrite
        )

    assert "holds a run of train_grpo.py" in exit_info.value.code
    assert (tmp_path / "run.json").read_bytes() == record
    assert (tmp_path / "checkpoints" / "checkpoint-5").is_dir()


def test_a_folder_that_no_run_made_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", "tiny", "--dataset", "toy", "--limit", "2", "--overwrite"]
            + ["--output-dir", str(tmp_path)]
        )
    assert "holds no run.json" in exit_info.value.code
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------------------------------------
# Every user error is one line, non-zero, with nothing written
# ---------------------------------------------------------------------------------------------


def fails_with(capsys, *args: str) -> str:
    """The one line `evaluate_model.main(args)` exits with (status 1 or 2)."""
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(list(args))
    code = exit_info.value.code
    message = code if isinstance(code, str) else capsys.readouterr().err.strip()
    assert code in (2,) or isinstance(code, str), code
    assert "\n" not in message and "Traceback" not in message
    return message


def test_more_toy_questions_than_exist_are_refused_at_once(tmp_path, capsys):
    message = fails_with(
        capsys, "--model", "tiny", "--dataset", "toy", "--limit", "20000",
        "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert "holds 15,360 distinct held-out questions, got 20,000" in message
    assert not (tmp_path / "out").exists()


def test_an_empty_output_dir_is_refused(capsys):
    message = fails_with(capsys, "--model", "tiny", "--dataset", "toy", "--output-dir", "")
    assert "--output-dir" in message and "empty" in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GRPO_DATA_SOURCE", "xyz", "Unknown GSM8K GRPO_DATA_SOURCE=xyz"),
        ("WANDB_BASE_URL", "http://[::1", "WANDB_BASE_URL='http://[::1' is not a URL"),
        ("HF_ENDPOINT", "https://host:99999", "HF_ENDPOINT='https://host:99999' is not a URL"),
    ],
)
def test_a_bad_setting_is_one_line_before_anything_is_written(
    tmp_path, capsys, monkeypatch, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    message = fails_with(
        capsys, "--model", "tiny", "--limit", "3", "--output-dir", str(tmp_path / "out")
    )
    assert expected in message
    assert not (tmp_path / "out").exists()


def test_a_cache_folder_that_is_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "cache").write_text("x")
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    message = fails_with(
        capsys, "--model", "tiny-random", "--dataset", "toy", "--output-dir", str(tmp_path / "o")
    )
    assert f"GRPO_CACHE_DIR={tmp_path / 'cache'} is a file" in message


def copy_model(source: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(source, target))


def broken_models(tmp_path: Path, lora_final: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (--model/--adapter arguments, what the one line must say)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    truncated = copy_model(warm_start_path(), tmp_path / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    bad_config = copy_model(warm_start_path(), tmp_path / "bad-config")
    (bad_config / "config.json").write_text("{not json")
    run_folder = tmp_path / "run"
    (run_folder / "final").mkdir(parents=True)
    (run_folder / "run.json").write_text("{}")
    cut_adapter = copy_model(lora_final, tmp_path / "cut-adapter")
    adapter_weights = cut_adapter / "adapter_model.safetensors"
    adapter_weights.write_bytes(adapter_weights.read_bytes()[:100])
    no_base = copy_model(lora_final, tmp_path / "no-base")
    config = json.loads((no_base / "adapter_config.json").read_text())
    (no_base / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": None})
    )
    return {
        "empty-folder": (["--model", str(empty)], "holds no model (no config.json)"),
        "truncated-weights": (["--model", str(truncated)], "does not load: SafetensorError"),
        "bad-config": (["--model", str(bad_config)], "config.json is unreadable"),
        "run-folder": (["--model", str(run_folder)], f"pass its model, {run_folder / 'final'}"),
        "truncated-adapter": (["--model", str(cut_adapter)], "the adapter in"),
        "adapter-as-base": (
            ["--model", str(lora_final), "--adapter", str(lora_final)],
            "is a LoRA adapter, not a base model",
        ),
        "adapter-without-base": (["--model", str(no_base)], "names no base model"),
    }


BROKEN = [
    "empty-folder", "truncated-weights", "bad-config", "run-folder", "truncated-adapter",
    "adapter-as-base", "adapter-without-base",
]  # fmt: skip


@pytest.mark.parametrize("broken", BROKEN)
def test_a_model_that_cannot_be_used_is_one_line(lora_run, tmp_path, capsys, broken):
    arguments, expected = broken_models(tmp_path, lora_run / "final")[broken]
    message = fails_with(
        capsys, *arguments, "--dataset", "toy", "--limit", "2", "--output-dir", str(tmp_path / "o")
    )
    assert message.startswith("evaluate_model.py: error: ")
    assert expected in message
    assert not (tmp_path / "o").exists()  # nothing written


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(artifacts, "write_jsonl", full)
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", "tiny", "--dataset", "toy", "--limit", "2", "--max-new-tokens", "4"]
            + ["--output-dir", str(tmp_path)]
        )
    assert exit_info.value.code.startswith("evaluate_model.py: error: the disk is full")
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"


def test_ctrl_c_is_a_clean_line(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_model, "load_questions", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(["--model", "tiny", "--dataset", "toy", "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "evaluate_model.py: interrupted (Ctrl-C)\n"


def test_a_limit_beyond_the_split_says_what_was_evaluated(tmp_path, monkeypatch, capsys):
    """--split train --limit 5000 silently evaluated the 2,000 questions there were."""
    gsm8k = tmp_path / "gsm8k"
    gsm8k.mkdir()
    for split, count in (("train", 3), ("test", 1)):
        rows = [{"question": f"{split} {i}?", "answer": f"#### {i}"} for i in range(count)]
        (gsm8k / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("GSM8K_DIR", str(gsm8k))

    metrics = evaluate_model.main(
        ["--model", "tiny", "--split", "train", "--limit", "5000", "--max-new-tokens", "2"]
        + ["--output-dir", str(tmp_path / "out")]
    )

    assert "--limit 5,000: the gsm8k train split holds 3 questions here" in capsys.readouterr().out
    assert metrics["num_examples"] == 3


def test_an_endpoint_that_is_no_url_is_one_line_before_anything_imports(monkeypatch):
    """huggingface_hub fails on HF_ENDPOINT='http://[::1' at import: the check comes first."""
    monkeypatch.setenv("HF_ENDPOINT", "http://[::1")
    with pytest.raises(SystemExit, match=r"HF_ENDPOINT='http://\[::1' is not a URL"):
        evaluate_model.main(["--model", "tiny", "--dataset", "toy", "--limit", "2"])
