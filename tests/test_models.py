"""Tests for grpo.models and offline_demo (cache, tiny_model): building, choosing, loading."""

import json
import shutil
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from trl.chat_template_utils import qwen2_5_chat_template

import data
import netcheck
from grpo import models
from offline_demo import cache, tiny_model
from offline_demo.qwen_standin import QWEN_FILES_DIR

no_cuda_only = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")

SPECIAL_TOKENS = (tiny_model.ENDOFTEXT, tiny_model.IM_START, tiny_model.IM_END)
SEED_QUESTION = (
    "Joy can read 8 pages of a book in 20 minutes. How many hours will it take her to read "
    "120 pages?"
)
SEED_MESSAGES = [
    {"role": "system", "content": data.SYSTEM_PROMPT},
    {"role": "user", "content": SEED_QUESTION},
]
CONVERSATIONS = {
    "system_and_user": SEED_MESSAGES,
    "user_only": [{"role": "user", "content": "What is 2 + 3?"}],
    "multi_turn": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "2 + 3?"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "And times 4?"},
    ],
}


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_dir):
    return models.load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="module")
def real_tokenizer():
    return AutoTokenizer.from_pretrained(QWEN_FILES_DIR)


@pytest.fixture(scope="module")
def real_chat_template() -> str:
    config = json.loads((QWEN_FILES_DIR / "tokenizer_config.json").read_text("utf-8"))
    return config["chat_template"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub, no ModelScope, an empty Hugging Face cache and no GRPO_MODEL."""
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: False)
    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv(models.MODEL_ENV_VAR, raising=False)


def chat_ids(tokenizer, messages, add_generation_prompt=True):
    """The ids of a Qwen chat, assembled piece by piece without the chat template."""

    def encode(text):
        return tokenizer.encode(text, add_special_tokens=False)

    start, end = (
        tokenizer.convert_tokens_to_ids(t) for t in (tiny_model.IM_START, tiny_model.IM_END)
    )
    ids = []
    for message in messages:
        ids += [start] + encode(f"{message['role']}\n{message['content']}") + [end] + encode("\n")
    if add_generation_prompt:
        ids += [start] + encode("assistant\n")
    return ids


# ---------------------------------------------------------------------------------------------
# The tiny tokenizer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_tiny_tokenizer_special_tokens_are_single_ids(tiny_tokenizer, token):
    assert token in tiny_tokenizer.all_special_tokens
    ids = tiny_tokenizer.encode(token, add_special_tokens=False)
    assert ids == [tiny_tokenizer.convert_tokens_to_ids(token)]
    # Inside text too, not only alone.
    assert ids[0] in tiny_tokenizer.encode(f"a{token}b", add_special_tokens=False)


def test_tiny_tokenizer_special_tokens_have_distinct_ids(tiny_tokenizer):
    ids = {tiny_tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    assert len(ids) == 3


def test_tiny_tokenizer_pads_with_endoftext_and_stops_at_im_end(tiny_tokenizer):
    assert tiny_tokenizer.pad_token == tiny_model.ENDOFTEXT
    assert tiny_tokenizer.eos_token == tiny_model.IM_END
    assert tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id


def test_load_tokenizer_pads_on_the_left(tiny_tokenizer):
    assert tiny_tokenizer.padding_side == "left"
    batch = tiny_tokenizer(["a", "a much longer text"], padding=True)
    short_ids, short_mask = batch["input_ids"][0], batch["attention_mask"][0]
    assert short_ids[0] == tiny_tokenizer.pad_token_id and short_mask[0] == 0
    assert short_mask[-1] == 1


@pytest.mark.parametrize(
    "text",
    [
        "Natalia sold clips to 48 of her friends in April.\n#### 72",
        "  leading spaces, tabs\tand\n\nblank lines , before ! punctuation ? 'quoted' don 't  ",
        "鸡兔同笼，共有35个头，94只脚。问鸡兔各几只？",
        "Emoji 🙂🚀, a family 👨‍👩‍👧, a flag 🇨🇳 and 漢字 mixed with ASCII.",
    ],
    ids=["ascii", "whitespace_and_punctuation", "chinese", "emoji"],
)
def test_tiny_tokenizer_round_trip_is_lossless(tiny_tokenizer, text):
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)
    assert not set(ids) & set(tiny_tokenizer.all_special_ids)  # no <unk>-like fallbacks
    assert tiny_tokenizer.decode(ids) == text


def test_tiny_template_adds_qwens_default_system_message(tiny_tokenizer):
    rendered = tiny_tokenizer.apply_chat_template(
        CONVERSATIONS["user_only"], tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        f"<|im_start|>system\n{tiny_model.QWEN_DEFAULT_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_tiny_template_keeps_a_given_system_message(tiny_tokenizer):
    rendered = tiny_tokenizer.apply_chat_template(
        SEED_MESSAGES, tokenize=False, add_generation_prompt=False
    )
    assert tiny_model.QWEN_DEFAULT_SYSTEM not in rendered
    assert rendered == (
        f"<|im_start|>system\n{data.SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{SEED_QUESTION}<|im_end|>\n"
    )


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_tiny_template_renders_like_trls_qwen2_5_template(
    tiny_tokenizer, conversation, add_generation_prompt
):
    """What TRL renders for Qwen2.5 is what the tiny tokenizer renders: the reference that
    is there without the real tokenizer files."""
    messages = CONVERSATIONS[conversation]
    render = dict(tokenize=False, add_generation_prompt=add_generation_prompt)
    trls = tiny_tokenizer.apply_chat_template(
        messages, chat_template=qwen2_5_chat_template, **render
    )
    assert tiny_tokenizer.apply_chat_template(messages, **render) == trls


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_tiny_template_renders_like_the_real_qwen2_5_template(
    tiny_tokenizer, real_chat_template, conversation, add_generation_prompt
):
    messages = CONVERSATIONS[conversation]
    tiny = tiny_tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    real = tiny_tokenizer.apply_chat_template(
        messages,
        chat_template=real_chat_template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    assert tiny == real
    assert real.endswith("<|im_start|>assistant\n") == add_generation_prompt


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_tiny_template_ids_match_the_ids_built_by_hand(tiny_tokenizer, conversation):
    messages = CONVERSATIONS[conversation]
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": tiny_model.QWEN_DEFAULT_SYSTEM}, *messages]
    ids = tiny_tokenizer.apply_chat_template(
        CONVERSATIONS[conversation], tokenize=True, add_generation_prompt=True, return_dict=False
    )
    assert ids == chat_ids(tiny_tokenizer, messages)


# ---------------------------------------------------------------------------------------------
# The real Qwen2.5 tokenizer (the copy in assets/)
# ---------------------------------------------------------------------------------------------


def test_real_tokenizer_pads_and_stops_like_the_tiny_one(real_tokenizer):
    """The tiny model's special tokens are Qwen's own: the same pad and the same stop."""
    assert all(token in real_tokenizer.all_special_tokens for token in SPECIAL_TOKENS)
    assert real_tokenizer.pad_token == tiny_model.ENDOFTEXT
    assert real_tokenizer.eos_token == tiny_model.IM_END


def test_real_template_ids_for_the_seed_example(real_tokenizer):
    def encode(text):
        return real_tokenizer.encode(text, add_special_tokens=False)

    expected = (
        [151644]
        + encode("system\n" + data.SYSTEM_PROMPT)
        + [151645]
        + encode("\n")
        + [151644]
        + encode("user\n" + SEED_QUESTION)
        + [151645]
        + encode("\n")
        + [151644]
        + encode("assistant\n")
    )
    ids = real_tokenizer.apply_chat_template(
        SEED_MESSAGES, tokenize=True, add_generation_prompt=True, return_dict=False
    )
    assert list(ids) == expected


def test_tiny_and_real_templates_agree_on_the_seed_example(tiny_tokenizer, real_tokenizer):
    def render(tokenizer):
        return tokenizer.apply_chat_template(
            SEED_MESSAGES, tokenize=False, add_generation_prompt=True
        )

    assert render(tiny_tokenizer) == render(real_tokenizer)


# ---------------------------------------------------------------------------------------------
# The tiny model cache
# ---------------------------------------------------------------------------------------------


def test_tiny_random_path_builds_on_first_use_only(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV_VAR, str(tmp_path))
    calls = []

    class FakeArtifact:
        def __init__(self, name):
            self.name = name

        def save_pretrained(self, folder):
            (Path(folder) / self.name).write_text(self.name)

    def fake_tokenizer():
        calls.append("tokenizer")
        return FakeArtifact("tokenizer.json")

    monkeypatch.setattr(tiny_model, "build_tiny_tokenizer", fake_tokenizer)
    monkeypatch.setattr(tiny_model, "build_tiny_model", lambda tok: FakeArtifact("model.bin"))
    first = tiny_model.tiny_random_path()
    second = tiny_model.tiny_random_path()
    assert first == second
    assert first.parent == tmp_path
    assert calls == ["tokenizer"]
    assert sorted(p.name for p in first.iterdir()) == ["model.bin", "tokenizer.json"]


def test_tiny_random_path_reuses_the_cache(tiny_cache, monkeypatch):
    first = tiny_model.tiny_random_path()
    stamp = (first / "config.json").stat().st_mtime_ns

    def no_rebuild():
        raise AssertionError("the cached tiny model was rebuilt")

    monkeypatch.setattr(tiny_model, "build_tiny_tokenizer", no_rebuild)
    assert tiny_model.tiny_random_path() == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert first.parent == tiny_cache
    assert list(tiny_cache.iterdir()) == [first]  # no temp folders left behind


def test_tiny_model_is_a_qwen2_that_stops_at_both_end_tokens(tiny_model_dir, tiny_tokenizer):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.model_type == "qwen2"
    assert config.vocab_size == len(tiny_tokenizer)
    generation = GenerationConfig.from_pretrained(tiny_model_dir)
    eos = generation.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    stop_tokens = (tiny_model.IM_END, tiny_model.ENDOFTEXT)
    assert {tiny_tokenizer.convert_tokens_to_ids(t) for t in stop_tokens} <= eos
    assert generation.pad_token_id == tiny_tokenizer.pad_token_id


# ---------------------------------------------------------------------------------------------
# resolve_model
# ---------------------------------------------------------------------------------------------


def test_resolve_tiny_random(tiny_cache, tiny_model_dir):
    assert models.resolve_model("tiny-random") == tiny_model_dir


def test_tiny_names_the_warm_start_not_the_random_model(tiny_cache, warm_start_model):
    """`tiny` is the trained demo model: same shapes as tiny-random, other weights."""
    from safetensors.torch import load_file

    tiny = models.resolve_model("tiny")
    assert models.resolve_model(" TINY ") == tiny != models.resolve_model("tiny-random")
    trained = load_file(tiny / "model.safetensors")
    random_ = load_file(models.resolve_model("tiny-random") / "model.safetensors")
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in random_.items()}
    assert any(not torch.equal(trained[k], random_[k]) for k in trained)


def test_resolve_missing_folder_names_it(tiny_cache):
    with pytest.raises(models.ModelUnavailable, match="no/such/model"):
        models.resolve_model("./no/such/model")


def test_resolve_a_file_instead_of_a_folder_is_an_error(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"")
    with pytest.raises(models.ModelUnavailable, match="model.safetensors"):
        models.resolve_model(str(file))


def test_resolve_an_existing_folder_returns_it(tmp_path):
    assert models.resolve_model(str(tmp_path)) == tmp_path


@pytest.fixture
def fake_warm_start(monkeypatch, tmp_path) -> Path:
    """The demo model's folder without its 3-minute build."""
    folder = tmp_path / "warm"
    folder.mkdir()
    monkeypatch.setattr(models, "warm_start_path", lambda: folder)
    return folder


@pytest.fixture
def no_gpu(monkeypatch):
    import grpo.run_config

    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: None)


