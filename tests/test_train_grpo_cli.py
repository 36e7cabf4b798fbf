"""End-to-end tests of `train_grpo.py` on the warm-started tiny model: kill, resume, outputs.

One tiny run is started, SIGKILLed a step after its checkpoint-6 and started again with
`--resume`; the tests below check the pieces of that story (checkpoint contents and
rotation, no lost steps, the resumed history) and the outputs of the finished run
(metrics.json, summary.png, completions, the final model). Sharing one run keeps the
file under a minute (48 s measured on a 2-core machine at load 3-4).

The warm start is the copy shipped in assets/tiny_qwen2_warm/ (or, after a recipe change
not yet shipped, one built once into the default cache and shared with the notebooks), so
GRPO_CACHE_DIR is left alone.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import train_grpo
from grpo.models import load_tokenizer

pytestmark = pytest.mark.usefixtures("warm_start_model")

REPO = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY, KEEP = 12, 3, 2
KILL_AFTER_CHECKPOINT = 6
EVAL_SIZE = 20
COMMAND = [
    sys.executable,
    "train_grpo.py",
    "--model", "tiny",
    "--max-steps", str(STEPS),
    "--save-steps", str(SAVE_EVERY),
    "--save-total-limit", str(KEEP),
    "--train-size", "200",
    "--eval-size", str(EVAL_SIZE),
    "--per-device-train-batch-size", "16",  # 2 prompts x 8 completions: half the demo's step
]  # fmt: skip
TIMEOUT_S = 1800  # generous: CI machines are often shared; both runs took 43 s here
CHECKPOINT_FILES = (
    "model.safetensors",  # model
    "optimizer.pt",  # optimizer (Adam moments)
    "scheduler.pt",  # learning-rate schedule
    "rng_state.pth",  # Python, NumPy and torch random states
    "trainer_state.json",  # global step and log history, written last
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class InterruptedRun:
    output_dir: Path
    killed_log: str  # stdout and stderr of the killed run
    killed_at_step: int  # steps the killed run had logged when it died
    checkpoints_after_kill: list[str]
    last_checkpoint: int  # the newest checkpoint the killed run left
    checkpoint_files: set[str]  # the files of that checkpoint
    checkpoint_state: dict  # its trainer_state.json (rotated away by the resumed run)
    run_after_kill: dict  # run.json as the killed run left it
    resumed: subprocess.CompletedProcess

    @property
    def checkpoints(self) -> Path:
        return self.output_dir / "checkpoints"


def subprocess_env() -> dict[str, str]:
    # Unbuffered: the killed run's log must reach the file. One torch thread: the tiny
    # model's operations are too small to share, and on a busy 2-core machine two threads
    # wait for each other at every operation (3-10x slower, see benchmarks/RESULTS.md).
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("GRPO_USE_WANDB", None)
    return env


def logged_steps(log: str) -> list[int]:
    """The steps whose progress line (grpo.progress: "step 7/12 | reward ...") was printed."""
    lines = (re.match(r"step (\d+)/\d+ \|", line) for line in log.splitlines())
    return [int(line.group(1)) for line in lines if line]


def tensorboard_logs(output_dir: Path) -> list[dict[int, dict[str, float]]]:
    """Step -> logged scalars, for each process that trained (oldest first). The trainer
    flushes its TensorBoard file at every log, so a SIGKILLed run keeps its last steps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(output_dir.rglob("events.out.tfevents.*"), key=lambda f: f.stat().st_mtime)
    logs = []
    for file in files:
        events = EventAccumulator(str(file))
        events.Reload()
        steps: dict[int, dict[str, float]] = {}
        for tag in events.Tags()["scalars"]:
            for scalar in events.Scalars(tag):
                steps.setdefault(scalar.step, {})[tag.removeprefix("train/")] = scalar.value
        logs.append(steps)
    return logs


def checkpoint_steps(folder: Path) -> list[int]:
    return sorted(
        int(path.name.removeprefix("checkpoint-")) for path in folder.glob("checkpoint-*")
    )


