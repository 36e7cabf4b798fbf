"""Tests for grpo/checkpoints.py: resume only from a checkpoint whose every part is intact."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from grpo import checkpoints

PARTS = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth")
PARTS += ("trainer_state.json",)


def make_checkpoint(folder: Path, step: int, weights: str = "model.safetensors") -> Path:
    """A checkpoint laid out as the Trainer saves one, with small but real files."""
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    save_file({"w": torch.ones(64, 64)}, checkpoint / weights)
    optimizer = {"state": {0: {"exp_avg": torch.zeros(64, 64)}}, "param_groups": [{"lr": 1e-4}]}
    torch.save(optimizer, checkpoint / "optimizer.pt")
    torch.save({"last_epoch": step, "_last_lr": [1e-4]}, checkpoint / "scheduler.pt")
    rng = {"python": 1, "numpy": 2, "cpu": torch.get_rng_state()}
    torch.save(rng, checkpoint / "rng_state.pth")
    state = {"global_step": step, "max_steps": 6, "log_history": [{"step": step, "loss": 0.1}]}
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    return checkpoint


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def two_checkpoints(tmp_path) -> tuple[Path, Path]:
    return make_checkpoint(tmp_path, 3), make_checkpoint(tmp_path, 6)


def test_newest_complete_checkpoint_is_chosen(tmp_path, two_checkpoints):
    assert checkpoints.newest_complete(tmp_path, load=True) == two_checkpoints[1]


def test_steps_are_ordered_numerically(tmp_path):
    for step in (9, 10, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-final").mkdir()  # not a step: ignored

    assert [p.name for p in checkpoints.steps(tmp_path)] == [
        "checkpoint-100", "checkpoint-10", "checkpoint-9"
    ]  # fmt: skip


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("damage", ["missing", "truncated", "empty"])
def test_a_damaged_part_falls_back_to_the_older_checkpoint(tmp_path, two_checkpoints, part, damage):
    older, newest = two_checkpoints
    target = newest / part
    if damage == "missing":
        target.unlink()
    elif damage == "truncated":
        truncate(target)
    else:
        target.write_bytes(b"")
    reports = []

    assert checkpoints.newest_complete(tmp_path, report=reports.append) == older
    assert len(reports) == 1
    assert reports[0].startswith("Skipping checkpoint-6: ")
    assert part in reports[0]


def test_a_state_from_another_step_is_refused(tmp_path, two_checkpoints):
    (two_checkpoints[1] / "trainer_state.json").write_text(json.dumps({"global_step": 5}))

    assert checkpoints.problem(two_checkpoints[1]) == "trainer_state.json says step 5"


def test_an_intact_archive_that_does_not_load_is_caught_by_load(tmp_path, two_checkpoints):
    scheduler = two_checkpoints[1] / "scheduler.pt"
    with zipfile.ZipFile(scheduler, "w") as archive:
        archive.writestr("archive/data.pkl", b"not a pickle")

    assert checkpoints.problem(two_checkpoints[1], load=False) is None
    found = checkpoints.problem(two_checkpoints[1], load=True)
    assert found.startswith("scheduler.pt does not load")


def test_a_lora_checkpoint_holds_adapter_weights(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 2, weights="adapter_model.safetensors")

    assert checkpoints.problem(checkpoint, load=True) is None


def test_every_process_rng_state_is_checked(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 2)
    (checkpoint / "rng_state.pth").rename(checkpoint / "rng_state_0.pth")
    (checkpoint / "rng_state_1.pth").write_bytes(b"")

    assert checkpoints.problem(checkpoint) == "rng_state_1.pth is missing or truncated"


def test_sharded_weights_are_checked_shard_by_shard(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 2)
    (checkpoint / "model.safetensors").unlink()
    for shard in ("a.safetensors", "b.safetensors"):
        save_file({"w": torch.ones(8)}, checkpoint / shard)
    index = {"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}}
    (checkpoint / checkpoints.SHARD_INDEX).write_text(json.dumps(index))
    assert checkpoints.problem(checkpoint) is None

    shard = checkpoint / "b.safetensors"
    shard.write_bytes(shard.read_bytes()[:-4])  # header intact, the last value cut short
    assert checkpoints.problem(checkpoint).startswith("b.safetensors is truncated")


def test_no_complete_checkpoint_means_none(tmp_path, two_checkpoints):
    for checkpoint in two_checkpoints:
        (checkpoint / "optimizer.pt").unlink()

    assert checkpoints.newest_complete(tmp_path) is None
    assert checkpoints.newest_complete(tmp_path / "nothing-here") is None


# ---------------------------------------------------------------------------------------------
# Garbage: the check reports it and never raises
# ---------------------------------------------------------------------------------------------


def overwrite_middle(path: Path, garbage: bytes) -> None:
    """`garbage` written over the middle of `path`, its length unchanged (bit rot, a bad copy)."""
    content = bytearray(path.read_bytes())
    start = len(content) // 2 - len(garbage) // 2
    content[start : start + len(garbage)] = garbage
    path.write_bytes(bytes(content))


@pytest.mark.parametrize(
    "content",
    [
        bytes([0x10, 0, 0, 0, 0, 0, 0, 0x80]) + b"\x00" * 100,  # a header length past 2**63
        (2).to_bytes(8, "little") + b"[]",  # a header that is JSON but not a table
        (4).to_bytes(8, "little") + b"\xff\xfe{}",  # not UTF-8
    ],
    ids=["huge-length", "list-header", "undecodable-header"],
)
@pytest.mark.parametrize("load", [False, True])
def test_garbage_weights_are_a_problem_not_a_crash(tmp_path, two_checkpoints, content, load):
    (two_checkpoints[1] / "model.safetensors").write_bytes(content)

    found = checkpoints.problem(two_checkpoints[1], load=load)

    assert found.startswith("model.safetensors is ")
    assert checkpoints.newest_complete(tmp_path, load=load) == two_checkpoints[0]


@pytest.mark.parametrize("part", ["model.safetensors", "optimizer.pt"])
def test_garbage_inside_the_weights_or_optimizer_is_caught_before_resuming(two_checkpoints, part):
    """4 KB of 0xff inside the data leaves every header and length intact: only reading the
    values (NaN in the weights) or checking the CRCs (the optimizer) finds it."""
    overwrite_middle(two_checkpoints[1] / part, b"\xff" * 4096)

    found = checkpoints.problem(two_checkpoints[1], load=True)

    assert found is not None and found.startswith(part)


def test_resume_point_names_what_it_skipped(tmp_path, two_checkpoints):
    for checkpoint in two_checkpoints:
        (checkpoint / "optimizer.pt").unlink()

    with pytest.raises(checkpoints.NoCheckpoint) as refused:
        checkpoints.resume_point(tmp_path)

    message = str(refused.value)
    assert "checkpoint-6: optimizer.pt is missing" in message
    assert "checkpoint-3: optimizer.pt is missing" in message


def test_resume_point_says_when_no_checkpoint_was_saved(tmp_path):
    with pytest.raises(
        checkpoints.NoCheckpoint, match="holds no checkpoint: the run stopped before its first"
    ):
        checkpoints.resume_point(tmp_path / "checkpoints")


def test_resume_point_is_the_newest_complete_checkpoint(tmp_path, two_checkpoints):
    assert checkpoints.resume_point(tmp_path, load=True) == two_checkpoints[1]


def edit_state(checkpoint: Path, **fields) -> None:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    (checkpoint / "trainer_state.json").write_text(json.dumps({**state, **fields}))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda c: (c / "scheduler.pt").replace(c / "optimizer.pt"), "optimizer.pt is not"),
        (lambda c: edit_state(c, global_step=6.0), "says step 6.0"),
        (lambda c: edit_state(c, log_history=5), "log_history is not a list"),
        (lambda c: (c / "config.json").write_text("{garbage"), "config.json is unreadable"),
        (
            lambda c: (c / "rng_state.pth").unlink() or torch.save([1], c / "rng_state.pth"),
            "rng_state.pth is not",
        ),
    ],  # fmt: skip
    ids=["optimizer-replaced", "step-float", "history-number", "config-garbage", "rng-list"],
)
def test_a_checkpoint_the_trainer_would_crash_on_is_skipped(tmp_path, two_checkpoints, damage, why):
    """Each of these passed the check and crashed the Trainer's resume with a traceback."""
    older, newest = two_checkpoints
    damage(newest)
    skipped: list[str] = []

    assert checkpoints.newest_complete(tmp_path, load=True, report=skipped.append) == older
    assert why in skipped[0]


