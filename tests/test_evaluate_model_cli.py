"""Tests for evaluate_model.py: a LoRA adapter saved by train_grpo.py, the tiny model, bad input.

Everything runs in this process (`main([...])`), which saves the ~10 s that a fresh Python
spends importing torch and transformers. The warm start is the copy shipped in
assets/tiny_qwen2_warm/ (after a recipe change not yet shipped, one built once into the
default cache), so GRPO_CACHE_DIR is left alone.
"""

import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

import evaluate_model
import train_grpo
from grpo.models import describe
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
    base, adapter = evaluate_model.split_adapter(str(lora_run / "final"))
    cpu = torch.device("cpu")
    merged, _, base_path = evaluate_model.load_model(base, adapter, cpu, torch.float32)
    plain = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
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


def test_missing_model_id_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_model.main(
            ["--model", "no/such/model", "--dataset", "toy", "--output-dir", str(tmp_path)]
        )
    # A string code makes Python print it to stderr and exit with status 1.
    assert exit_info.value.code == "evaluate_model.py: error: Model folder not found: no/such/model"
    assert not (tmp_path / "metrics.json").exists()
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"


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
            ["--model", str(adapter), "--dataset", "toy", "--output-dir", str(tmp_path)]
        )
    assert str(gone) in exit_info.value.code
    assert "--adapter" in exit_info.value.code


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


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_backend_without_vllm_says_how_to_get_it(tmp_path):
    with pytest.raises(SystemExit, match="pip install vllm"):
        evaluate_model.main(
            ["--model", "tiny", "--dataset", "toy", "--limit", "2", "--backend", "vllm"]
            + ["--output-dir", str(tmp_path)]
        )


# ---------------------------------------------------------------------------------------------
# The vLLM glue, with a stand-in for vLLM (the real one needs a CUDA GPU)
# ---------------------------------------------------------------------------------------------


class FakeLLM:
    """vllm.LLM's interface, answered by transformers one prompt at a time (no padding)."""

    def __init__(self, model: str, seed: int = 0):
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()

    @torch.no_grad()
    def generate(self, prompts: list[dict], params) -> list:
        results = []
        for prompt in prompts:
            ids = torch.tensor([prompt["prompt_token_ids"]])
            output = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=params.max_tokens,
                do_sample=False,
                eos_token_id=params.stop_token_ids,
                pad_token_id=params.stop_token_ids[0],
            )
            tokens = types.SimpleNamespace(token_ids=output[0, ids.shape[1] :].tolist())
            results.append(types.SimpleNamespace(outputs=[tokens]))
        return results


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "vllm", module)


@pytest.mark.parametrize("with_adapter", [False, True], ids=["full-model", "lora-adapter"])
def test_vllm_backend_scores_like_transformers(fake_vllm, lora_run, tmp_path, with_adapter):
    model = str(lora_run / "final") if with_adapter else "tiny"
    common = ["--model", model, "--dataset", "toy", "--limit", "8", "--max-new-tokens", "24"]
    reference = run_cli(*common, "--batch-size", "4", "--output-dir", str(tmp_path / "hf"))
    via_vllm = run_cli(*common, "--backend", "vllm", "--output-dir", str(tmp_path / "vllm"))
    assert via_vllm["backend"] == "vllm"
    assert read_rows(tmp_path / "vllm") == read_rows(tmp_path / "hf")
    assert {k: via_vllm[k] for k in METRIC_KEYS} == {k: reference[k] for k in METRIC_KEYS}