def complete_checkpoint_step(folder: Path) -> int | None:
    """The newest checkpoint whose trainer_state.json (written last) is complete, if any."""
    for step in reversed(checkpoint_steps(folder)):
        try:
            state = json.loads((folder / f"checkpoint-{step}" / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        if state["global_step"] == step:
            return step
    return None


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> InterruptedRun:
    output_dir = tmp_path_factory.mktemp("cli") / "run"
    checkpoints = output_dir / "checkpoints"
    log_path = output_dir.parent / "killed.log"
    command = [*COMMAND, "--output-dir", str(output_dir)]

    # 1. Start a run and SIGKILL it mid-training: one step after checkpoint-6 was written.
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the run ended before it was killed:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no checkpoint-{KILL_AFTER_CHECKPOINT} in {TIMEOUT_S} s")
                saved = checkpoints.is_dir() and complete_checkpoint_step(checkpoints)
                steps = len(logged_steps(log_path.read_text()))
                if saved and saved >= KILL_AFTER_CHECKPOINT and steps > saved:
                    break
                time.sleep(0.2)
        finally:
            # SIGKILL: nothing of the trainer's own (no handler, no final save) can run.
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL

    killed_log = log_path.read_text()
    after_kill = checkpoint_steps(checkpoints)
    last = max(after_kill)
    state = json.loads((checkpoints / f"checkpoint-{last}" / "trainer_state.json").read_text())
    files = {path.name for path in (checkpoints / f"checkpoint-{last}").iterdir()}
    run_after_kill = json.loads((output_dir / "run.json").read_text())

    # 2. Start it again, the same command plus --resume.
    resumed = subprocess.run(
        [*command, "--resume"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return InterruptedRun(
        output_dir=output_dir,
        killed_log=killed_log,
        killed_at_step=len(logged_steps(killed_log)),
        checkpoints_after_kill=sorted(path.name for path in checkpoints.glob("checkpoint-*")),
        last_checkpoint=last,
        checkpoint_files=files,
        checkpoint_state=state,
        run_after_kill=run_after_kill,
        resumed=resumed,
    )


def test_killed_run_keeps_only_the_last_k_checkpoints(interrupted_run):
    assert len(interrupted_run.checkpoints_after_kill) <= KEEP
    assert interrupted_run.last_checkpoint >= KILL_AFTER_CHECKPOINT
    assert interrupted_run.last_checkpoint % SAVE_EVERY == 0


def test_checkpoint_holds_model_optimizer_scheduler_and_rng_state(interrupted_run):
    assert set(CHECKPOINT_FILES) <= interrupted_run.checkpoint_files
    assert interrupted_run.checkpoint_state["global_step"] == interrupted_run.last_checkpoint


def test_kill_loses_no_more_than_the_checkpoint_interval(interrupted_run):
    lost = interrupted_run.killed_at_step - interrupted_run.last_checkpoint
    assert 0 < lost < SAVE_EVERY, interrupted_run.killed_log[-3000:]


def test_killed_run_is_not_marked_complete(interrupted_run):
    assert interrupted_run.run_after_kill["status"] == "running"  # SIGKILL: no handler ran
    assert interrupted_run.run_after_kill["global_step"] >= interrupted_run.last_checkpoint


def test_resumed_run_is_marked_complete_and_counts_both_attempts(interrupted_run):
    record = json.loads((interrupted_run.output_dir / "run.json").read_text())
    metrics = json.loads((interrupted_run.output_dir / "metrics.json").read_text())

    assert record["status"] == "complete"
    assert record["attempts"] == 2
    assert "Taking over the lock" in interrupted_run.resumed.stdout
    # The killed attempt's time (recorded at its last logged step) is part of the total.
    assert interrupted_run.run_after_kill["wall_time_s"] > 0
    assert metrics["wall_time_s"] > interrupted_run.run_after_kill["wall_time_s"]


def test_resume_starts_from_the_last_checkpoint(interrupted_run):
    last = interrupted_run.checkpoints / f"checkpoint-{interrupted_run.last_checkpoint}"

    assert f"Resuming from {last}\n" in interrupted_run.resumed.stdout


def test_resumed_run_trains_only_the_remaining_steps(interrupted_run):
    """Steps up to the checkpoint are not redone: the new process logs only the rest."""
    resumed_steps = logged_steps(interrupted_run.resumed.stdout + interrupted_run.resumed.stderr)

    assert len(resumed_steps) == STEPS - interrupted_run.last_checkpoint


def test_resume_reuses_the_evaluation_before_training(interrupted_run):
    """The killed attempt evaluated the untrained model; the resumed one reads its scores
    back instead of generating every answer again, and metrics.json reports them."""
    output = interrupted_run.output_dir
    saved = json.loads((output / "evaluation_before.json").read_text())
    metrics = json.loads((output / "metrics.json").read_text())

    assert "Evaluating before training" in interrupted_run.killed_log
    assert "Reusing the evaluation before training" in interrupted_run.resumed.stdout
    assert "Evaluating before training" not in interrupted_run.resumed.stdout
    assert metrics["accuracy_before"] == saved["accuracy"]
    assert metrics["strict_format_before"] == saved["strict_format"]


@pytest.mark.parametrize("saved", [None, "{not json", "[1, 2]"])
def test_resume_evaluates_again_without_intact_saved_scores(tmp_path, monkeypatch, saved):
    from grpo.evaluation import EvalResult

    (tmp_path / "completions_before.jsonl").write_text("{}\n")
    if saved is not None:
        (tmp_path / "evaluation_before.json").write_text(saved)
    fresh = EvalResult({"accuracy": 0.25})
    monkeypatch.setattr(train_grpo, "evaluate_folder", lambda *args: fresh)

    result = train_grpo.evaluation_before(Path("model"), None, [], tmp_path, resume=True)

    assert result is fresh
    assert json.loads((tmp_path / "evaluation_before.json").read_text()) == {"accuracy": 0.25}


def test_resumed_run_redoes_the_lost_steps_identically(interrupted_run):
    """Model, optimizer, scheduler, RNG state and data position all come back: the steps
    the kill lost are redone with the killed run's numbers (exactly so on a CPU; GPU
    kernels may differ in the last bits, and then sampling differs)."""
    last = interrupted_run.last_checkpoint
    killed, resumed = tensorboard_logs(interrupted_run.output_dir)
    lost = sorted(step for step in killed if step > last)
    assert lost and all(step in resumed for step in lost)

    assert [resumed[s]["learning_rate"] for s in lost] == [killed[s]["learning_rate"] for s in lost]
    if not torch.cuda.is_available():
        for key in ("reward", "loss", "completions/mean_length"):
            assert [resumed[s][key] for s in lost] == [killed[s][key] for s in lost], key


def test_resumed_run_finishes_with_the_whole_history(interrupted_run):
    final = interrupted_run.checkpoints / f"checkpoint-{STEPS}" / "trainer_state.json"
    state = json.loads(final.read_text())
    rewards = [entry for entry in state["log_history"] if "reward" in entry]

    assert state["global_step"] == STEPS
    assert [entry["step"] for entry in rewards] == list(range(1, STEPS + 1))
    # The steps before the checkpoint are the killed run's own, carried over unchanged.
    before = [e for e in interrupted_run.checkpoint_state["log_history"] if "reward" in e]
    assert rewards[: interrupted_run.last_checkpoint] == before


def test_resumed_run_keeps_only_the_last_k_checkpoints(interrupted_run):
    expected = [STEPS - SAVE_EVERY * i for i in reversed(range(KEEP))]

    assert checkpoint_steps(interrupted_run.checkpoints) == expected


def test_final_model_loads(interrupted_run):
    final = interrupted_run.output_dir / "final"

    model = AutoModelForCausalLM.from_pretrained(final)
    tokenizer = load_tokenizer(final)

    last = AutoModelForCausalLM.from_pretrained(interrupted_run.checkpoints / f"checkpoint-{STEPS}")
    for (name, weight), (_, saved) in zip(
        model.state_dict().items(), last.state_dict().items(), strict=True
    ):
        assert torch.equal(weight, saved), name
    assert tokenizer.pad_token == "<|endoftext|>"


def test_cli_writes_metrics_summary_and_completions(interrupted_run):
    output_dir = interrupted_run.output_dir
    metrics = json.loads((output_dir / "metrics.json").read_text())

    for name in ("accuracy", "strict_format", "soft_format"):
        for when in ("before", "after"):
            assert 0.0 <= metrics[f"{name}_{when}"] <= 1.0, f"{name}_{when}"
    assert metrics["num_eval_examples"] == EVAL_SIZE
    assert metrics["profile"] == "tiny"
    assert metrics["data_source"] == "toy task (offline_demo)"
    assert metrics["eval_overlap_with_training"] == 0
    assert metrics["param_dtype"] == "float32"
    assert metrics["gradient_checkpointing"] is False  # the tiny profile's
    assert metrics["steps"] == STEPS
    assert metrics["wall_time_s"] > 0
    assert [entry["step"] for entry in metrics["reward_per_step"]] == list(range(1, STEPS + 1))
    assert all(math.isfinite(entry["reward"]) for entry in metrics["reward_per_step"])
    assert (output_dir / "summary.png").read_bytes().startswith(PNG_SIGNATURE)
    for when in ("before", "after"):
        lines = (output_dir / f"completions_{when}.jsonl").read_text().splitlines()
        assert len(lines) == EVAL_SIZE
        assert {"question", "answer", "completion"} <= set(json.loads(lines[0]))


def test_resume_without_a_checkpoint_fails_naming_the_folder(tmp_path):
    """A run that died before its first checkpoint: --resume names where it looked."""
    from grpo.run_dir import RunDir

    output = tmp_path / "run"
    argv = ["--output-dir", str(output), "--model", "tiny", "--skip-eval", "--resume"]
    settings = train_grpo.parse_args(argv)[1].training_settings()
    with RunDir(output, train_grpo.OUTPUTS, settings, owner="train_grpo.py") as claimed:
        claimed.finish("failed")

    with pytest.raises(SystemExit) as excinfo:
        train_grpo.main(argv)

    assert excinfo.value.code not in (0, None)  # a message: exit status 1
    assert str(output / "checkpoints") in str(excinfo.value.code)
