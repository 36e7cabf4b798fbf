"""Tests for grpo/run_dir.py: one run per folder, a manifest first and a completion mark last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpo import run_dir
from grpo.cli import NothingToDo, UserError, run_main
from grpo.run_dir import RunDir

OUTPUTS = ("metrics.json", "final", "checkpoints")
SETTINGS = {"model": "tiny", "seed": 0, "grpo": {"max_steps": 3}}


def record(folder: Path) -> dict:
    return json.loads((folder / run_dir.RUN_FILE).read_text())


def finished_run(folder: Path) -> Path:
    with RunDir(folder, OUTPUTS, SETTINGS) as claimed:
        (folder / "metrics.json").write_text('{"accuracy": 0.5}\n')
        (folder / "final").mkdir()
        (folder / "final" / "model.safetensors").write_bytes(b"weights")
        claimed.finish()
    return folder


def test_manifest_is_written_first_and_completion_last(tmp_path):
    with RunDir(tmp_path, OUTPUTS, SETTINGS) as claimed:
        during = record(tmp_path)
        claimed.finish()
    after = record(tmp_path)

    assert during["status"] == "running"
    assert during["settings"] == SETTINGS
    assert during["pid"] == os.getpid()
    assert after["status"] == "complete"


@pytest.mark.parametrize(
    ("error", "status"), [(ValueError("bad"), "failed"), (KeyboardInterrupt(), "interrupted")]
)
def test_a_run_that_ends_without_finishing_is_marked(tmp_path, error, status):
    with pytest.raises(type(error)), RunDir(tmp_path, OUTPUTS, SETTINGS):
        raise error

    assert record(tmp_path)["status"] == status


def test_a_finished_run_is_not_reused_and_stays_intact(tmp_path):
    finished_run(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    with pytest.raises(UserError, match="already holds a run .status: complete") as caught:
        RunDir(tmp_path, OUTPUTS, SETTINGS)

    assert "--resume" in str(caught.value) and "--overwrite" in str(caught.value)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_overwrite_removes_the_old_outputs_but_nothing_else(tmp_path):
    finished_run(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")

    with RunDir(tmp_path, OUTPUTS, SETTINGS, overwrite=True):
        assert not (tmp_path / "metrics.json").exists()
        assert not (tmp_path / "final").exists()
        assert record(tmp_path)["status"] == "running"
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failed_run_that_wrote_no_outputs_does_not_block_the_folder(tmp_path):
    with pytest.raises(ValueError), RunDir(tmp_path, OUTPUTS, SETTINGS):
        raise ValueError("model not found")

    with RunDir(tmp_path, OUTPUTS, SETTINGS) as claimed:
        claimed.finish()


def interrupted_run(folder: Path, owner: str | None = None) -> Path:
    """A run stopped by Ctrl-C after writing a checkpoint and some results."""
    with pytest.raises(KeyboardInterrupt), RunDir(folder, OUTPUTS, SETTINGS, owner=owner):
        (folder / "checkpoints" / "checkpoint-5").mkdir(parents=True)
        (folder / "metrics.json").write_text('{"accuracy": 0.5}\n')
        raise KeyboardInterrupt
    return folder


def test_resume_removes_nothing_up_front_and_counts_attempts(tmp_path):
    interrupted_run(tmp_path)
    before = digests(tmp_path)

    with RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True, keep=("checkpoints",)):
        assert (tmp_path / "checkpoints" / "checkpoint-5").is_dir()
        assert (tmp_path / "metrics.json").read_bytes() == before["metrics.json"]
        assert record(tmp_path)["attempts"] == 2
        assert record(tmp_path)["status"] == "running"  # the old results are not trusted yet


def test_resuming_a_complete_run_changes_nothing(tmp_path):
    finished_run(tmp_path)
    before = digests(tmp_path)

    with pytest.raises(NothingToDo, match="complete run: nothing to resume"):
        RunDir.preflight(tmp_path, OUTPUTS, SETTINGS, resume=True)
    with pytest.raises(NothingToDo):
        RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True, keep=("checkpoints",))

    assert digests(tmp_path) == before


def test_run_main_says_nothing_to_do_once_and_exits_zero(tmp_path, capsys):
    finished_run(tmp_path)

    def resume():
        RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True)

    assert run_main("train_grpo.py", resume) is None
    assert capsys.readouterr().out.startswith(f"train_grpo.py: {tmp_path} holds a complete run")


def test_resume_refuses_a_run_with_other_settings(tmp_path):
    finished_run(tmp_path)
    other = {**SETTINGS, "seed": 1}

    with pytest.raises(UserError, match="seed: 0 there, 1 here"):
        RunDir(tmp_path, OUTPUTS, other, resume=True)
    assert (tmp_path / "metrics.json").exists()


def test_resume_refuses_a_folder_without_a_manifest(tmp_path):
    (tmp_path / "checkpoints").mkdir()

    with pytest.raises(UserError, match="no run.json"):
        RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True)


def test_wall_time_adds_up_over_resumed_attempts(tmp_path):
    with RunDir(tmp_path, OUTPUTS, SETTINGS):
        pass
    killed = {**record(tmp_path), "status": "running", "wall_time_s": 100.0}  # as SIGKILL left it
    (tmp_path / run_dir.RUN_FILE).write_text(json.dumps(killed))
    with RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True) as second:
        assert 100.0 <= second.wall_time_s() < 200.0
        second.finish()
    assert record(tmp_path)["wall_time_s"] >= 100.0


def test_resolved_model_must_match_on_resume(tmp_path):
    with RunDir(tmp_path, OUTPUTS, SETTINGS) as first:
        first.check_resolved({"model_folder": "tiny"}, resume=False)
    second = RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True)
    with second, pytest.raises(UserError, match="model_folder: 'tiny' there, 'Qwen' here"):
        second.check_resolved({"model_folder": "Qwen"}, resume=True)


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    with RunDir(tmp_path, OUTPUTS, SETTINGS):
        pass  # SIGKILL leaves run.json behind, and temp files:
    stale = tmp_path / ".metrics.json.k3j9x.tmp"
    stale.write_text('{"half')
    keep = tmp_path / "notes.tmp"  # not hidden: not ours
    keep.write_text("mine")

    with RunDir(tmp_path, OUTPUTS, SETTINGS):
        pass

    assert not stale.exists()
    assert keep.exists()


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path, hold_folder):
    holder = hold_folder(tmp_path)
    with pytest.raises(UserError, match=f"in use by another run .pid {holder.pid}"):
        RunDir(tmp_path, ("metrics.json",), {})
    assert record(tmp_path)["pid"] == holder.pid  # the holder's manifest is untouched
    holder.kill()
    holder.wait()
    # The kernel dropped the dead holder's lock: the same command can take the folder over.
    owner = record(tmp_path)["owner"]
    with RunDir(tmp_path, ("metrics.json",), {}, owner=owner) as claimed:
        assert record(tmp_path)["pid"] == os.getpid()
        claimed.finish()


def test_a_run_left_by_a_dead_process_is_taken_over_with_a_notice(tmp_path, capsys):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    with RunDir(tmp_path, OUTPUTS, SETTINGS):
        killed = {**record(tmp_path), "pid": int(dead)}  # as SIGKILL left it: still "running"
    (tmp_path / run_dir.RUN_FILE).write_text(json.dumps(killed))

    with RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True):
        pass

    assert f"from pid {dead}, which is gone" in capsys.readouterr().out


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")

    with pytest.raises(UserError, match="is a file"):
        RunDir(file, OUTPUTS, SETTINGS)


def test_unwritable_output_dir_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")

    with pytest.raises(UserError, match="cannot write to output folder"):
        RunDir(tmp_path / "file" / "run", OUTPUTS, SETTINGS)


def test_an_unwritable_output_dir_is_refused(tmp_path):
    """A read-only folder; root writes into those, but not into /proc (Linux)."""
    parent = Path("/proc") if os.geteuid() == 0 else tmp_path
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(UserError, match="cannot write to output folder"):
            RunDir(parent / "grpo-run", OUTPUTS, SETTINGS)
    finally:
        tmp_path.chmod(0o755)
    assert not (parent / "grpo-run").exists()


def test_preflight_refuses_what_the_claim_would_and_writes_nothing(tmp_path):
    finished_run(tmp_path / "done")
    before = digests(tmp_path / "done")

    with pytest.raises(UserError, match="already holds a run"):
        RunDir.preflight(tmp_path / "done", OUTPUTS, SETTINGS)
    with pytest.raises(UserError, match="seed: 0 there, 1 here"):
        RunDir.preflight(tmp_path / "done", OUTPUTS, {**SETTINGS, "seed": 1}, resume=True)
    RunDir.preflight(tmp_path / "done", OUTPUTS, SETTINGS, overwrite=True)
    RunDir.preflight(tmp_path / "new", OUTPUTS, SETTINGS)

    assert digests(tmp_path / "done") == before
    assert not (tmp_path / "new").exists()


def test_preflight_sees_a_live_holder(tmp_path):
    with RunDir(tmp_path, OUTPUTS, SETTINGS), pytest.raises(UserError, match="in use"):
        RunDir.preflight(tmp_path, OUTPUTS, SETTINGS)
    RunDir.preflight(tmp_path, OUTPUTS, SETTINGS)  # released: free again


def digests(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------
# A folder belongs to the command that made it; --overwrite clears only what a run wrote
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "taker"),
    [("train_grpo.py", "evaluate_model.py"), ("evaluate_model.py", "train_grpo.py")],
)
@pytest.mark.parametrize("flag", ["none", "overwrite", "resume"])
def test_no_command_takes_over_another_commands_folder(tmp_path, maker, taker, flag):
    interrupted_run(tmp_path, owner=maker)
    before = digests(tmp_path)
    flags = {"overwrite": flag == "overwrite", "resume": flag == "resume"}

    for claim in (RunDir.preflight, RunDir):
        with pytest.raises(UserError, match=f"holds a run of {maker} .* not of {taker}"):
            claim(tmp_path, OUTPUTS, SETTINGS, owner=taker, **flags)

    assert digests(tmp_path) == before
    assert record(tmp_path)["owner"] == maker


def test_a_folder_that_no_run_made_is_never_cleared(tmp_path):
    """mkdir P/final; echo x > P/final/my_model.bin: --overwrite must not delete it."""
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "my_model.bin").write_text("x")
    (tmp_path / "checkpoints").mkdir()

    for overwrite in (False, True):
        for claim in (RunDir.preflight, RunDir):
            with pytest.raises(UserError, match="holds no run.json.*not even with --overwrite"):
                claim(tmp_path, OUTPUTS, SETTINGS, overwrite=overwrite)

    assert (tmp_path / "final" / "my_model.bin").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "final"]  # no .lock


def test_a_run_stopped_before_its_first_checkpoint_is_not_told_to_resume(tmp_path):
    with pytest.raises(KeyboardInterrupt), RunDir(tmp_path, OUTPUTS, SETTINGS):
        (tmp_path / "metrics.json").write_text("{}")
        (tmp_path / "checkpoints" / "runs").mkdir(parents=True)  # logs, but no checkpoint
        raise KeyboardInterrupt

    with pytest.raises(UserError) as refused:
        RunDir(tmp_path, OUTPUTS, SETTINGS, keep=("checkpoints",))

    assert "--resume" not in str(refused.value)
    assert "no complete checkpoint in checkpoints to resume from: pass --overwrite" in str(
        refused.value
    )


def test_finish_records_the_wall_time_it_returns(tmp_path):
    with RunDir(tmp_path, OUTPUTS, SETTINGS) as claimed:
        printed = claimed.finish(wall_time_s=3.4)
    assert printed == record(tmp_path)["wall_time_s"] == 3.4


# ---------------------------------------------------------------------------------------------
# Launcher variables: only a real multi-process launch skips the lock
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "main"),
    [
        ({}, True),
        ({"RANK": "1"}, True),  # a stray RANK is not a launch
        ({"RANK": "1", "WORLD_SIZE": "1"}, True),
        ({"RANK": "0", "WORLD_SIZE": "2"}, True),
        ({"RANK": "1", "WORLD_SIZE": "2"}, False),
    ],
)
def test_only_a_multi_process_launch_has_non_main_processes(monkeypatch, env, main):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert run_dir.is_main_process() is main


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_world_size_that_is_no_process_count_is_a_user_error(monkeypatch, value):
    monkeypatch.setenv("WORLD_SIZE", value)
    with pytest.raises(UserError, match=f"WORLD_SIZE='{value}' is not a number of processes"):
        run_dir.launch_world_size()


def test_the_run_folder_module_imports_where_fcntl_does_not_exist():
    """Windows has no fcntl: the command lines must still import there."""
    code = "import sys; sys.modules['fcntl'] = None; import grpo.run_dir"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_full_disk_while_saving_weights_is_one_line():
    """safetensors reports ENOSPC only in its message (measured on a full 1 MB tmpfs)."""
    from safetensors import SafetensorError

    def save():
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    with pytest.raises(SystemExit) as caught:
        run_main("train_grpo.py", save)
    assert caught.value.code.startswith("train_grpo.py: error: the disk is full")


# ---------------------------------------------------------------------------------------------
# The inputs of a run are never its outputs; --overwrite clears only its own run's files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inside", ["final", "checkpoints/checkpoint-5"])
@pytest.mark.parametrize("flags", [{"overwrite": True}, {"resume": True}])
def test_a_model_inside_an_output_is_refused_and_kept(tmp_path, inside, flags):
    """cp -a R R2; train_grpo.py --model R2/final --output-dir R2 --overwrite deleted it."""
    interrupted_run(tmp_path)
    model = tmp_path / inside
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.safetensors").write_bytes(b"weights")
    before = digests(tmp_path)

    for claim in (RunDir.preflight, RunDir):
        with pytest.raises(UserError, match="lies inside .* which this run writes"):
            claim(tmp_path, OUTPUTS, SETTINGS, inputs=(model,), **flags)

    assert digests(tmp_path) == before


def test_overwrite_never_deletes_a_run_nested_inside_an_output(tmp_path):
    """evaluate_model.py --output-dir R/final/evalhere, then train_grpo.py --output-dir R
    --overwrite deleted that evaluation."""
    finished_run(tmp_path)
    nested = tmp_path / "final" / "evalhere"
    nested.mkdir()
    (nested / run_dir.RUN_FILE).write_text(json.dumps({"owner": "evaluate_model.py"}))
    before = digests(tmp_path)

    with pytest.raises(UserError, match="holds another run"):
        RunDir(tmp_path, OUTPUTS, SETTINGS, overwrite=True)

    assert digests(tmp_path) == before


def test_a_run_folder_inside_another_runs_output_is_refused(tmp_path):
    finished_run(tmp_path)

    with pytest.raises(UserError, match="lies inside .*final, an output of the run"):
        RunDir(tmp_path / "final" / "evalhere", ("metrics.json",), {}, owner="evaluate_model.py")

    assert not (tmp_path / "final" / "evalhere").exists()


def test_a_users_file_that_looks_like_a_temp_file_is_not_ours(tmp_path):
    """mkdir U; echo notes > U/.notes.tmp; train_grpo.py --output-dir U deleted it."""
    (tmp_path / ".notes.tmp").write_text("notes")

    with pytest.raises(UserError, match=r"not empty \(\.notes\.tmp\)"):
        RunDir(tmp_path, OUTPUTS, SETTINGS)

    assert (tmp_path / ".notes.tmp").read_text() == "notes"


def test_the_temp_file_of_a_run_json_killed_mid_write_does_not_block_a_new_folder(tmp_path):
    (tmp_path / ".run.json.a1b2c3d4.tmp").write_text('{"sta')

    with RunDir(tmp_path, OUTPUTS, SETTINGS) as claimed:
        claimed.finish()

    assert not (tmp_path / ".run.json.a1b2c3d4.tmp").exists()


# ---------------------------------------------------------------------------------------------
# run.json never lies: "replacing" is written before anything is removed
# ---------------------------------------------------------------------------------------------


def undeletable(monkeypatch, name: str) -> None:
    """Make every file called `name` impossible to delete, as `chattr +i` does."""
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if Path(path).name == name:
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)


def test_an_overwrite_that_cannot_delete_a_file_leaves_replacing_and_one_line(
    tmp_path, monkeypatch
):
    finished_run(tmp_path)
    undeletable(monkeypatch, "model.safetensors")

    with pytest.raises(UserError, match="could not remove .*model.safetensors .*'replacing'"):
        RunDir(tmp_path, OUTPUTS, SETTINGS, overwrite=True)

    assert record(tmp_path)["status"] == "replacing"  # never "complete" over half a folder
    monkeypatch.undo()
    with pytest.raises(UserError, match="cut short, part of the old run is gone"):
        RunDir(tmp_path, OUTPUTS, SETTINGS)
    with RunDir(tmp_path, OUTPUTS, SETTINGS, overwrite=True) as again:
        assert record(tmp_path)["status"] == "running"
        again.finish()
    assert not (tmp_path / "final").exists()


def test_an_interrupted_overwrite_is_finished_by_resume_which_starts_afresh(tmp_path, monkeypatch):
    finished_run(tmp_path)

    def interrupted(path, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_dir.shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        RunDir(tmp_path, OUTPUTS, SETTINGS, overwrite=True)
    monkeypatch.undo()
    assert record(tmp_path)["status"] == "replacing"

    assert RunDir.preflight(tmp_path, OUTPUTS, SETTINGS, resume=True) is False
    with RunDir(tmp_path, OUTPUTS, SETTINGS, resume=True) as resumed:
        assert resumed.resumes is False
        assert record(tmp_path)["attempts"] == 1
    assert not (tmp_path / "final").exists() and not (tmp_path / "metrics.json").exists()


def test_an_unwritable_run_json_stops_the_overwrite_before_anything_is_deleted(
    tmp_path, monkeypatch
):
    """chattr +i R/run.json: everything was deleted, then a traceback."""
    finished_run(tmp_path)
    before = digests(tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(run_dir.artifacts, "write_json", refuse)
    with pytest.raises(UserError, match="cannot write .*run.json .*nothing in the folder"):
        RunDir(tmp_path, OUTPUTS, SETTINGS, overwrite=True)

    assert digests(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Hand-edited run.json: refused in one line, never a traceback or a wrong owner
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{garbage", "[1, 2]", '{"status": "complete"}', "[" * 100_000])
def test_a_run_json_that_is_no_record_is_refused_and_nothing_touched(tmp_path, text):
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / run_dir.RUN_FILE).write_text(text)
    before = digests(tmp_path)

    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(UserError, match="run.json is unreadable"):
            RunDir(tmp_path, OUTPUTS, SETTINGS, **flags)

    assert digests(tmp_path) == before


@pytest.mark.parametrize(("name", "value"), [("wall_time_s", "abc"), ("attempts", "x")])
def test_a_hand_edited_count_in_run_json_is_one_line_on_resume(tmp_path, name, value):
    interrupted_run(tmp_path)
    (tmp_path / run_dir.RUN_FILE).write_text(json.dumps({**record(tmp_path), name: value}))

    with pytest.raises(UserError, match=f"run.json's {name} is '{value}', not a number"):
        RunDir.preflight(tmp_path, OUTPUTS, SETTINGS, resume=True)


def test_a_folder_whose_only_checkpoint_is_incomplete_is_not_told_to_resume(tmp_path):
    interrupted_run(tmp_path)  # checkpoint-5 holds nothing

    with pytest.raises(UserError) as refused:
        RunDir(tmp_path, OUTPUTS, SETTINGS, keep=("checkpoints",))

    assert "--resume" not in str(refused.value)


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGHUP"), reason="no SIGHUP on Windows")
def test_sighup_ends_a_run_like_sigterm(tmp_path, capsys):
    """A closed terminal exited 129 with run.json "running" and no message."""
    import signal

    def work():
        with RunDir(tmp_path, OUTPUTS, SETTINGS):
            os.kill(os.getpid(), signal.SIGHUP)

    with pytest.raises(SystemExit) as caught:
        run_main("train_grpo.py", work)

    assert caught.value.code == 129
    assert capsys.readouterr().err == "train_grpo.py: interrupted (SIGHUP)\n"
    assert record(tmp_path)["status"] == "interrupted"


def test_an_output_dir_name_longer_than_file_systems_allow_is_a_usage_error():
    """--output-dir of 300 characters: ENAMETOOLONG, even with --dry-run."""
    import argparse

    from grpo.cli import output_folder

    with pytest.raises(argparse.ArgumentTypeError, match="300 bytes long; file systems allow 255"):
        output_folder("runs/" + "x" * 300)
    assert output_folder("runs/" + "x" * 255).name == "x" * 255


def test_a_resume_refusal_names_the_changed_setting_not_its_whole_group(tmp_path):
    interrupted_run(tmp_path)
    other = {**SETTINGS, "grpo": {"max_steps": 4}}

    with pytest.raises(UserError, match=r"\(grpo.max_steps: 3 there, 4 here\)"):
        RunDir.preflight(tmp_path, OUTPUTS, other, resume=True)


def test_a_launch_refuses_to_resume_a_replacement_cut_short_on_every_rank(tmp_path, monkeypatch):
    """Rank 0 would start afresh (deleting the checkpoints) while the other ranks, which
    claim nothing, resumed from them: every rank reads the same "replacing" and refuses."""
    folder = finished_run(tmp_path / "run")
    run_dir.check_launch_resume(folder, 1)  # one process: nothing to agree on
    run_dir.check_launch_resume(folder, 2)  # a complete run: --resume says so itself
    replaced = {**record(folder), "status": run_dir.REPLACING}
    (folder / run_dir.RUN_FILE).write_text(json.dumps(replaced))
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(UserError, match="cut short.*--overwrite instead"):
            run_dir.check_launch_resume(folder, 2)
    assert (folder / "final" / "model.safetensors").exists()
