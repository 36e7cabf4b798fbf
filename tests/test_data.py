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


def test_the_system_prompt_asks_for_exactly_what_the_format_rewards_accept():
    """A model that follows the instructions to the letter must earn the format rewards:
    the prompt and the rewards describe one layout."""
    from rewards import soft_format_reward_func, strict_format_reward_func

    instruction, layout = data.SYSTEM_PROMPT.split("\n", 1)
    assert "format" in instruction
    followed = layout.replace("...", "3 + 4 = 7", 1).replace("...", "7", 1)

    assert strict_format_reward_func(None, [followed]) == [0.5]
    assert soft_format_reward_func(None, [followed]) == [0.5]


def test_build_prompt_is_system_then_user():
    assert data.build_prompt("What is 2 + 2?") == [
        {"role": "system", "content": data.SYSTEM_PROMPT},
        {"role": "user", "content": "What is 2 + 2?"},
    ]


BAD_LINES = {
    "not-json": "{not json",
    "not-an-object": "[1, 2]",
    "no-answer": json.dumps({"question": "q"}),
    "question-not-text": json.dumps({"question": 5, "answer": "#### 5"}),
    "no-hash-marker": record("q", "a solution that lost its final line"),
    "nested-100000-deep": "[" * 100_000 + "]" * 100_000,  # was a RecursionError
    "lone-surrogate": '{"question": "q\\ud800", "answer": "#### 1"}',  # UnicodeEncodeError
    "gold-in-words": record("q", "a\n#### seventy-two"),
    "gold-a-dash": record("q", "a\n#### -"),
    "gold-arabic-digits": record("q", "a\n#### \u0667\u0662"),
}


@pytest.mark.parametrize("bad", list(BAD_LINES), ids=list(BAD_LINES))
def test_read_jsonl_rejects_the_file_at_its_first_bad_line(tmp_path, bad):
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [record("q1", "a\n#### 1"), "", BAD_LINES[bad], record("q4", "a\n#### 4")],
    )
    with pytest.raises(ValueError, match=f"^{path}:3: "):
        data.read_jsonl(path)


def test_read_jsonl_rejects_an_undecodable_byte_with_its_line(tmp_path):
    path = tmp_path / "bytes.jsonl"
    lines = [record("q1", "#### 1"), record("q2", "#### 2"), record("q3", "#### 3")]
    path.write_bytes("\n".join(lines[:2]).encode() + b"\n\xff" + lines[2].encode() + b"\n")
    with pytest.raises(ValueError, match=f"^{path}:3: not UTF-8 text"):
        data.read_jsonl(path)


def test_read_jsonl_rejects_an_empty_file(tmp_path):
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(ValueError, match="empty, no GSM8K records"):
        data.read_jsonl(path)


def test_read_jsonl_ignores_blank_lines(tmp_path):
    path = write_lines(
        tmp_path / "ok.jsonl", ["", record("q1", "#### 1"), " ", record("q2", "#### 2")]
    )
    assert [r["question"] for r in data.read_jsonl(path)] == ["q1", "q2"]


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
    with pytest.raises(data.DataUnavailable, match="Unknown GSM8K source 'kaggle'"):
        data.load_gsm8k("test", source="kaggle")


def test_an_unknown_source_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv(data.SOURCE_ENV_VAR, "xyz")
    with pytest.raises(data.DataUnavailable, match=f"{data.SOURCE_ENV_VAR}=xyz; choose one of"):
        data.load_gsm8k("test")


def test_a_local_row_without_gold_answer_names_its_line(tmp_path):
    write_lines(
        tmp_path / "test.jsonl",
        [record("q1", "worked\n#### 1"), record("q2", "a solution that lost its final line")],
    )
    with pytest.raises(data.DataUnavailable, match="test.jsonl:2: the answer has no '####"):
        data.load_gsm8k("test", source="local", path=tmp_path)


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


def test_a_set_gsm8k_dir_is_used_even_when_the_hub_is_reachable(monkeypatch, tmp_path, capsys):
    """The user pointed at a folder on purpose: no probe, no download, its rows."""
    write_lines(tmp_path / "test.jsonl", [record("q1", "#### 1")])
    write_lines(tmp_path / "train.jsonl", [record("q2", "#### 2")])
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))
    monkeypatch.delenv(data.SOURCE_ENV_VAR, raising=False)
    monkeypatch.setattr(netcheck, "hub_reachable", lambda: True)

    assert data.load_gsm8k("test")["question"] == ["q1"]
    assert "could not use" not in capsys.readouterr().out


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


