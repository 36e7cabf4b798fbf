"""Which model a cell that only looks at a model loads (grpo.models.choose_inference_model):
Qwen2.5-0.5B-Instruct whenever a source has it, on any device; the tiny model only when none
does. Training's rule (no CUDA GPU: the demo) must stay as it is."""

import time
from pathlib import Path

import huggingface_hub
import pytest
import torch

import netcheck
from grpo import models

QWEN_FILES = Path(__file__).resolve().parents[1] / "assets" / "qwen2.5-0.5b-instruct"


@pytest.fixture
def cpu_only_offline(monkeypatch, tmp_path):
    """A laptop without a GPU or network: empty caches, unreachable hosts, no GRPO_MODEL."""
    import grpo.run_config

    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: False)
    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: False)
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv(models.MODEL_ENV_VAR, raising=False)
    warm = tmp_path / "warm"
    warm.mkdir()
    monkeypatch.setattr(models, "warm_start_path", lambda: warm)
    return warm


def fake_hub_download(monkeypatch, folder: Path) -> list[str]:
    """The hub answers: snapshot_download returns `folder` unless limited to the cache."""
    calls: list[str] = []

    def snapshot_download(model_id, local_files_only=False, **kwargs):
        if local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        calls.append(model_id)
        return str(folder)

    monkeypatch.setattr(netcheck, "hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_with_the_hub_reachable_a_cpu_machine_looks_at_qwen(cpu_only_offline, monkeypatch):
    downloads = fake_hub_download(monkeypatch, QWEN_FILES)
    choice = models.choose_inference_model()
    assert (choice.path, choice.device, choice.dtype) == (
        QWEN_FILES,
        torch.device("cpu"),
        torch.float32,
    )
    assert downloads == [models.REAL_MODEL_ID]
    # Training keeps its rule: on the same machine, the command line's choice is the demo.
    assert models.resolve_model() == cpu_only_offline


def test_a_copy_in_the_hugging_face_cache_is_used_offline(cpu_only_offline, tmp_path):
    repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / "models--Qwen--Qwen2.5-0.5B-Instruct"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    (snapshot / "model.safetensors").write_bytes(b"")  # a complete download has weights
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd", encoding="utf-8")
    assert models.choose_inference_model().path == snapshot


def test_without_any_source_the_tiny_model_loads_with_the_reason(cpu_only_offline, capsys):
    start = time.perf_counter()
    choice = models.choose_inference_model()
    assert time.perf_counter() - start < 5  # probes, no network retries
    assert choice.path == cpu_only_offline
    lines = capsys.readouterr().out.strip().splitlines()
    # one line per source given up on (grpo.models.download), then the choice and its reason
    assert len(lines) <= len(models.source_order()) and lines[-1].startswith("[models] ")
    assert "unreachable" in lines[-1] and models.MODEL_ENV_VAR in lines[-1]  # why, what to do


def test_a_named_model_is_resolved_without_download(cpu_only_offline, tiny_cache, monkeypatch):
    monkeypatch.setattr(models, "download", lambda model_id: pytest.fail("downloaded"))
    monkeypatch.setenv(models.MODEL_ENV_VAR, "tiny")
    assert models.choose_inference_model().path == cpu_only_offline
    with pytest.raises(models.ModelUnavailable):
        models.choose_inference_model("./no/such/folder")


@pytest.mark.parametrize(
    "cuda, bf16, mps, device, dtype",
    [
        (True, True, False, "cuda", torch.bfloat16),
        (True, False, False, "cuda", torch.float32),  # a T4 only emulates bf16
        (False, False, True, "mps", torch.float32),
        (False, False, False, "cpu", torch.float32),
    ],
)
def test_device_and_dtype_follow_the_machine(
    cpu_only_offline, monkeypatch, cuda, bf16, mps, device, dtype
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    capability = (8, 0) if bf16 else (7, 5)  # an A100 / a T4 (grpo.plan.has_bf16's rule)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    choice = models.choose_inference_model()
    assert (choice.device, choice.dtype) == (torch.device(device), dtype)