@pytest.mark.parametrize("lora", [True, False])
def test_a_checkpoint_of_the_other_kind_of_run_is_refused(tmp_path, lora):
    """A LoRA checkpoint copied into a full run (or the reverse) crashed the resume."""
    make_checkpoint(
        tmp_path, 3, weights="model.safetensors" if lora else "adapter_model.safetensors"
    )

    with pytest.raises(checkpoints.NoCheckpoint, match="checkpoint .*, and this is a"):
        checkpoints.resume_point(tmp_path, lora=lora)
    assert checkpoints.resume_point(tmp_path, lora=not lora) == tmp_path / "checkpoint-3"


def test_training_finished_at_the_last_step_only(tmp_path, two_checkpoints):
    older, newest = two_checkpoints
    assert checkpoints.training_finished(newest)  # step 6 of 6
    assert not checkpoints.training_finished(older)


def test_the_exported_model_holds_no_training_state(tmp_path, two_checkpoints):
    final = checkpoints.export_model(two_checkpoints[1], tmp_path / "final")

    assert sorted(p.name for p in final.iterdir()) == ["model.safetensors"]


def test_a_checkpoint_of_a_run_with_other_settings_is_skipped(tmp_path, two_checkpoints):
    """A checkpoint copied in from a run with other settings resumed silently."""
    older, newest = two_checkpoints
    edit_state(newest, max_steps=100)
    skipped: list[str] = []

    found = checkpoints.newest_complete(tmp_path, report=skipped.append, expected={"max_steps": 6})

    assert found == older
    assert "saved by a run with other settings (max_steps 100, here 6)" in skipped[0]
