"""Both command lines refuse bad input early: one line, a non-zero exit.

A mistake in a command's own flags is answered before torch or transformers loads; a
GRPOConfig field or a run that TRL must check is answered after TRL is imported
(grpo.run_config builds the GRPOConfig) but before any folder is claimed or model loaded.
The subprocess tests run the real scripts and then list which heavy modules got imported:
checked directly, not timed.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import evaluate_model
import train_grpo
from grpo import artifacts, cli
from grpo.run_config import LORA_TARGETS

REPO = Path(__file__).resolve().parents[1]
# TRL's package root is not here: it loads lazily, and its TrlParser (which reads
# train_grpo.py's own flags) imports neither torch nor transformers. GRPOConfig does.
HEAVY = ("torch", "transformers", "datasets", "peft")
# Runs a script's main() and prints, at exit (after any error message), the heavy modules
# that were imported.
PROBE = """
import atexit, sys
atexit.register(lambda: print("HEAVY:", ",".join(
    sorted({{m.split(".")[0] for m in sys.modules}} & {heavy!r})), file=sys.stderr))
sys.argv[0] = {script!r}
import {module}
{module}.main(sys.argv[1:])
"""


def run_script(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    module = script.removesuffix(".py")
    code = PROBE.format(script=script, module=module, heavy=set(HEAVY))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env or {**os.environ, "GRPO_USE_WANDB": "0"},
        timeout=120,
    )


def heavy_imports(result: subprocess.CompletedProcess) -> str:
    return result.stderr.rsplit("HEAVY:", 1)[1].strip()


def message(result: subprocess.CompletedProcess) -> str:
    return result.stderr.rsplit("HEAVY:", 1)[0].strip()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--learning-rate", "-1"], "--learning-rate: must be greater than 0"),
        (["--max-steps", "0"], "--max-steps: must be at least 1"),
        (["--max-steps", "-5"], "--max-steps: must be at least 1"),
        (["--train-size", "0"], "--train-size: must be at least 1"),
        (["--train-size", "-3"], "--train-size: must be at least 1"),
        (["--eval-size", "0"], "--eval-size: must be at least 1"),
        (["--eval-size", "-1"], "--eval-size: must be at least 1"),
        (["--gradient-accumulation-steps", "0"], "--gradient-accumulation-steps: must be at"),
        (["--temperature", "0"], "--temperature: must be at least 0.01"),
        (["--temperature", "1e-300"], "--temperature: must be at least 0.01"),
        (["--learning-rate", "1e30"], "--learning-rate: must be greater than 0 and at most 1,"),
        (["--beta", "1e300"], "--beta: must be at least 0 and at most 100,"),
        (["--temperature", "nan"], "--temperature: must be a finite number"),
        (["--beta", "-0.1"], "--beta: must be at least 0"),
        (["--num-generations", "1"], "--num-generations: must be at least 2"),
        (["--seed", "-1"], "--seed: must be at least 0"),
        (["--loss-type", "bogus"], "--loss-type 'bogus': choose from grpo, dr_grpo, dapo"),
        (["--max-step", "3"], "unrecognized arguments: --max-step 3"),
        (["--max-steps", "many"], "--max-steps: invalid int value: 'many'"),
        (["--bf16", "true"], "--bf16 is decided by the GPU"),
        (["--lora", "--lora-target-modules", "q_proj,qproj"], "unknown name(s) ['qproj']"),
        (["--lora-r", "8"], "--lora-r without --lora has no effect"),
        (["--resume", "--overwrite"], "--resume and --overwrite: choose one"),
        (["--profile", "tiny", "--config", "configs/tiny.yaml"], "--config and --profile"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--per-device-train-batch-size", "100000"], "one step needs 12500 training prompts"),
        (["--train-size", "3"], "one step needs 4 training prompts"),
        (["--num-generations", "3"], "not a multiple of --num-generations 3"),
    ],
)
def test_train_grpo_refuses_bad_values_in_one_line(tmp_path, capsys, args, named):
    with pytest.raises(SystemExit) as caught:
        train_grpo.parse_args(["--model", "tiny", "--output-dir", str(tmp_path / "run"), *args])

    assert caught.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert named in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_batch_arithmetic_counts_every_process(tmp_path, monkeypatch, capsys):
    """8 completions per process x 2 processes = 16: not whole groups of 12."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["--model", "tiny", "--per-device-train-batch-size", "8", "--num-generations", "12"]

    with pytest.raises(SystemExit):
        train_grpo.parse_args([*argv, "--output-dir", str(tmp_path)])

    assert "x 2 process(es) = 16 completions per step" in capsys.readouterr().err


