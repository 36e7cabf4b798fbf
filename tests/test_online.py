"""The online path against real hubs on loopback: what a learner's first run does.

`hubs` serves the Qwen stand-in as Qwen/Qwen2.5-0.5B-Instruct and a few GSM8K rows as
openai/gsm8k from olah (a real Hugging Face mirror, offline-mirror mode), and both again
from tests/hub/modelscope_server.py as ModelScope. Every command runs in a subprocess with
fresh caches, the offline variables unset, and HF_ENDPOINT and MODELSCOPE_ENDPOINT on
127.0.0.1, so nothing can leave the machine. The libraries read their endpoints when first
imported, which is one more reason for subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.hub import (
    CLEARED_VARIABLES,
    MODEL_ID,
    MODELSCOPE_DATASET,
    build_mirrors,
    closed_port_url,
    olah_hub,
    olah_venv,
    write_gsm8k,
)
from tests.hub.modelscope_server import modelscope_server

REPO = Path(__file__).resolve().parents[1]
ROWS = 8  # GSM8K rows per split on the loopback hubs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hubs(qwen_standin_dir, tmp_path_factory):
    """olah and the ModelScope test server, both serving the stand-in and GSM8K."""
    from offline_demo.cache import cache_root

    work = tmp_path_factory.mktemp("hubs")
    cli = olah_venv(cache_root())
    mirrors = build_mirrors(work, qwen_standin_dir, ROWS)
    gsm8k = write_gsm8k(work / "modelscope-gsm8k", ROWS)
    models, data_sets = {MODEL_ID: qwen_standin_dir}, {MODELSCOPE_DATASET: gsm8k}
    with olah_hub(cli, mirrors, work) as hub, modelscope_server(models, data_sets) as ms:
        yield SimpleNamespace(hub=hub, modelscope=ms)


def online_env(tmp_path: Path, hub: str, modelscope: str, **extra: str) -> dict[str, str]:
    """The environment of a learner online: fresh caches, no offline or proxy variable, the
    two endpoints on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_VARIABLES}
    env.update(
        HF_ENDPOINT=hub,
        MODELSCOPE_ENDPOINT=modelscope,
        HF_HOME=str(tmp_path / "hf-home"),
        MODELSCOPE_CACHE=str(tmp_path / "ms-cache"),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        **extra,
    )
    return env


def run(env: dict, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


FETCH = """
import json
import data
from grpo.models import origin, resolve_model
path = resolve_model("real")
train = data.load_gsm8k("train", allow_excerpt=False)
test = data.load_gsm8k("test", allow_excerpt=False)
print(json.dumps({"origin": origin(path), "config": (path / "config.json").is_file(),
                  "rows": [len(train), len(test)],
                  "data": [train.info.description, test.info.description]}))
"""


def fetch(env: dict) -> dict:
    result = run(env, "-c", FETCH)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "output": result.stdout}


def test_model_and_gsm8k_through_the_hub_that_hf_endpoint_names(hubs, tmp_path):
    """HF_ENDPOINT set: the model comes from that hub, like the data, although ModelScope
    answers too (it gets no request)."""
    asked_before = len(hubs.modelscope.requests)
    got = fetch(online_env(tmp_path, hubs.hub, hubs.modelscope.url))

    assert got["config"] and got["rows"] == [ROWS, ROWS]
    assert got["origin"].startswith(f"the Hugging Face hub via {hubs.hub} (revision ")
    assert all(f"openai/gsm8k via {hubs.hub}" in split for split in got["data"])
    assert len(hubs.modelscope.requests) == asked_before


def test_model_and_gsm8k_through_modelscope_when_the_hub_is_down(hubs, tmp_path):
    """The hub refuses: one line says so and that ModelScope is next, then both the model
    and the data come from ModelScope."""
    got = fetch(online_env(tmp_path, closed_port_url(), hubs.modelscope.url))

    assert got["config"] and got["rows"] == [ROWS, ROWS]
    assert got["origin"] == f"ModelScope via {hubs.modelscope.url} (revision master)"
    assert all(f"{MODELSCOPE_DATASET} via {hubs.modelscope.url}" in s for s in got["data"])
    moved_on = [line for line in got["output"].splitlines() if "trying ModelScope" in line]
    assert len(moved_on) == 1 and "Hugging Face hub failed" in moved_on[0]


def test_evaluate_model_real_records_the_resolved_model_and_its_source(hubs, tmp_path):
    output = tmp_path / "eval"
    env = online_env(tmp_path, hubs.hub, closed_port_url())
    result = run(
        env, "evaluate_model.py", "--model", "real", "--limit", "2", "--max-new-tokens", "4",
        "--output-dir", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["model"], metrics["model_requested"]) == (MODEL_ID, "real")
    assert metrics["model_source"].startswith(f"the Hugging Face hub via {hubs.hub}")
    assert f"via {hubs.hub}" in metrics["data_source"] and metrics["num_examples"] == 2


LEARNER_RUN = (
    "--profile", "learner", "--model", "real", "--allow-cpu", "--train-size", "2",
    "--eval-size", "2", "--max-steps", "1", "--num-generations", "2",
    "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1",
    "--max-completion-length", "4", "--save-strategy", "no",
)  # fmt: skip


def test_learner_run_trains_on_the_hubs_model_and_records_every_source(hubs, tmp_path):
    output = tmp_path / "run"
    env = online_env(tmp_path, hubs.hub, closed_port_url())
    start = time.monotonic()
    result = run(env, "train_grpo.py", "--output-dir", str(output), *LEARNER_RUN, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    print(f"learner run: {time.monotonic() - start:.0f} s")

    metrics = json.loads((output / "metrics.json").read_text())
    record = json.loads((output / "run.json").read_text())
    assert metrics["model"] == MODEL_ID and metrics["steps"] == 1
    for recorded in (metrics, record):
        assert recorded["model_source"].startswith(f"the Hugging Face hub via {hubs.hub}")
        assert set(recorded["data_sources"]) == {"train", "eval"}
        assert all(f"via {hubs.hub}" in s for s in recorded["data_sources"].values())


def test_cached_model_and_data_serve_a_run_when_the_hub_is_down(hubs, tmp_path):
    """After one online run the caches hold both; with the hub gone the model comes from
    the cache at once, and the data refusal names HF_HUB_OFFLINE=1, which then works."""
    fetch(online_env(tmp_path, hubs.hub, closed_port_url()))
    down = online_env(tmp_path, closed_port_url(), closed_port_url())
    result = run(down, "-c", FETCH)
    assert result.returncode == 1
    assert "set HF_HUB_OFFLINE=1 to use it" in result.stderr

    got = fetch({**down, "HF_HUB_OFFLINE": "1"})
    assert got["origin"].startswith("the Hugging Face cache (revision ")
    assert all("the Hugging Face cache" in split for split in got["data"])
