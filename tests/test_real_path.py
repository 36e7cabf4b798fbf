"""The real-model path in CI, without the real weights: a stand-in Qwen2.5-0.5B-Instruct.

`qwen_standin_dir` (tests/conftest.py) has Qwen2.5's real tokenizer, chat template,
config (body shrunk to 2 layers of 64) and generation_config.json, so everything but the
weights is the real thing: the real profile's GRPOConfig and trainer, the prompt tokens,
the stop tokens, `train_grpo.py --profile real` and `evaluate_model.py`. The files ship
in assets/, so these run in every clone.

CPU cost: the stand-in keeps Qwen's 151,936-entry vocabulary, and a full real-profile step
(64 completions, every prompt token scored against the whole vocabulary) takes 80-100 s
on a 2-core CPU, so the trainer is built with the real profile but trained, where it is
trained, on 2 completions of 4 tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import data
from grpo import training
from grpo.profiles import LEARNER, REAL

REPO = Path(__file__).resolve().parents[1]
IM_END_ID, ENDOFTEXT_ID = 151645, 151643
SMALL_STEP = dict(
    max_steps=1,
    num_generations=2,
    per_device_train_batch_size=2,
    gradient_accumulation_steps=1,
    max_completion_length=4,
)


@pytest.fixture(scope="module")
def standin(qwen_standin_dir):
    from grpo.models import load_policy

    model, tokenizer, _ = load_policy(qwen_standin_dir, device="cpu", for_training=True)
    return model, tokenizer


@pytest.fixture(scope="module")
def gsm8k_rows():
    return data.load_gsm8k("train", limit=4, source="embedded")


def real_trainer(standin, rows, tmp_path, **overrides):
    model, tokenizer = standin
    config = training.make_config(
        REAL, tmp_path, save_strategy="no", report_to=[], disable_tqdm=True, **overrides
    )
    return training.make_trainer(model, tokenizer, rows, config)


def test_auto_profile_of_a_qwen_folder_is_the_learner_one(qwen_standin_dir):
    path, profile = training.select_policy(str(qwen_standin_dir), "auto")
    assert (path, profile) == (qwen_standin_dir, LEARNER)


def test_real_profile_trainer_arithmetic(standin, gsm8k_rows, tmp_path):
    trainer = real_trainer(standin, gsm8k_rows, tmp_path)
    args = trainer.args

    completions = args.per_device_train_batch_size * args.gradient_accumulation_steps
    assert (completions, args.generation_batch_size) == (64, 64)
    assert completions // args.num_generations == 4  # prompts per optimiser step
    assert args.beta == 0.04 and trainer.ref_model is not None  # the KL term's reference
    assert trainer.ref_model.config.vocab_size == 151_936


def test_real_profile_samples_as_the_profile_says_not_as_the_model_file(
    standin, gsm8k_rows, tmp_path
):
    """Qwen's generation_config.json asks for repetition penalty 1.1 and temperature 0.7;
    GRPO samples at the profile's 0.9 without a penalty, and stops at <|im_end|>."""
    model, _ = standin
    assert model.generation_config.repetition_penalty == 1.1  # what the file asks

    trainer = real_trainer(standin, gsm8k_rows, tmp_path)
    sampling = trainer.generation_config

    assert sampling.temperature == 0.9
    assert sampling.repetition_penalty == 1.0
    assert sampling.max_new_tokens == 200
    assert IM_END_ID in trainer.eos_token_ids
    assert sampling.pad_token_id == ENDOFTEXT_ID != IM_END_ID


def test_trl_prompts_are_qwens_chat_template(standin, gsm8k_rows, tmp_path, monkeypatch):
    """The token ids GRPO generates from are exactly the real tokenizer's chat template."""
    from transformers import AutoTokenizer

    from offline_demo.qwen_standin import QWEN_FILES_DIR

    model, tokenizer = standin
    seen = []
    original = type(model).generate

    def recording_generate(self, *args, **kwargs):
        seen.append((kwargs["input_ids"].clone(), kwargs["attention_mask"].clone()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "generate", recording_generate)
    trainer = real_trainer(standin, gsm8k_rows.select([0]), tmp_path, **SMALL_STEP)
    trainer.train()

    real = AutoTokenizer.from_pretrained(QWEN_FILES_DIR)
    expected = real.apply_chat_template(
        data.build_prompt(gsm8k_rows[0]["question"]),
        add_generation_prompt=True,
        return_dict=False,
    )
    ids, mask = seen[0]
    for row, row_mask in zip(ids, mask, strict=True):
        assert row[row_mask.bool()].tolist() == list(expected)
    assert expected[-3:] == real.encode("<|im_start|>assistant\n", add_special_tokens=False)


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Offline: no hub, an unreachable ModelScope, empty model caches, embedded GSM8K."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env.update(
        MODELSCOPE_ENDPOINT="http://127.0.0.1:9",
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),
        MODELSCOPE_CACHE=str(tmp_path / "ms-cache"),
        GRPO_DATA_SOURCE="embedded",
    )
    env.pop("GRPO_MODEL", None)
    return env


def run_script(tmp_path: Path, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`argv` run offline; `env` replaces settings (GSM8K_DIR instead of the excerpt)."""
    settings = subprocess_env(tmp_path)
    if env:
        settings.pop("GRPO_DATA_SOURCE")
        settings.update(env)
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env=settings,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow  # 9-11 s per case on the 2-core CI machine
@pytest.mark.parametrize("how", [("--model", "real"), ("--profile", "real")])
def test_real_model_unavailable_fails_fast_and_writes_nothing(tmp_path, how, gsm8k_dir):
    """--allow-cpu: past the CPU rule (which refuses earlier still) to the download; the
    full-data check passes (a GSM8K_DIR), so what stops the run is the model."""
    output = tmp_path / "run"
    args = ("--output-dir", str(output), "--allow-cpu", *how)
    result = run_script(tmp_path, "train_grpo.py", *args, env={"GSM8K_DIR": str(gsm8k_dir)})

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Qwen/Qwen2.5-0.5B-Instruct" in result.stderr
    assert "ModelScope" in result.stderr and "Hugging Face" in result.stderr
    assert "tiny" in result.stderr  # a way out
    assert not output.exists()


def test_evaluate_model_on_the_standin(qwen_standin_dir, tmp_path):
    output = tmp_path / "eval"
    result = run_script(
        tmp_path, "evaluate_model.py", "--model", str(qwen_standin_dir), "--limit", "2",
        "--max-new-tokens", "8", "--output-dir", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["num_examples"] == 2, metrics
    assert "embedded excerpt" in metrics["data_source"]
    assert metrics["eval_generation"]["repetition_penalty"] == 1.0  # not the model file's 1.1
    lines = (output / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 2