def test_help_grpo_lists_every_grpo_config_field_with_trls_help(capsys):
    from trl import GRPOConfig

    with pytest.raises(SystemExit) as caught:
        train_grpo.parse_args(["--help-grpo"])  # no --output-dir needed to ask

    assert caught.value.code == 0
    shown = capsys.readouterr().out
    fields = [name for name, f in GRPOConfig.__dataclass_fields__.items() if f.init]
    assert all(f"--{name}" in shown for name in fields)
    assert "Specifies the loss formulation" in shown  # TRL's own words


def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("mine")

    with pytest.raises(SystemExit):
        train_grpo.parse_args(["--output-dir", str(file)])

    assert f"--output-dir: {file} is a file" in capsys.readouterr().err
    assert file.read_text() == "mine"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--train-size", "-1", "--output-dir", "OUT"],
        ["--lora-target-modules", "qproj", "--output-dir", "OUT"],
        ["--output-dir", "FILE"],
    ],
    ids=["help", "bad-value", "bad-name", "output-is-a-file"],
)
def test_train_grpo_answers_before_importing_torch(tmp_path, args):
    """The command's own flags, not GRPOConfig fields: those are typed by TRL."""
    (tmp_path / "file").write_text("x")
    paths = {"OUT": str(tmp_path / "run"), "FILE": str(tmp_path / "file")}
    args = [re.sub("OUT|FILE", lambda m: paths[m.group()], a) for a in args]

    result = run_script("train_grpo.py", *args)

    assert heavy_imports(result) == ""
    if args != ["--help"]:
        assert result.returncode in (cli.EXIT_USER_ERROR, cli.EXIT_USAGE)
        assert "Traceback" not in result.stderr
        assert len(message(result).splitlines()) == 1, result.stderr
        assert message(result).startswith("train_grpo.py: error: ")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--limit", "0", "--output-dir", "OUT"],
        ["--model", "/no/such/model", "--output-dir", "OUT"],
        ["--model", "tiny", "--adapter", "OUT", "--output-dir", "OUT"],
    ],
    ids=["help", "bad-value", "missing-model-folder", "not-an-adapter"],
)
def test_evaluate_model_answers_before_importing_torch(tmp_path, args):
    args = [a.replace("OUT", str(tmp_path)) for a in args]

    result = run_script("evaluate_model.py", *args)

    assert heavy_imports(result) == ""
    if args != ["--help"]:
        assert result.returncode == cli.EXIT_USAGE
        assert len(message(result).splitlines()) == 1, result.stderr


def loaded_nothing(result: subprocess.CompletedProcess) -> bool:
    """No model was loaded: grpo.models prints one "[models] Loaded" line per model."""
    return "[models]" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [["--resume", "--output-dir", "OUT"], ["--model", "tiny", "--output-dir", "FILE/run"]],
    ids=["resume-nothing", "unwritable"],
)
def test_train_grpo_refuses_a_folder_before_loading_a_model(tmp_path, args):
    (tmp_path / "file").write_text("x")
    paths = {"OUT": str(tmp_path / "run"), "FILE": str(tmp_path / "file")}
    args = [re.sub("OUT|FILE", lambda m: paths[m.group()], a) for a in args]

    result = run_script("train_grpo.py", *args)

    assert result.returncode in (cli.EXIT_USER_ERROR, cli.EXIT_USAGE)
    assert loaded_nothing(result) and not (tmp_path / "run").exists()
    assert len(message(result).splitlines()) == 1, result.stderr
    assert message(result).startswith("train_grpo.py: error: ")


def test_gsm8k_dir_that_is_a_file_is_refused_before_loading(tmp_path):
    file = tmp_path / "train.jsonl"
    file.write_text('{"question": "q", "answer": "#### 1"}\n')
    env = {**os.environ, "GSM8K_DIR": str(file), "GRPO_USE_WANDB": "0"}

    result = run_script("train_grpo.py", "--output-dir", str(tmp_path / "run"), env=env)

    assert result.returncode == cli.EXIT_USER_ERROR
    assert loaded_nothing(result)
    assert "GSM8K_DIR" in message(result) and "is not a folder" in message(result)


