"""data.gsm8k_load_arguments: the arguments of the seed's `load_dataset` call, for this machine."""

import json
from pathlib import Path

import datasets
import pytest

import data
import netcheck


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: False)
    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: False)
    monkeypatch.delenv(data.SOURCE_ENV_VAR, raising=False)
    monkeypatch.delenv(data.LOCAL_DIR_ENV_VAR, raising=False)


def test_with_the_hub_reachable_they_are_the_seeds_call(monkeypatch):
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: True)
    assert data.gsm8k_load_arguments() == {"path": "openai/gsm8k", "name": "main"}


def test_offline_the_same_call_reads_the_excerpt_as_load_gsm8k_does(capsys):
    arguments = data.gsm8k_load_arguments()
    assert "unreachable" in capsys.readouterr().out
    loaded = datasets.load_dataset(**arguments)
    assert {split: len(loaded[split]) for split in data.SPLITS} == {"train": 300, "test": 300}
    first = loaded["test"][0]
    expected = data.load_gsm8k("test", limit=1, source="embedded")[0]
    assert data.build_prompt(first["question"]) == expected["prompt"]
    assert data.extract_hash_answer(first["answer"]) == expected["answer"]


def test_a_set_gsm8k_dir_wins_over_a_reachable_hub(monkeypatch, tmp_path: Path):
    row = json.dumps({"question": "1 + 1?", "answer": "1 + 1 = 2\n#### 2"})
    for split in data.SPLITS:
        (tmp_path / f"{split}.jsonl").write_text(row + "\n", encoding="utf-8")
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: True)
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))
    arguments = data.gsm8k_load_arguments()
    assert arguments["data_files"]["test"] == str(tmp_path / "test.jsonl")
    assert datasets.load_dataset(**arguments)["train"]["question"] == ["1 + 1?"]


def test_a_broken_gsm8k_dir_is_an_error_not_the_excerpt(monkeypatch, tmp_path):
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))  # holds neither file
    with pytest.raises(data.DataUnavailable, match="train.jsonl and test.jsonl"):
        data.gsm8k_load_arguments()


def test_modelscope_is_refused_with_the_way_out(monkeypatch):
    monkeypatch.setenv(data.SOURCE_ENV_VAR, "modelscope")
    with pytest.raises(data.DataUnavailable, match="load_gsm8k"):
        data.gsm8k_load_arguments()
