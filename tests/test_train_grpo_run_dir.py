"""train_grpo.py and its output folder: no second run into it, no mixed results, and a resume
that skips a damaged checkpoint. On the tiny random model (built in seconds), two steps,
in this process (no second import of torch)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import train_grpo
from grpo import training

COMMAND = [
    "--model", "tiny-random", "--max-steps", "2", "--save-steps", "1", "--train-size", "16",
    "--eval-size", "4", "--per-device-train-batch-size", "8", "--max-completion-length", "8",
]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A complete two-step run with checkpoint-1 and checkpoint-2."""
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPO_CACHE_DIR", str(tiny_model_dir.parent))
        patch.delenv("GRPO_USE_WANDB", raising=False)
        train_grpo.main([*COMMAND, "--output-dir", str(output_dir)])
    return output_dir


@pytest.fixture
def copy_of_finished_run(finished_run, tmp_path, tiny_cache) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def run_json(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def mark_interrupted(folder: Path, **fields) -> None:
    """run.json as Ctrl-C leaves it: a complete run is never resumed."""
    record = {**run_json(folder), "status": "interrupted", **fields}
    (folder / "run.json").write_text(json.dumps(record))


def test_a_finished_run_is_marked_complete(finished_run):
    record = run_json(finished_run)
    metrics = json.loads((finished_run / "metrics.json").read_text())

    assert record["status"] == "complete"
    assert record["settings"]["model"] == "tiny-random"
    assert record["config"]["profile"] == "tiny"
    assert metrics["steps"] == 2
    assert metrics["wall_time_s"] > 0


@pytest.mark.parametrize("extra", [[], ["--seed", "1"]], ids=["same-command", "other-seed"])
def test_a_second_run_into_a_finished_folder_fails_and_changes_nothing(copy_of_finished_run, extra):
    before = digests(copy_of_finished_run)

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, *extra, "--output-dir", str(copy_of_finished_run)])

    assert "already holds a run (status: complete" in str(caught.value.code)
    assert digests(copy_of_finished_run) == before


def test_resume_after_losing_the_newest_weights_uses_the_previous_checkpoint(
    copy_of_finished_run, capsys
):
    checkpoints = copy_of_finished_run / "checkpoints"
    (checkpoints / "checkpoint-2" / "model.safetensors").unlink()
    mark_interrupted(copy_of_finished_run)

    metrics = train_grpo.main([*COMMAND, "--output-dir", str(copy_of_finished_run), "--resume"])

    out = capsys.readouterr().out
    assert "Skipping checkpoint-2: the weights are missing" in out
    assert f"Resuming from {checkpoints / 'checkpoint-1'}\n" in out
    assert metrics["steps"] == 2
    assert [entry["step"] for entry in metrics["reward_per_step"]] == [1, 2]
    record = run_json(copy_of_finished_run)
    assert record["status"] == "complete"
    assert record["attempts"] == 2
    assert (checkpoints / "checkpoint-2" / "model.safetensors").is_file()  # saved anew


def test_a_checkpoint_copied_in_from_a_run_with_other_settings_is_skipped(
    copy_of_finished_run, capsys
):
    """Each checkpoint records the settings of the run that saved it: a checkpoint of a run
    at another learning rate, copied over checkpoint-2, used to be resumed silently."""
    newest = copy_of_finished_run / "checkpoints" / "checkpoint-2"
    saved = json.loads((newest / "run_settings.json").read_text())
    assert saved["grpo"]["max_steps"] == 2  # written by the run itself
    saved["grpo"]["learning_rate"] = 1e-3
    (newest / "run_settings.json").write_text(json.dumps(saved))
    mark_interrupted(copy_of_finished_run)

    metrics = train_grpo.main([*COMMAND, "--output-dir", str(copy_of_finished_run), "--resume"])

    out = capsys.readouterr().out
    assert "Skipping checkpoint-2: it was saved by a run with other settings" in out
    assert "grpo.learning_rate: 0.001 there, 0.0002 here" in out
    assert "Resuming from" in out and out.count("checkpoint-1\n") >= 1
    assert metrics["steps"] == 2


def test_wall_time_adds_up_over_a_resume(copy_of_finished_run):
    (copy_of_finished_run / "checkpoints" / "checkpoint-2").rename(
        copy_of_finished_run / "checkpoints" / "checkpoint-2-gone"
    )  # so that one step is left to train
    mark_interrupted(copy_of_finished_run, wall_time_s=1000.0)  # as if it had run 1000 s

    metrics = train_grpo.main([*COMMAND, "--output-dir", str(copy_of_finished_run), "--resume"])

    assert metrics["wall_time_s"] > 1000.0
    assert run_json(copy_of_finished_run)["wall_time_s"] >= metrics["wall_time_s"]


