"""The choice and order of download sources, and the ways out a refusal names, without any
server: the libraries' download calls are replaced, the rules around them are real."""

from __future__ import annotations

import pytest

import data
import netcheck
from grpo import models


@pytest.fixture(autouse=True)
def no_choice(monkeypatch, tmp_path):
    for name in ("HF_ENDPOINT", models.MODEL_SOURCE_ENV_VAR, *netcheck.OFFLINE_ENV_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def test_modelscope_first_unless_hf_endpoint_or_a_source_is_chosen(monkeypatch):
    assert models.source_order() == ("modelscope", "hub")
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com")
    assert models.source_order() == ("hub", "modelscope")
    monkeypatch.setenv(models.MODEL_SOURCE_ENV_VAR, "ModelScope")
    assert models.source_order() == ("modelscope",)
    assert models.source_order("hub") == ("hub",)  # the flag wins over the variable
    with pytest.raises(models.ModelUnavailable, match="Unknown model source 'hf'"):
        models.source_order("hf")


def failing_sources(monkeypatch) -> list[tuple[str, bool]]:
    """Both sources answer their probe; every cache misses and every download fails."""
    calls: list[tuple[str, bool]] = []

    def snapshot(source, model_id, cached):
        calls.append((source, cached))
        raise OSError(f"{source} says no")

    monkeypatch.setattr(models, "_snapshot", snapshot)
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: True)
    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: True)
    return calls


def test_a_failing_source_gets_one_line_and_the_next_is_tried(monkeypatch, capsys):
    calls = failing_sources(monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(models.ModelUnavailable) as refused:
        models.download("Org/Name")

    assert calls == [("hub", True), ("modelscope", True), ("hub", False), ("modelscope", False)]
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "[models] the Hugging Face hub failed (OSError: hub says no); trying ModelScope."
    ]
    message = str(refused.value)
    assert "OSError: modelscope says no" in message
    assert "hf-mirror.com" not in message  # HF_ENDPOINT already names a mirror
    assert "tiny" in message  # the offline way out


def test_one_chosen_source_names_the_other_as_a_way_out(monkeypatch, capsys):
    calls = failing_sources(monkeypatch)
    with pytest.raises(models.ModelUnavailable) as refused:
        models.download("Org/Name", source="modelscope")

    assert calls == [("modelscope", True), ("modelscope", False)]
    assert capsys.readouterr().out == ""  # no next source to announce
    assert f"{models.MODEL_SOURCE_ENV_VAR}=hub" in str(refused.value)


def test_a_cut_short_snapshot_is_not_a_cache_hit(monkeypatch, tmp_path, capsys):
    """What a dropped connection leaves in ModelScope's cache (which returns the folder
    anyway): small files done, the weights still *.incomplete."""
    folder = tmp_path / "snapshots" / "master"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors.incomplete").write_bytes(b"\0" * 16)
    assert not models.is_complete_download(folder)
    (folder / "model.safetensors.incomplete").rename(folder / "model.safetensors")
    assert models.is_complete_download(folder)
    (folder / "tokenizer.json.incomplete").write_bytes(b"")
    assert not models.is_complete_download(folder)

    monkeypatch.setattr(models, "_snapshot", lambda source, model_id, cached: folder)
    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: True)
    assert models.download("Org/Name", source="modelscope") == folder  # downloaded again
    assert "interrupted download" in capsys.readouterr().out
    assert models.origin(folder).startswith("ModelScope via ")


def test_the_data_refusal_leads_with_the_cached_copy_and_skips_a_set_mirror(monkeypatch, tmp_path):
    assert "HF_HUB_OFFLINE=1" not in data.full_data_ways_out()
    assert "hf-mirror.com" in data.full_data_ways_out()
    snapshot = tmp_path / "hf-home" / "hub" / "datasets--openai--gsm8k" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")

    ways = data.full_data_ways_out()
    assert ways.startswith("The Hugging Face cache holds openai/gsm8k: set HF_HUB_OFFLINE=1")
    assert "hf-mirror.com" not in ways and "HF_ENDPOINT=http://127.0.0.1:9 is set" in ways
