"""Tests for data.py: gold answers, JSONL reading and the GSM8K source fallbacks."""

import json
import time
from itertools import islice
from pathlib import Path

import datasets
import pytest

import data
import netcheck

SHARED_GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k"
needs_shared_gsm8k = pytest.mark.skipif(
    not (SHARED_GSM8K / "train.jsonl").is_file(), reason=f"full GSM8K not found at {SHARED_GSM8K}"
)
EXCERPT_ROWS = 300


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may touch the network: both hubs look unreachable and no source is preset."""
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: False)
    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv(data.SOURCE_ENV_VAR, raising=False)
    monkeypatch.delenv(data.LOCAL_DIR_ENV_VAR, raising=False)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def record(question: str, answer: str) -> str:
    return json.dumps({"question": question, "answer": answer})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She has 3 + 4 = <<3+4=7>>7 apples.\n#### 7", "7"),
        ("#### 1,000", "1000"),
        ("#### 1,234,567", "1234567"),
        ("#### -5", "-5"),
        ("#### 2.5 ", "2.5"),
        ("no marker here", None),
        ("####", None),
        ("####   ", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_extract_hash_answer(text, expected):
    assert data.extract_hash_answer(text) == expected


def test_system_prompt_is_the_widely_used_text():
    assert data.SYSTEM_PROMPT == (
        "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"
    )


def test_build_prompt_is_system_then_user():
    assert data.build_prompt("What is 2 + 2?") == [
        {"role": "system", "content": data.SYSTEM_PROMPT},
        {"role": "user", "content": "What is 2 + 2?"},
    ]


def test_read_jsonl_skips_and_reports_malformed_lines(tmp_path, capsys):
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            record("q1", "a\n#### 1"),  # line 1: good
            "{not json",  # line 2
            "",  # line 3: blank, ignored silently
            "[1, 2]",  # line 4: not an object
            json.dumps({"question": "q5"}),  # line 5: no answer
            json.dumps({"question": 5, "answer": "#### 5"}),  # line 6: question not a string
            record("q7", "a\n#### 7"),  # line 7: good
        ],
    )
    with pytest.warns(UserWarning) as caught:
        records = data.read_jsonl(path)

    assert [r["question"] for r in records] == ["q1", "q7"]
    warning_text = str(caught[0].message)
    for number in (2, 4, 5, 6):
        assert f"line {number}:" in warning_text
    assert "line 3" not in warning_text
    summary = capsys.readouterr().out
    assert "Skipped 4 malformed line(s)" in summary
    assert "lines 2, 4, 5, 6" in summary


def test_read_jsonl_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        data.read_jsonl(missing)


@pytest.mark.parametrize("split", data.SPLITS)
def test_embedded_excerpt_loads_with_all_columns(split, capsys):
    dataset = data.load_gsm8k(split, source="embedded")

    assert len(dataset) == EXCERPT_ROWS
    assert dataset.column_names == ["question", "answer", "solution", "prompt"]
    first = dataset[0]
    assert first["answer"] == data.extract_hash_answer(first["solution"])
    assert first["prompt"] == data.build_prompt(first["question"])
    expected_line = f"GSM8K {split}: 300 rows from the embedded excerpt "
    expected_line += f"(assets/gsm8k_excerpt/{split}.jsonl)"
    assert expected_line in capsys.readouterr().out


def test_limit_keeps_the_first_rows(capsys):
    full = data.load_gsm8k("test", source="embedded")
    limited = data.load_gsm8k("test", source="embedded", limit=5)

    assert limited["question"] == full["question"][:5]
    assert "the first 5 of 300 rows" in capsys.readouterr().out


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(limit):
    with pytest.raises(ValueError, match="limit"):
        data.load_gsm8k("test", source="embedded", limit=limit)


def test_unknown_split_and_source_are_rejected():
    with pytest.raises(ValueError, match="split"):
        data.load_gsm8k("validation")
    with pytest.raises(ValueError, match="source"):
        data.load_gsm8k("test", source="kaggle")


def test_rows_without_gold_answer_are_skipped_and_counted(tmp_path, capsys):
    write_lines(
        tmp_path / "test.jsonl",
        [
            record("q1", "worked\n#### 1"),
            record("q2", "a solution that lost its final line"),
            record("q3", "worked\n#### 3,000"),
        ],
    )
    dataset = data.load_gsm8k("test", source="local", path=tmp_path)

    assert dataset["question"] == ["q1", "q3"]
    assert dataset["answer"] == ["1", "3000"]
    out = capsys.readouterr().out
    assert "skipped 1 row(s) without a '#### <answer>' line" in out
    assert "2 rows from the local file" in out


def test_a_given_path_means_the_local_source(tmp_path, capsys):
    file = write_lines(tmp_path / "my_test.jsonl", [record("q1", "#### 1")])
    dataset = data.load_gsm8k("test", path=file)

    assert dataset["question"] == ["q1"]
    assert "could not use" not in capsys.readouterr().out


def test_source_can_be_chosen_by_environment(monkeypatch, tmp_path):
    write_lines(tmp_path / "train.jsonl", [record("q1", "#### 1")])
    write_lines(tmp_path / "test.jsonl", [record("q2", "#### 2")])
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))
    monkeypatch.setenv(data.SOURCE_ENV_VAR, "local")

    assert data.load_gsm8k("train")["question"] == ["q1"]


def test_auto_mode_offline_falls_back_to_embedded_quickly(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    dataset = data.load_gsm8k("test")
    elapsed = time.perf_counter() - start

    assert elapsed < 5
    assert len(dataset) == EXCERPT_ROWS
    out = capsys.readouterr().out
    assert "could not use hub" in out
    assert "modelscope" in out
    assert f"{data.LOCAL_DIR_ENV_VAR} is not set" in out
    assert "Using embedded instead" in out
    assert "from the embedded excerpt" in out


def test_auto_mode_prefers_gsm8k_dir_over_the_excerpt(monkeypatch, tmp_path, capsys):
    write_lines(tmp_path / "test.jsonl", [record("q1", "#### 1")])
    write_lines(tmp_path / "train.jsonl", [record("q2", "#### 2")])
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))

    assert data.load_gsm8k("test")["question"] == ["q1"]
    assert "Using local instead" in capsys.readouterr().out


def test_named_hub_source_offline_raises_with_the_way_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError) as caught:
        data.load_gsm8k("train", source="hub")

    message = str(caught.value)
    assert "'hub'" in message
    assert "offline mode is on" in message
    assert f"{data.SOURCE_ENV_VAR}=embedded" in message
    assert data.LOCAL_DIR_ENV_VAR in message


def test_named_local_source_without_a_path_raises_with_the_way_out():
    with pytest.raises(RuntimeError, match=f"{data.LOCAL_DIR_ENV_VAR} is not set"):
        data.load_gsm8k("train", source="local")


def test_local_file_without_usable_rows_is_a_failure(tmp_path):
    write_lines(tmp_path / "train.jsonl", [record("q1", "no gold answer")])
    with pytest.raises(RuntimeError, match="no usable rows"):
        data.load_gsm8k("train", source="local", path=tmp_path)


@needs_shared_gsm8k
@pytest.mark.parametrize("split, rows", [("train", 7473), ("test", 1319)])
def test_full_gsm8k_from_the_shared_folder(split, rows):
    dataset = data.load_gsm8k(split, source="local", path=SHARED_GSM8K)

    assert len(dataset) == rows
    assert all(answer for answer in dataset["answer"])


@needs_shared_gsm8k
@pytest.mark.parametrize("split", data.SPLITS)
def test_excerpt_is_the_first_rows_of_gsm8k(split):
    excerpt = (data.EMBEDDED_DIR / f"{split}.jsonl").read_bytes()
    with (SHARED_GSM8K / f"{split}.jsonl").open("rb") as full:
        first_lines = b"".join(islice(full, EXCERPT_ROWS))
    assert excerpt == first_lines


def test_excerpt_ships_its_license():
    license_text = (data.EMBEDDED_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in license_text
    assert "OpenAI" in license_text


def test_modelscope_source_reads_the_main_subset_of_a_downloaded_repo(monkeypatch, tmp_path):
    """ModelScope serves GSM8K as files; the loader must pick the `main` split file."""
    import modelscope

    rows = {"question": ["What is 2 + 3?"], "answer": ["2 + 3 = 5\n#### 5"]}
    (tmp_path / "main").mkdir()
    (tmp_path / "socratic").mkdir()
    datasets.Dataset.from_dict(rows).to_parquet(tmp_path / "main" / "test-00000-of-00001.parquet")
    decoy = {"question": ["decoy"], "answer": ["#### 0"]}
    datasets.Dataset.from_dict(decoy).to_parquet(tmp_path / "socratic" / "test-0.parquet")
    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: True)
    monkeypatch.setattr(modelscope, "snapshot_download", lambda *args, **kwargs: str(tmp_path))

    loaded = data.load_gsm8k("test", source="modelscope")

    assert loaded["question"] == ["What is 2 + 3?"]
    assert loaded["answer"] == ["5"]


def test_modelscope_download_without_the_split_names_the_folder(monkeypatch, tmp_path):
    import modelscope

    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: True)
    monkeypatch.setattr(modelscope, "snapshot_download", lambda *args, **kwargs: str(tmp_path))
    with pytest.raises(RuntimeError, match="no test parquet/jsonl file"):
        data.load_gsm8k("test", source="modelscope")


@pytest.mark.parametrize("source", [None, "local"], ids=["auto", "local"])
@pytest.mark.parametrize("layout", ["one-file", "no-test-split", "missing"])
def test_gsm8k_dir_must_be_a_folder_with_both_splits(monkeypatch, tmp_path, source, layout):
    """One file served as both splits would train on the test questions; a wrong GSM8K_DIR
    is an error, not a reason to fall back quietly to another source."""
    write_lines(tmp_path / "train.jsonl", [record("q1", "#### 1")])
    target = {
        "one-file": tmp_path / "train.jsonl",
        "no-test-split": tmp_path,
        "missing": tmp_path / "nowhere",
    }[layout]
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(target))

    for split in data.SPLITS:
        with pytest.raises(data.DataUnavailable, match=f"{data.LOCAL_DIR_ENV_VAR}=") as caught:
            data.load_gsm8k(split, source=source)
        assert "train.jsonl and test.jsonl" in str(caught.value)


def test_an_explicit_file_path_still_loads_one_split(tmp_path):
    file = write_lines(tmp_path / "mine.jsonl", [record("q1", "#### 1")])

    assert data.load_gsm8k("train", path=file)["question"] == ["q1"]


def offline_sources() -> list[Path]:
    sources = [data.EMBEDDED_DIR]
    return sources + ([SHARED_GSM8K] if (SHARED_GSM8K / "train.jsonl").is_file() else [])


@pytest.mark.parametrize("folder", offline_sources(), ids=lambda folder: folder.name)
def test_no_question_is_in_both_splits(folder):
    """Held-out accuracy means something only if no test question was trained on."""
    questions = {
        split: {row["question"].strip() for row in data.read_jsonl(folder / f"{split}.jsonl")}
        for split in data.SPLITS
    }

    assert questions["train"] and questions["test"]
    assert not questions["train"] & questions["test"]