def test_wandb_without_a_key_is_refused_before_loading(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(GRPO_USE_WANDB="1", HOME=str(tmp_path))  # HOME: no ~/.netrc from `wandb login`

    args = ["--model", "tiny", "--output-dir", str(tmp_path / "run")]
    result = run_script("train_grpo.py", *args, env=env)

    assert result.returncode == cli.EXIT_USER_ERROR
    assert loaded_nothing(result)
    assert "GRPO_USE_WANDB is on but wandb has no API key" in message(result)


def test_lora_targets_are_qwen2_linear_layers(tiny_cache):
    from torch import nn
    from transformers import AutoModelForCausalLM

    from offline_demo.tiny_model import tiny_random_path

    model = AutoModelForCausalLM.from_pretrained(tiny_random_path())
    layers = model.named_modules()
    linear = {name.rsplit(".", 1)[-1] for name, m in layers if isinstance(m, nn.Linear)}
    assert set(LORA_TARGETS) == linear - {"lm_head"}


def test_evaluate_model_defaults_to_grpo_model(monkeypatch, tmp_path):
    monkeypatch.setenv("GRPO_MODEL", "tiny-random")
    assert evaluate_model.parse_args(["--output-dir", str(tmp_path)]).model == "tiny-random"
    monkeypatch.delenv("GRPO_MODEL")
    assert evaluate_model.parse_args(["--output-dir", str(tmp_path)]).model == "auto"


def test_sigterm_mid_write_leaves_no_temp_file_and_exits_143(tmp_path, capsys):
    def work():
        def write(handle):
            handle.write("half")
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the write

        artifacts._write_atomically(tmp_path / "metrics.json", write)

    with pytest.raises(SystemExit) as caught:
        cli.run_main("train_grpo.py", work)

    assert caught.value.code == cli.EXIT_TERMINATED
    assert list(tmp_path.iterdir()) == []
    assert "interrupted (SIGTERM)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch):
    def mistake():
        raise cli.UserError("no such thing")

    with pytest.raises(SystemExit) as caught:
        cli.run_main("x.py", mistake)
    assert caught.value.code == "x.py: error: no such thing"

    with pytest.raises(ZeroDivisionError):
        cli.run_main("x.py", lambda: 1 / 0)

    monkeypatch.setenv(cli.DEBUG_ENV_VAR, "1")
    with pytest.raises(cli.UserError):
        cli.run_main("x.py", mistake)


def test_a_folder_holding_a_finished_run_is_refused_before_loading(tmp_path):
    from grpo.run_dir import RunDir

    with RunDir(tmp_path, train_grpo.OUTPUTS, {}, owner="train_grpo.py") as claimed:
        (tmp_path / "metrics.json").write_text("{}")
        claimed.finish()

    result = run_script("train_grpo.py", "--model", "tiny", "--output-dir", str(tmp_path))

    assert result.returncode == cli.EXIT_USER_ERROR
    assert loaded_nothing(result)
    assert "already holds a run (status: complete; metrics.json)" in message(result)


def test_wandb_with_a_key_but_no_network_logs_offline(tmp_path, monkeypatch, capsys):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    monkeypatch.setenv("GRPO_USE_WANDB", "1")
    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")  # nobody listens there
    monkeypatch.setenv("WANDB_MODE", "")  # recorded, so the change below is undone

    train_grpo.check_environment(train_grpo.parse_args(["--output-dir", str(tmp_path)])[1])

    assert os.environ["WANDB_MODE"] == "offline"
    assert "logging offline" in capsys.readouterr().out


def test_only_the_known_deprecation_notices_are_hidden():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli.quiet_known_warnings()
        for text in (
            "`gradient_checkpointing` is deprecated and will be removed in v6.",
            "`is_gradient_checkpointing` is deprecated and will be removed in v6.",
            "something else is deprecated",
        ):
            warnings.warn(text, FutureWarning, stacklevel=1)

    assert [str(w.message) for w in caught] == ["something else is deprecated"]


def test_an_endpoint_that_is_no_url_is_refused_before_the_parser_imports_trl(monkeypatch, capsys):
    """huggingface_hub parses HF_ENDPOINT when TRL imports it: `--help-grpo` with
    `http://[::1` was a traceback, now the environment check's one line comes first."""
    monkeypatch.setenv("HF_ENDPOINT", "http://[::1")
    with pytest.raises(SystemExit, match=r"HF_ENDPOINT='http://\[::1' is not a URL"):
        train_grpo.main(["--help-grpo"])
    assert "usage" not in capsys.readouterr().out
