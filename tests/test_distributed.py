"""Multi-process training: a 2-process DDP run on the CPU, the launcher configs, docs/scaling.md.

The DDP run goes through `accelerate launch` exactly as on a multi-GPU machine, with
configs/accelerate_ddp.yaml, but on the CPU: torch.distributed's gloo backend stands in for
NCCL. It takes about a minute on two busy cores, most of it starting Python three times.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from transformers import AutoModelForCausalLM

import evaluate_model
import train_grpo
from offline_demo.warm_start import warm_start_path

pytestmark = pytest.mark.usefixtures("warm_start_model")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SCALING_DOC = REPO / "docs" / "scaling.md"
NUM_PROCESSES = 2
MAX_STEPS = 2


def free_port() -> int:
    """A port nobody listens on, so that parallel test runs do not meet on accelerate's 29500."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """Two GRPO steps in two processes on the tiny profile.

    `--per-device-train-batch-size 4` with `--num-generations 8` is deliberate: one process
    alone cannot hold a group of 8 completions, and GRPOConfig refuses the run. Only with
    2 x 4 = 8 completions per step, one whole group, does it start at all.
    """
    output_dir = tmp_path_factory.mktemp("ddp-run")
    env = {
        **os.environ,
        "GRPO_MODEL": "tiny",
        # `accelerate launch --cpu` would start a single process (it needs mpirun for more);
        # the multi-GPU launcher (torchrun) with the CPU forced gives real DDP over gloo.
        "ACCELERATE_USE_CPU": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(CONFIGS / "accelerate_ddp.yaml"),
        "--num_processes", str(NUM_PROCESSES), "--main_process_port", str(free_port()),
        "train_grpo.py", "--output-dir", str(output_dir), "--skip-eval",
        "--max-steps", str(MAX_STEPS), "--save-steps", str(MAX_STEPS), "--train-size", "64",
        "--per-device-train-batch-size", "4", "--num-generations", "8",
        "--max-completion-length", "16",
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    wall_time = time.perf_counter() - started
    print(f"accelerate launch, {NUM_PROCESSES} processes, {MAX_STEPS} steps: {wall_time:.0f} s")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return output_dir


# ---------------------------------------------------------------------------------------------
# The DDP run
# ---------------------------------------------------------------------------------------------


def test_both_processes_took_part(ddp_run):
    metrics = train_grpo_metrics(ddp_run)
    assert metrics["num_processes"] == NUM_PROCESSES
    assert metrics["steps"] == MAX_STEPS
    # The Trainer saves one random-number state per process into every checkpoint.
    checkpoint = ddp_run / "checkpoints" / f"checkpoint-{MAX_STEPS}"
    states = sorted(path.name for path in checkpoint.glob("rng_state*.pth"))
    assert states == [f"rng_state_{rank}.pth" for rank in range(NUM_PROCESSES)]


def test_final_model_loads_and_has_learned(ddp_run):
    trained = AutoModelForCausalLM.from_pretrained(ddp_run / "final", dtype=torch.float32)
    start = AutoModelForCausalLM.from_pretrained(warm_start_path(), dtype=torch.float32)
    weights, start_weights = trained.state_dict(), start.state_dict()
    assert type(trained) is type(start)
    assert weights.keys() == start_weights.keys()
    assert all(weights[name].shape == start_weights[name].shape for name in weights)
    changed = [
        name for name, weight in weights.items() if not torch.equal(weight, start_weights[name])
    ]
    assert changed, "two GRPO steps left every weight of the warm start unchanged"


def train_grpo_metrics(output_dir: Path) -> dict:
    return json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# The launcher configs (DeepSpeed itself is not installed here: only their content is checked)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "zero_stage"),
    [
        ("accelerate_ddp.yaml", DistributedType.MULTI_GPU, None),
        ("deepspeed_zero2.yaml", DistributedType.DEEPSPEED, 2),
        ("deepspeed_zero3.yaml", DistributedType.DEEPSPEED, 3),
    ],
)
def test_launcher_configs(name, kind, zero_stage):
    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == kind
    assert config.num_machines == 1
    # Precision is train_grpo.py's choice (bf16 only where the GPU supports it).
    assert config.mixed_precision == "no"
    assert not config.use_cpu
    deepspeed = config.deepspeed_config
    assert deepspeed.get("zero_stage") == zero_stage
    if zero_stage is not None:
        assert deepspeed["offload_optimizer_device"] == deepspeed["offload_param_device"] == "none"
        # Left to the Trainer ("auto"): a fixed value here would contradict the CLI flags.
        assert "gradient_accumulation_steps" not in deepspeed
    if zero_stage == 3:
        assert deepspeed["zero3_save_16bit_model"]  # final/ must be a loadable model


# ---------------------------------------------------------------------------------------------
# docs/scaling.md: every command parses, names existing configs and obeys the batch rule
# ---------------------------------------------------------------------------------------------


def doc_commands() -> list[list[str]]:
    """The train_grpo.py / evaluate_model.py commands in the document's indented code blocks."""
    text = re.sub(r"\\\n\s*", " ", SCALING_DOC.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    scripts = re.compile(r"(train_grpo|evaluate_model)\.py")
    return [shlex.split(line, comments=True) for line in lines if scripts.search(line)]


def launcher_processes(words: list[str]) -> int:
    """The process count of an `accelerate launch` command (1 for plain `python`)."""
    if words[:2] != ["accelerate", "launch"]:
        return 1
    config = words[words.index("--config_file") + 1]
    assert (REPO / config).is_file(), f"{config} does not exist"
    return int(words[words.index("--num_processes") + 1])


def test_scaling_doc_has_the_commands():
    scripts = [next(w for w in words if w.endswith(".py")) for words in doc_commands()]
    assert scripts.count("train_grpo.py") >= 10
    assert scripts.count("evaluate_model.py") >= 5


def command_id(words: list[str]) -> str:
    script = next(w for w in words if w.endswith(".py"))
    return f"{script}:{words[words.index('--output-dir') + 1]}"


@pytest.mark.parametrize("words", doc_commands(), ids=command_id)
def test_scaling_doc_command(words, monkeypatch):
    """Each documented command resolves, on the 80 GB GPU the document writes for and with
    its launcher's process count, to a run whose batch forms whole groups."""
    import grpo.run_config

    script = next(w for w in words if w.endswith(".py"))
    arguments = words[words.index(script) + 1 :]
    if script == "evaluate_model.py":
        evaluate_model.parse_args(arguments)
        return
    monkeypatch.setattr(grpo.run_config, "visible_gpu", lambda: (80.0, True))
    monkeypatch.setenv("WORLD_SIZE", str(launcher_processes(words)))
    _, run = train_grpo.parse_args(arguments)
    grpo = run.grpo
    completions = grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"]
    assert completions * launcher_processes(words) % grpo["num_generations"] == 0