def test_resume_with_other_settings_is_refused(copy_of_finished_run):
    before = digests(copy_of_finished_run)
    argv = [*COMMAND, "--output-dir", str(copy_of_finished_run), "--resume", "--seed", "1"]

    with pytest.raises(SystemExit) as caught:
        train_grpo.main(argv)

    assert "seed: 0 there, 1 here" in str(caught.value.code)
    assert digests(copy_of_finished_run) == before


def test_an_interrupted_overwrite_leaves_no_old_results_behind(copy_of_finished_run, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "make_trainer", interrupted)

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, "--output-dir", str(copy_of_finished_run), "--overwrite"])

    assert caught.value.code == 130
    assert run_json(copy_of_finished_run)["status"] == "interrupted"
    assert not (copy_of_finished_run / "final").exists()
    assert not (copy_of_finished_run / "metrics.json").exists()
    assert not (copy_of_finished_run / "checkpoints").exists()
    assert (copy_of_finished_run / "completions_before.jsonl").is_file()  # the new run's


def test_a_second_run_while_the_first_is_alive_is_refused(tmp_path, hold_folder):
    holder = hold_folder(tmp_path)
    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, "--output-dir", str(tmp_path)])

    assert f"in use by another run (pid {holder.pid})" in str(caught.value.code)
    assert not (tmp_path / "completions_before.jsonl").exists()


class IdleTrainer:
    """A trainer whose training does nothing, as TRL's did with too few prompts for a step."""

    state = type("State", (), {"global_step": 0, "log_history": []})()

    def add_callback(self, callback):
        pass

    def train(self, resume_from_checkpoint=None):
        pass


def test_a_run_that_trained_no_step_is_a_failure(tmp_path, tiny_cache, monkeypatch):
    monkeypatch.setattr(training, "make_trainer", lambda *args, **kwargs: IdleTrainer())

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, "--output-dir", str(tmp_path), "--skip-eval"])

    assert "training ran 0 steps" in caught.value.code
    assert run_json(tmp_path)["status"] == "failed"
    assert not (tmp_path / "metrics.json").exists()


def test_resuming_a_complete_run_changes_nothing(copy_of_finished_run, capsys):
    """It used to delete final/, metrics.json, summary.png and the completions first, then
    train a step past the end."""
    before = digests(copy_of_finished_run)

    returned = train_grpo.main([*COMMAND, "--output-dir", str(copy_of_finished_run), "--resume"])

    assert returned is None  # exit status 0: the run the user asked for is there
    assert "holds a complete run: nothing to resume, nothing changed" in capsys.readouterr().out
    assert digests(copy_of_finished_run) == before


@pytest.mark.parametrize("flag", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_a_folder_that_no_run_made_is_never_cleared(tmp_path, tiny_cache, flag):
    folder = tmp_path / "P"
    (folder / "final").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "final" / "my_model.bin").write_text("x")

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, "--output-dir", str(folder), *flag])

    assert "holds no run.json" in str(caught.value.code)
    assert (folder / "final" / "my_model.bin").read_text() == "x"


def test_an_evaluation_folder_is_never_taken_over_by_training(tmp_path, tiny_cache):
    from grpo.run_dir import RunDir

    with RunDir(tmp_path, ("metrics.json",), {}, owner="evaluate_model.py") as claimed:
        (tmp_path / "metrics.json").write_text("{}")
        claimed.finish()
    before = digests(tmp_path)

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, "--output-dir", str(tmp_path), "--overwrite"])

    assert "holds a run of evaluate_model.py" in str(caught.value.code)
    assert digests(tmp_path) == before