@pytest.mark.parametrize("blank", [None, "", " ", "auto"])
def test_auto_without_a_gpu_is_the_demo_model_even_online(
    fake_warm_start, no_gpu, monkeypatch, blank
):
    """The same rule as the command line: no CUDA GPU, no 1 GB download of a model this
    machine cannot train; the real model only when asked for."""
    monkeypatch.setattr(models, "download", lambda model_id: pytest.fail("downloaded"))
    if blank is not None:
        monkeypatch.setenv(models.MODEL_ENV_VAR, blank)
    assert models.resolve_model() == fake_warm_start


def test_asking_for_the_real_model_offline_never_falls_back(offline, fake_warm_start):
    start = time.perf_counter()
    with pytest.raises(models.ModelUnavailable, match="--model tiny"):
        models.resolve_model("real")
    assert time.perf_counter() - start < 5


def test_the_demo_models_are_refused_where_gsm8k_is_trained(fake_warm_start):
    with pytest.raises(models.ModelUnavailable, match="toy task"):
        models.resolve_model("tiny", require_real=True)


def test_auto_on_a_cuda_machine_never_falls_back(offline, fake_warm_start, monkeypatch):
    import grpo.run_config

    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: (24.0, True))
    with pytest.raises(models.ModelUnavailable, match="local folder"):
        models.resolve_model("auto")


