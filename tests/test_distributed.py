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
import statistics
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
from data import build_prompt
from grpo.models import load_tokenizer
from offline_demo.toy_task import ToyProblem, split_problems
from offline_demo.warm_start import blurted_answer, warm_start_path

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
    2 x 4 = 8 completions per step, one whole group, does it start at all. Completions keep
    the profile's 48 tokens: a full toy solution takes 20-32, and a shorter limit would cut
    every solution off before its answer (then GRPO rightly learns to blurt instead).
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


def test_final_model_loads_as_the_warm_starts_architecture(ddp_run):
    trained = AutoModelForCausalLM.from_pretrained(ddp_run / "final", dtype=torch.float32)
    start = AutoModelForCausalLM.from_pretrained(warm_start_path(), dtype=torch.float32)
    weights, start_weights = trained.state_dict(), start.state_dict()
    assert type(trained) is type(start)
    assert weights.keys() == start_weights.keys()
    assert all(weights[name].shape == start_weights[name].shape for name in weights)


# Learning, measured cheaply on the saved weights. The warm start answers a toy problem
# either with a careful solution (<reasoning> with the arithmetic, then <answer>) or with a
# blurted guess (offline_demo/warm_start.py); the rewards pay up to 2 more for a correct
# answer and more for the full format, so a GRPO update must raise the log-probability of
# solutions relative to blurts. Measured on 64 evaluation-split problems (none of their
# computations is ever trained on), in nats, as the mean over problems of
#   [log p(solution) - log p(blurt)] after  -  the same before
# (this file's functions run on saved DDP runs; 2-core CPU, torch 2.13, TRL 1.16):
# * this run (2 steps, the first at learning rate 0 for the warm-up): +1.18, up on 60 of 64;
#   the same with --train-size 32 (other prompts): +0.64; with --train-size 128 and
#   --learning-rate 1e-4: +0.76;
# * the control, each run's update with its entries shuffled and their signs flipped at
#   random (same size per tensor, no direction): -0.010..+0.015 over 5 shuffles per run;
# * with --max-completion-length 16 (every solution cut off before its answer): -1.62, the
#   run learns to blurt, as its rewards say it should.
# The margin, 0.25, is about a fifth of this run's shift and under half the smallest one
# measured; a fifth of it (0.05) is over 3 times the controls' largest. An update that
# ignores or inverts the reward fails, and so does a frozen model (shift 0).
LEARNING_MARGIN_NATS = 0.25


def completion_logprob(model, tokenizer, question: str, completion: str) -> float:
    """log p(completion, then end of turn | the chat prompt for `question`)."""
    prompt = tokenizer.apply_chat_template(
        build_prompt(question), tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion + tokenizer.eos_token, add_special_tokens=False)[
        "input_ids"
    ]
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1]
    chosen = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(completion_ids)[:, None])
    return chosen.sum().item()


def solution_preference(model, tokenizer, problems: list[ToyProblem]) -> list[float]:
    """Per problem: how much more likely (in nats) the model finds the careful solution."""
    return [
        completion_logprob(model, tokenizer, problem.question, problem.solution())
        - completion_logprob(model, tokenizer, problem.question, blurted_answer(problem))
        for problem in problems
    ]


def shift(model, start_preference: list[float], tokenizer, problems) -> float:
    after = solution_preference(model, tokenizer, problems)
    return statistics.mean(a - b for a, b in zip(after, start_preference, strict=True))


def directionless(start: dict, trained: dict, seed: int) -> dict:
    """The update `trained - start` with each tensor's entries shuffled and their signs
    flipped at random: an update of the same size that follows no reward."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, before in start.items():
        update = (trained[name] - before).flatten()
        order = torch.randperm(update.numel(), generator=generator)
        signs = torch.randint(0, 2, (update.numel(),), generator=generator) * 2 - 1
        weights[name] = before + (update[order] * signs).view_as(before)
    return weights


def test_the_update_follows_the_reward(ddp_run):
    tokenizer = load_tokenizer(warm_start_path())
    start = AutoModelForCausalLM.from_pretrained(warm_start_path(), dtype=torch.float32)
    trained = AutoModelForCausalLM.from_pretrained(ddp_run / "final", dtype=torch.float32)
    problems = split_problems(64, seed=7, split="eval")
    before = solution_preference(start, tokenizer, problems)

    learned = shift(trained, before, tokenizer, problems)
    assert learned >= LEARNING_MARGIN_NATS, f"solution preference moved {learned:+.3f} nats"

    control = AutoModelForCausalLM.from_pretrained(warm_start_path(), dtype=torch.float32)
    control.load_state_dict(directionless(start.state_dict(), trained.state_dict(), seed=0))
    unguided = shift(control, before, tokenizer, problems)
    assert abs(unguided) < LEARNING_MARGIN_NATS / 5, f"a random update moved it {unguided:+.3f}"


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
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")  # as the launcher sets them
    monkeypatch.setenv("MASTER_PORT", "29500")
    # Building the GRPOConfig under WORLD_SIZE > 1 joins the launch's process group, which
    # would wait for ranks that do not exist here; the real 2-process runs above build it.
    monkeypatch.setattr(grpo.run_config, "trl_problem", lambda grpo: None)
    _, run = train_grpo.parse_args(arguments)
    grpo = run.grpo
    completions = grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"]
    assert completions * launcher_processes(words) % grpo["num_generations"] == 0
