"""Tests for offline_demo/cache.py: a build or rebuild either completes or leaves the previous
state alone."""

from pathlib import Path

import pytest

from offline_demo import cache


class BuildError(Exception):
    pass


def write(name: str, text: str):
    def build(folder):
        (folder / name).write_text(text)

    return build


def failing(folder):
    (folder / "half.txt").write_text("half a build")
    raise BuildError


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV_VAR, str(tmp_path))
    assert cache.cache_root() == tmp_path


def test_rebuild_replaces_the_whole_folder(tmp_path):
    target = tmp_path / "model"
    cache.build_once(target, write("old.txt", "old"))

    cache.rebuild(target, write("new.txt", "new"))

    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_failed_rebuild_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    cache.build_once(target, write("old.txt", "old"))

    with pytest.raises(BuildError):
        cache.rebuild(target, failing)

    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_rebuild_creates_a_missing_folder(tmp_path):
    target = tmp_path / "assets" / "model"
    cache.rebuild(target, write("a.txt", "a"))
    assert (target / "a.txt").read_text() == "a"


def test_a_tilde_in_the_cache_setting_means_home_not_a_folder_named_tilde(monkeypatch, tmp_path):
    """GRPO_CACHE_DIR='~/x' created a folder literally named `~` in the current folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(cache.CACHE_ENV_VAR, "~/x")
    monkeypatch.chdir(tmp_path)

    cache.build_once(cache.cache_root() / "model", write("a.txt", "built"))

    assert (tmp_path / "home" / "x" / "model" / "a.txt").read_text() == "built"
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize(
    "env", [{cache.CACHE_ENV_VAR: "/proc/nope"}, {"HOME": "/proc", cache.CACHE_ENV_VAR: ""}]
)
def test_an_unwritable_cache_is_a_user_error_naming_the_setting(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(cache.CacheUnwritable, match=f"set {cache.CACHE_ENV_VAR} to a folder"):
        cache.build_once(cache.cache_root() / "model", write("a.txt", "built"))


def test_build_once_builds_once_and_then_reuses(tmp_path):
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "weights.bin").write_text("built")

    target = tmp_path / "nested" / "model"
    assert cache.build_once(target, build) == target
    assert cache.build_once(target, build) == target
    assert len(calls) == 1
    assert calls[0] != target  # built elsewhere, then moved into place
    assert (target / "weights.bin").read_text() == "built"
    assert list(target.parent.iterdir()) == [target]


@pytest.mark.parametrize("error", [ValueError("boom"), FileNotFoundError("missing file")])
def test_failed_build_leaves_no_target_and_no_temp_folder(tmp_path, error):
    def build(folder: Path) -> None:
        (folder / "half-written.bin").write_text("partial")
        raise error

    target = tmp_path / "model"
    with pytest.raises(type(error), match=str(error)):
        cache.build_once(target, build)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []

    # The next run rebuilds instead of loading broken files.
    cache.build_once(target, lambda folder: (folder / "ok").write_text("ok"))
    assert (target / "ok").read_text() == "ok"


def test_build_once_keeps_the_result_of_a_concurrent_builder(tmp_path):
    target = tmp_path / "model"

    def build(folder: Path) -> None:
        (folder / "file").write_text("mine")
        target.mkdir()  # another process finished first
        (target / "file").write_text("theirs")

    assert cache.build_once(target, build) == target
    assert (target / "file").read_text() == "theirs"
    assert list(tmp_path.iterdir()) == [target]