def test_a_mistyped_relative_path_is_a_missing_folder_not_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(models.ModelUnavailable, match="runs/mian"):
        models.resolve_model("runs/mian")
    with pytest.raises(models.ModelUnavailable, match="runs/mian/final"):
        models.resolve_model("runs/mian/final")


def test_real_offline_fails_loudly_with_the_way_out(offline, tiny_cache):
    with pytest.raises(models.ModelUnavailable) as raised:
        models.resolve_model("real")
    message = str(raised.value)
    assert models.REAL_MODEL_ID in message
    assert "ModelScope" in message
    assert "Hugging Face hub" in message
    assert "GRPO_MODEL=tiny" in message


def test_model_env_var_is_honoured(offline, tiny_cache, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV_VAR, "tiny-random")
    assert models.resolve_model() == tiny_model_dir
    monkeypatch.setenv(models.MODEL_ENV_VAR, str(tmp_path))
    assert models.resolve_model() == tmp_path
    assert models.resolve_model("tiny-random") == tiny_model_dir  # the argument wins
    monkeypatch.setenv(models.MODEL_ENV_VAR, "./no/such/model")
    with pytest.raises(models.ModelUnavailable, match="no/such/model"):
        models.resolve_model()
    monkeypatch.setenv(models.MODEL_ENV_VAR, "real")
    with pytest.raises(models.ModelUnavailable, match="GRPO_MODEL=tiny"):
        models.resolve_model()


