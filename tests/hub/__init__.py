"""Hubs on loopback for the online tests: a real Hugging Face mirror (olah, in offline-mirror
mode) and a small ModelScope server of our own, both serving the Qwen stand-in under its real
id and a few GSM8K rows under theirs. Nothing here listens on anything but 127.0.0.1.

    python -m tests.hub      # (make hub) start both by hand and print the variables to set
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OLAH = "olah==0.5.4"
MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"
HUB_DATASET = "openai/gsm8k"
MODELSCOPE_DATASET = "modelscope/gsm8k"
LOOPBACK = "127.0.0.1"
# Variables that would keep the libraries offline, point them elsewhere, or route them
# through a proxy: an online test clears every one of them first.
CLEARED_VARIABLES = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_ENDPOINT",
    "MODELSCOPE_DOMAIN",
    "GRPO_DATA_SOURCE",
    "GSM8K_DIR",
    "GRPO_MODEL",
    *(f"{name}_proxy" for name in ("http", "https", "all", "HTTP", "HTTPS", "ALL")),
)
DATASET_CARD = """---
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train-*
  - split: test
    path: main/test-*
---
# GSM8K (a few rows, for the loopback hub)
"""


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it; the caller binds it next)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_until_ready(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Return once `url` answers any HTTP status; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server behind {url} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (two test processes may install at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def olah_venv(root: Path) -> Path:
    """olah-cli from a venv of its own under `root` (its dependencies would clash with the
    project's), installed once with uv when this Python has it (seconds), else pip."""
    venv = root / "olah-0.5.4"
    cli = venv / "bin" / "olah-cli"
    done = venv / ".installed"
    with _locked(root / ".olah.lock"):
        if done.is_file():
            return cli
        shutil.rmtree(venv, ignore_errors=True)  # a half-done install of ours
        uv = Path(sys.executable).with_name("uv")
        if uv.is_file():
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, venv], check=True)
            install = [uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", OLAH]
        else:
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            install = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", OLAH]
        subprocess.run(install, check=True, timeout=300)
        done.touch()
    return cli


def _git_repo(folder: Path) -> None:
    """`folder` as a git repository with one commit on `main` (olah serves commits)."""
    git = ["git", "-C", str(folder), "-c", "user.name=hub", "-c", "user.email=hub@localhost"]
    git += ["-c", "core.looseCompression=0"]  # random weights do not compress: save the time
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(folder)], check=True)
    subprocess.run([*git, "add", "--all"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "mirror"], check=True)


def build_model(folder: Path) -> Path:
    """The Qwen stand-in (real tokenizer and config, tiny random body) in `folder`."""
    from offline_demo.qwen_standin import build_standin

    return build_standin(folder)


def write_gsm8k(folder: Path, rows: int) -> Path:
    """The first `rows` rows of each split of the shipped excerpt as GSM8K's parquet files,
    with the dataset card whose `configs:` names config `main` (as on the hub)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from data import read_jsonl

    (folder / "main").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        records = read_jsonl(REPO / "assets" / "gsm8k_excerpt" / f"{split}.jsonl")[:rows]
        columns = [{"question": r["question"], "answer": r["answer"]} for r in records]
        table = pa.Table.from_pylist(columns)
        pq.write_table(table, folder / "main" / f"{split}-00000-of-00001.parquet")
    (folder / "README.md").write_text(DATASET_CARD, encoding="utf-8")
    return folder


def build_mirrors(root: Path, model: Path, rows: int) -> Path:
    """olah's mirrors folder: models/Qwen/... and datasets/openai/gsm8k as git repos."""
    mirrors = root / "mirrors"
    model_repo = mirrors / "models" / MODEL_ID
    shutil.copytree(model, model_repo)
    _git_repo(model_repo)
    data_repo = write_gsm8k(mirrors / "datasets" / HUB_DATASET, rows)
    _git_repo(data_repo)
    return mirrors


def olah_config(mirrors: Path, port: int, repos: Path) -> str:
    netloc = f"{LOOPBACK}:{port}"
    allow = "".join(
        f'\n[[accessibility.proxy]]\nrepo = "{repo}"\nallow = true\n'
        for repo in (MODEL_ID, HUB_DATASET)
    )
    return (
        f'[basic]\nhost = "{LOOPBACK}"\nport = {port}\nrepos-path = "{repos}"\n'
        f'mirror-netloc = "{netloc}"\nmirror-lfs-netloc = "{netloc}"\n'
        f'mirrors-path = ["{mirrors}"]\n\n[accessibility]\noffline = true\n{allow}'
    )


@contextlib.contextmanager
def olah_hub(cli: Path, mirrors: Path, work: Path, timeout: float = 30) -> Iterator[str]:
    """olah serving `mirrors` on a free loopback port; yields its URL, stops it after."""
    port = free_port()
    config = work / "olah.toml"
    config.write_text(olah_config(mirrors, port, work / "olah-repos"), encoding="utf-8")
    log = (work / "olah.log").open("w")
    server = subprocess.Popen(
        [cli, "--config", config], stdout=log, stderr=subprocess.STDOUT, cwd=work
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        try:
            wait_until_ready(url, timeout, server)
        except RuntimeError as error:  # say why: the end of olah's own log
            log.flush()
            tail = (work / "olah.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"olah did not start: {error}\n{tail}") from None
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@contextlib.contextmanager
def stalled_server() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel completes the handshake for its
    backlog) and never answers: the hub a stalled network gives. Yields its URL."""
    with socket.create_server((LOOPBACK, 0), backlog=64) as listener:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"


def closed_port_url() -> str:
    """A loopback URL nobody listens on: a source that refuses at once."""
    return f"http://{LOOPBACK}:{free_port()}"


def main() -> None:
    """Start both hubs by hand (make hub) until Ctrl-C."""
    import tempfile

    from offline_demo.cache import cache_root
    from tests.hub.modelscope_server import modelscope_server

    with tempfile.TemporaryDirectory(prefix="grpo-hub-") as tmp:
        work = Path(tmp)
        cli = olah_venv(cache_root())
        model = build_model(work / "standin")
        mirrors = build_mirrors(work, model, rows=300)
        data = write_gsm8k(work / "modelscope-gsm8k", rows=300)
        with (
            olah_hub(cli, mirrors, work) as hub,
            modelscope_server({MODEL_ID: model}, {MODELSCOPE_DATASET: data}) as modelscope,
        ):
            print(f"export HF_ENDPOINT={hub} MODELSCOPE_ENDPOINT={modelscope.url}")
            print("unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HF_DATASETS_OFFLINE   # Ctrl-C stops")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