# ---------------------------------------------------------------------------------------------
# No silent downgrade: a broken GSM8K_DIR is an error; the excerpt only where it is allowed
# ---------------------------------------------------------------------------------------------

BROKEN_FILES = {
    "empty": b"",
    "no-answer": (json.dumps({"question": "q"}) + "\n").encode(),
    "no-hash-marker": (record("q", "just text") + "\n").encode(),
    "bad-byte-line-3": (record("a", "#### 1") + "\n" + record("b", "#### 2") + "\n\xff\n").encode(),
}


@pytest.mark.parametrize("broken", list(BROKEN_FILES), ids=list(BROKEN_FILES))
@pytest.mark.parametrize("allow_excerpt", [True, False])
def test_a_broken_gsm8k_dir_is_an_error_never_a_fallback(
    monkeypatch, tmp_path, broken, allow_excerpt
):
    write_lines(tmp_path / "train.jsonl", [record("q1", "#### 1")])
    (tmp_path / "test.jsonl").write_bytes(BROKEN_FILES[broken])
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))
    where = str(tmp_path / "test.jsonl") + (":3" if broken == "bad-byte-line-3" else "")

    with pytest.raises(data.DataUnavailable, match=f"is unusable: {where}"):
        data.check_local_dir()
    for split in data.SPLITS:  # the train file is fine, but the folder is refused for both
        with pytest.raises(data.DataUnavailable, match="is unusable"):
            data.load_gsm8k(split, allow_excerpt=allow_excerpt)


def test_without_the_excerpt_an_offline_machine_gets_the_ways_out(capsys):
    with pytest.raises(data.DataUnavailable) as caught:
        data.load_gsm8k("train", limit=1000, allow_excerpt=False)

    message = str(caught.value)
    assert "Could not load the full GSM8K train: tried hub" in message
    assert "modelscope" in message and "embedded" not in message.split("Ways out")[0]
    for way_out in (data.LOCAL_DIR_ENV_VAR, "HF_ENDPOINT", "network"):
        assert way_out in message
    assert "rows from the embedded excerpt" not in capsys.readouterr().out


def test_without_the_excerpt_the_embedded_source_is_refused(monkeypatch):
    monkeypatch.setenv(data.SOURCE_ENV_VAR, "embedded")
    with pytest.raises(data.DataUnavailable, match="GRPO_DATA_SOURCE=embedded asks for the 300"):
        data.load_gsm8k("train", allow_excerpt=False)
    with pytest.raises(data.DataUnavailable, match="GRPO_DATA_SOURCE=embedded asks for the 300"):
        data.check_full_gsm8k_available()


def test_without_the_excerpt_a_valid_gsm8k_dir_is_used(monkeypatch, tmp_path):
    write_lines(tmp_path / "train.jsonl", [record("q1", "#### 1")])
    write_lines(tmp_path / "test.jsonl", [record("q2", "#### 2")])
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))

    data.check_full_gsm8k_available()
    assert data.load_gsm8k("test", allow_excerpt=False)["question"] == ["q2"]


def test_the_full_data_preflight_refuses_only_when_no_source_can_answer(monkeypatch):
    with pytest.raises(data.DataUnavailable, match="no source of it answers") as caught:
        data.check_full_gsm8k_available()
    assert "HF_ENDPOINT" in str(caught.value)

    monkeypatch.setattr(netcheck, "modelscope_reachable", lambda: True)
    data.check_full_gsm8k_available()  # ModelScope may have it: the loader decides


def test_a_bug_in_a_source_is_not_reported_as_missing_data(monkeypatch):
    """Only the errors of a failing source (network, files, content) mean "unavailable";
    a programming error surfaces as itself."""

    def broken(split):
        raise TypeError("a bug")

    monkeypatch.setattr(data, "_records_from_embedded", broken)
    with pytest.raises(TypeError, match="a bug"):
        data.load_gsm8k("test")
    with pytest.raises(TypeError, match="a bug"):
        data.load_gsm8k("test", source="embedded")


def test_a_gsm8k_dir_whose_splits_share_questions_is_refused(monkeypatch, tmp_path):
    """Identical train and test files exited 0: the overlap showed only in metrics.json."""
    lines = [record("q1", "a\n#### 1"), record("q2", "a\n#### 2")]
    write_lines(tmp_path / "train.jsonl", lines)
    write_lines(tmp_path / "test.jsonl", lines[1:])
    monkeypatch.setenv(data.LOCAL_DIR_ENV_VAR, str(tmp_path))

    with pytest.raises(data.DataUnavailable, match="1 question.s. are in both train.jsonl"):
        data.check_local_dir()