# ---------------------------------------------------------------------------------------------
# Device and dtype
# ---------------------------------------------------------------------------------------------


@no_cuda_only
def test_cuda_request_without_gpu_falls_back_to_cpu(capsys):
    assert models.choose_device("cuda") == torch.device("cpu")
    assert "not available" in capsys.readouterr().out
    assert models.choose_device("cuda:0") == torch.device("cpu")


@no_cuda_only
def test_default_device_is_cpu_without_gpu(capsys):
    assert models.choose_device() == torch.device("cpu")
    assert models.choose_device("cpu") == torch.device("cpu")
    assert capsys.readouterr().out == ""


def test_an_available_device_keeps_its_index(monkeypatch, capsys):
    """The check is by device type: `cuda:1` on a machine with CUDA stays `cuda:1`."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.choose_device("cuda:1") == torch.device("cuda", 1)
    assert models.choose_device("cpu") == torch.device("cpu")
    assert capsys.readouterr().out == ""  # no fallback notice


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_request_without_mps_falls_back_to_cpu(capsys):
    assert models.choose_device("mps") == torch.device("cpu")
    assert "mps" in capsys.readouterr().out


@no_cuda_only
def test_evaluation_dtype_on_cpu_is_float32():
    assert models.load_dtype(torch.device("cpu")) == torch.float32


def test_training_loads_keep_float32_weights_even_where_bf16_is_supported(
    tiny_cache, tiny_model_dir, monkeypatch
):
    """fp32 master weights for training (bf16 is the trainer's autocast); bf16 only for
    evaluation. The GPU's bf16 support is patched in, so this runs on a CPU."""
    monkeypatch.setattr(models, "gpu_supports_bf16", lambda: True)
    cuda = torch.device("cuda")
    assert models.load_dtype(cuda, for_training=True) == torch.float32
    assert models.load_dtype(cuda) == torch.bfloat16

    model, _, _ = models.load_policy("tiny-random", device="cpu", for_training=True)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_load_tiny_model_and_tokenizer_on_cpu(tiny_cache, tiny_model_dir, capsys):
    model, tokenizer, path = models.load_policy("tiny-random", device="cpu")
    assert path == tiny_model_dir
    assert model.device == torch.device("cpu")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.config.model_type == "qwen2"
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == tiny_model.ENDOFTEXT
    out = capsys.readouterr().out
    assert "the embedded tiny-qwen2" in out
    assert str(tiny_cache) not in out  # no machine-specific paths in logs


# ---------------------------------------------------------------------------------------------
# The evaluation loader: a base model or a LoRA adapter, checked before any weight is read
# ---------------------------------------------------------------------------------------------


def test_an_adapter_folder_resolves_to_its_base_and_itself(tiny_cache, tiny_model_dir, tmp_path):
    config = {"base_model_name_or_path": str(tiny_model_dir)}
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))

    resolved = models.resolve_for_evaluation(str(tmp_path))

    assert resolved == models.EvaluationModel(base=tiny_model_dir, adapter=tmp_path)
    assert models.resolve_for_evaluation("tiny-random").adapter is None