def test_a_stray_rank_is_refused_before_the_folder_is_claimed(tmp_path, monkeypatch):
    """RANK=1 without a launch once made the run skip its lock and run.json, as if it were
    a helper process of a launch; it is now refused, like every stray launcher variable."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, "--output-dir", str(tmp_path / "run"), "--skip-eval"])

    assert caught.value.code == 2
    assert not (tmp_path / "run").exists()


def test_a_world_size_that_is_no_number_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*COMMAND, "--output-dir", str(tmp_path)])
    assert caught.value.code in (1, 2) or "WORLD_SIZE='abc'" in str(caught.value.code)


@pytest.mark.parametrize("inside", ["final", "checkpoints/checkpoint-2"])
def test_overwrite_never_deletes_the_model_it_was_asked_to_train(copy_of_finished_run, inside):
    """cp -a R R2; $T --model R2/final --output-dir R2 --overwrite removed final/, the
    checkpoints and metrics, then failed "Model folder not found: R2/final"."""
    before = digests(copy_of_finished_run)
    model = copy_of_finished_run / inside
    argv = [*COMMAND, "--model", str(model), "--output-dir", str(copy_of_finished_run)]

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*argv, "--overwrite"])

    assert "lies inside" in str(caught.value.code)
    assert digests(copy_of_finished_run) == before


def test_resume_after_training_finished_goes_straight_to_what_is_missing(
    copy_of_finished_run, capsys
):
    """D5: a kill at "Evaluating after" (or right after training), then --resume, trained a
    step past the end: "step 3/2", metrics.json "steps": 3 and a checkpoint-3."""
    shutil.rmtree(copy_of_finished_run / "final")
    (copy_of_finished_run / "metrics.json").unlink()
    mark_interrupted(copy_of_finished_run)

    metrics = train_grpo.main([*COMMAND, "--output-dir", str(copy_of_finished_run), "--resume"])

    assert "Training had finished at checkpoint-2" in capsys.readouterr().out
    assert metrics["steps"] == 2
    assert [entry["step"] for entry in metrics["reward_per_step"]] == [1, 2]
    assert not (copy_of_finished_run / "checkpoints" / "checkpoint-3").exists()
    assert (copy_of_finished_run / "final" / "model.safetensors").is_file()
    assert not (copy_of_finished_run / "final" / "optimizer.pt").exists()
    assert run_json(copy_of_finished_run)["status"] == "complete"


def test_a_hand_emptied_evaluation_before_is_evaluated_again_on_resume(
    copy_of_finished_run, capsys
):
    """evaluation_before.json `{}` gave a KeyError once training had finished."""
    (copy_of_finished_run / "evaluation_before.json").write_text("{}")
    (copy_of_finished_run / "metrics.json").unlink()
    mark_interrupted(copy_of_finished_run)

    metrics = train_grpo.main([*COMMAND, "--output-dir", str(copy_of_finished_run), "--resume"])

    assert "Reusing the evaluation" not in capsys.readouterr().out
    assert 0.0 <= metrics["accuracy_before"] <= 1.0


def broken_copy(source: Path, target: Path, damage: str) -> Path:
    """A copy of the model folder `source`, damaged as a user's hand or a cut download would."""
    folder = Path(shutil.copytree(source, target))
    config = json.loads((folder / "config.json").read_text())
    if damage == "truncated-weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "config-only":
        for path in folder.iterdir():
            if path.name != "config.json":
                path.unlink()
    elif damage == "no-tokenizer":
        for path in folder.glob("tokenizer*"):
            path.unlink()
    elif damage == "bert-config":
        config.update(model_type="bert", architectures=["BertLMHeadModel"])
    elif damage == "no-layers":
        config.update(num_hidden_layers=-1)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


MODEL_DAMAGE = {
    "truncated-weights": "does not load: SafetensorError",
    "config-only": "holds no tokenizer",
    "no-tokenizer": "holds no tokenizer",
    "bert-config": "do not fit the model its config.json describes",
    "no-layers": "does not load",
}


@pytest.mark.parametrize("damage", MODEL_DAMAGE)
def test_a_model_folder_that_cannot_train_is_one_line_before_anything_is_written(
    tmp_path, tiny_cache, tiny_model_dir, damage
):
    """--skip-eval bypassed the guarded loader: SafetensorError/OSError tracebacks after
    run.json was written; a bert config over Qwen weights trained freshly made weights."""
    model = broken_copy(tiny_model_dir, tmp_path / "model", damage)
    argv = [*COMMAND, "--model", str(model), "--profile", "tiny", "--skip-eval"]
    argv += ["--output-dir", str(tmp_path / "out")]

    with pytest.raises(SystemExit) as caught:
        train_grpo.main(argv)

    assert str(caught.value.code).startswith("train_grpo.py: error: ")
    assert MODEL_DAMAGE[damage] in caught.value.code
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_a_train_size_beyond_the_toy_task_is_one_line_before_anything_is_written(
    tmp_path, capsys, extra
):
    """--train-size 100000000 on toy grew to 3.4 GB in 80 s and ignored Ctrl-C."""
    argv = [*COMMAND, "--train-size", "100000000", "--output-dir", str(tmp_path / "out")]

    with pytest.raises(SystemExit) as caught:
        train_grpo.main([*argv, *extra])

    assert caught.value.code == 2
    assert "--train-size 100,000,000: the toy task has only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
