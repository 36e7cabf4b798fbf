"""Tests for artifacts.py: complete files or the previous version, never a half-written one."""

import json
import os
import stat

import matplotlib
import pytest

from grpo import artifacts

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PREVIOUS = {"step": 1, "accuracy": 0.25}


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def test_write_json_round_trips_and_keeps_non_ascii(tmp_path):
    data = {"question": "鸡兔同笼 🐔", "accuracy": 0.5, "rows": [1, 2, 3], "ok": True, "x": None}
    path = artifacts.write_json(tmp_path / "metrics.json", data)
    assert path == tmp_path / "metrics.json"
    text = path.read_text("utf-8")
    assert "鸡兔同笼 🐔" in text  # readable, not \\u escapes
    assert text.endswith("}\n")
    assert json.loads(text) == data
    assert list(json.loads(text)) == list(data)  # key order kept
    assert names(tmp_path) == ["metrics.json"]


def test_write_json_accepts_a_string_path_and_creates_folders(tmp_path):
    path = artifacts.write_json(str(tmp_path / "runs" / "seed-0" / "metrics.json"), [1, 2])
    assert json.loads(path.read_text("utf-8")) == [1, 2]


def test_write_json_replaces_the_previous_version(tmp_path):
    path = tmp_path / "metrics.json"
    artifacts.write_json(path, PREVIOUS)
    artifacts.write_json(path, {"step": 2})
    assert json.loads(path.read_text("utf-8")) == {"step": 2}
    assert names(tmp_path) == ["metrics.json"]


def test_write_jsonl_writes_one_object_per_line(tmp_path):
    rows = [{"completion": "<answer>\n72\n</answer>", "reward": 2.0}, {"completion": "答案 🙂"}]
    path = artifacts.write_jsonl(tmp_path / "log.jsonl", (row for row in rows))
    lines = path.read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert "答案 🙂" in lines[1]


def test_write_jsonl_of_no_rows_is_an_empty_file(tmp_path):
    path = artifacts.write_jsonl(tmp_path / "log.jsonl", [])
    assert path.read_bytes() == b""


def test_failed_write_json_keeps_the_previous_file(tmp_path):
    path = artifacts.write_json(tmp_path / "metrics.json", PREVIOUS)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="not JSON serializable"):
        artifacts.write_json(path, {"step": 2, "model": object()})
    assert path.read_bytes() == before
    assert names(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize("error", [RuntimeError("generation crashed"), KeyboardInterrupt()])
def test_failed_write_jsonl_keeps_the_previous_file(tmp_path, error):
    path = artifacts.write_jsonl(tmp_path / "log.jsonl", [{"row": 0}])
    before = path.read_bytes()

    def rows():
        for index in range(1000):  # enough to reach the disk before the failure
            yield {"row": index, "text": "x" * 100}
        raise error

    with pytest.raises(type(error)):
        artifacts.write_jsonl(path, rows())
    assert path.read_bytes() == before
    assert names(tmp_path) == ["log.jsonl"]


def test_failed_first_write_leaves_no_file(tmp_path):
    with pytest.raises(TypeError):
        artifacts.write_json(tmp_path / "metrics.json", {1, 2})  # a set is not JSON
    assert names(tmp_path) == []


def test_save_figure_writes_a_png(tmp_path):
    figure, axes = plt.subplots()
    axes.plot([0, 1, 2], [0.1, 0.4, 0.3])
    try:
        path = artifacts.save_figure(figure, tmp_path / "plots" / "reward.png")
    finally:
        plt.close(figure)
    content = path.read_bytes()
    assert content.startswith(PNG_MAGIC)
    assert len(content) > 1000
    assert names(path.parent) == ["reward.png"]


def test_failed_save_figure_keeps_the_previous_png(tmp_path):
    figure, _ = plt.subplots()
    try:
        path = artifacts.save_figure(figure, tmp_path / "reward.png")
    finally:
        plt.close(figure)
    before = path.read_bytes()

    class BrokenFigure:
        def savefig(self, handle, **kwargs):
            handle.write(b"\x89PNG partial")
            raise ValueError("renderer failed")

    with pytest.raises(ValueError, match="renderer failed"):
        artifacts.save_figure(BrokenFigure(), path)
    assert path.read_bytes() == before
    assert names(tmp_path) == ["reward.png"]


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = artifacts.write_json(tmp_path / "metrics.json", PREVIOUS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