@pytest.mark.parametrize("base", [None, "", "  ", 5])
def test_an_adapter_without_a_base_model_is_a_model_problem(tmp_path, base):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    with pytest.raises(models.ModelProblem, match="names no base model.*--adapter"):
        models.resolve_for_evaluation(str(tmp_path))


def test_model_problems_are_user_errors_for_the_command_lines():
    from grpo.cli import is_user_error

    assert is_user_error(models.ModelProblem("x")) and is_user_error(models.ModelUnavailable("x"))
    assert not is_user_error(RuntimeError("a bug"))


@no_cuda_only
def test_evaluation_loads_use_the_evaluation_precision(tiny_cache, monkeypatch, capsys):
    """One rule for every evaluation (train_grpo.py's before/after, evaluate_model.py):
    load_dtype(device, for_training=False); float32 on a CPU. The load says itself once."""
    resolved = models.resolve_for_evaluation("tiny-random")
    model, _, dtype = models.load_for_evaluation(resolved, torch.device("cpu"))
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 1 and said[0].endswith("model on cpu in float32 (for evaluation)."), said
    assert dtype == models.load_dtype(torch.device("cpu"), for_training=False) == torch.float32
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert not model.training


# ---------------------------------------------------------------------------------------------
# The trained model notebook 06 evaluates: a final/ that holds one, metrics.json or not
# ---------------------------------------------------------------------------------------------


def test_a_final_copied_in_without_metrics_json_is_used(tiny_model_dir, tmp_path):
    """Colab's way: final/ copied back from Google Drive, the run's other files not."""
    shutil.copytree(tiny_model_dir, tmp_path / "final")
    assert "no metrics.json" in models.saved_model(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    assert "its metrics.json" in models.saved_model(tmp_path)


def test_a_lora_adapter_in_final_is_a_saved_model_that_loads(tiny_cache, tiny_model_dir, tmp_path):
    """A LoRA run's final/ is an adapter: counted only with its weights, and loaded (on its
    base) by the same load_policy call notebook 06 makes."""
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(base, lora).save_pretrained(tmp_path / "final")
    models.load_tokenizer(tiny_model_dir).save_pretrained(tmp_path / "final")
    assert models.saved_model(tmp_path) is not None
    model, _, _ = models.load_policy(tmp_path / "final", device="cpu")
    assert "default" in model.peft_config  # the adapter, on the tiny base
    (tmp_path / "final" / "adapter_model.safetensors").unlink()
    assert models.saved_model(tmp_path) is None  # adapter_config.json alone holds no weights


def test_a_final_without_weights_is_no_saved_model(tiny_model_dir, tmp_path):
    """An empty final/, or one whose weights a copy left unfinished, is trained again."""
    assert models.saved_model(tmp_path) is None
    (tmp_path / "metrics.json").write_text("{}")
    shutil.copytree(
        tiny_model_dir, tmp_path / "final", ignore=shutil.ignore_patterns("*.safetensors")
    )
    assert models.saved_model(tmp_path) is None
