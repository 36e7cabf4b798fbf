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


def test_model_and_gsm8k_through_modelscope_when_the_hub_is_down(hubs, tmp_path):
    """The hub refuses: one line says so and that ModelScope is next, then both the model
    and the data come from ModelScope."""
    result = run(online_env(tmp_path, closed_port_url(), hubs.modelscope.url), "-c", FETCH)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])

    assert got["config"] and got["rows"] == [ROWS, ROWS]
    assert got["origin"] == f"ModelScope via {hubs.modelscope.url} (revision master)"
    assert all(f"{MODELSCOPE_DATASET} via {hubs.modelscope.url}" in s for s in got["data"])
    moved_on = [line for line in result.stdout.splitlines() if "trying ModelScope" in line]
    assert len(moved_on) == 1 and "Hugging Face hub failed" in moved_on[0]


LEARNER_RUN = (
    "--profile", "learner", "--model", "real", "--allow-cpu", "--train-size", "2",
    "--eval-size", "2", "--max-steps", "1", "--num-generations", "2",
    "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1",
    "--max-completion-length", "4", "--save-strategy", "no", "--skip-eval",
)  # fmt: skip
# --skip-eval: the learner profile's before/after evaluations generate 512 tokens a question
# from the stand-in's random body (evaluate_model.py's test below covers evaluation).


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """One fresh cache folder for the hub tests below: the learner run fills it, the
    later tests use what it left (each test still runs in its own subprocess)."""
    return tmp_path_factory.mktemp("hub-cache")


def test_learner_run_trains_on_the_hubs_model_and_records_every_source(hubs, hub_cache):
    """A fresh cache and HF_ENDPOINT set: model and data come from that hub, although
    ModelScope answers too (it gets no request); run.json and metrics.json say so."""
    output = hub_cache / "run"
    asked_before = len(hubs.modelscope.requests)
    env = online_env(hub_cache, hubs.hub, hubs.modelscope.url)
    result = run(env, "train_grpo.py", "--output-dir", str(output), *LEARNER_RUN, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    metrics = json.loads((output / "metrics.json").read_text())
    record = json.loads((output / "run.json").read_text())
    assert metrics["model"] == MODEL_ID and metrics["steps"] == 1
    for recorded in (metrics, record):
        assert recorded["model_source"].startswith(f"the Hugging Face hub via {hubs.hub} (rev")
        assert set(recorded["data_sources"]) == {"train", "eval"}
        assert all(f"via {hubs.hub}" in s for s in recorded["data_sources"].values())
    assert len(hubs.modelscope.requests) == asked_before


def test_with_the_hub_down_the_refusal_names_the_cached_copy(hub_cache):
    """The caches hold model and data, the hub is gone: a learner run refuses before
    anything loads, naming HF_HUB_OFFLINE=1 (the way that works) and no mirror to set,
    since HF_ENDPOINT already names one."""
    down = online_env(hub_cache, closed_port_url(), closed_port_url())
    output = hub_cache / "refused"
    result = run(down, "train_grpo.py", "--output-dir", str(output), *LEARNER_RUN)

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "set HF_HUB_OFFLINE=1 to use it" in result.stderr
    assert "such as https://hf-mirror.com" not in result.stderr
    assert not output.exists()


def test_evaluate_model_real_from_the_cache_records_the_resolved_model(hub_cache):
    """HF_HUB_OFFLINE=1 with the hub down: model and questions come from the cache, and
    metrics.json names the model resolved, not the word "real", with its source."""
    output = hub_cache / "eval"
    env = {**online_env(hub_cache, closed_port_url(), closed_port_url()), "HF_HUB_OFFLINE": "1"}
    result = run(
        env, "evaluate_model.py", "--model", "real", "--limit", "2", "--max-new-tokens", "4",
        "--output-dir", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["model"], metrics["model_requested"]) == (MODEL_ID, "real")
    assert metrics["model_source"].startswith("the Hugging Face cache (revision ")
    assert "the Hugging Face cache (openai/gsm8k" in metrics["data_source"]
    assert metrics["num_examples"] == 2


INFERENCE_NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("0[1-3]_*.ipynb"))


@pytest.mark.parametrize("notebook", INFERENCE_NOTEBOOKS)
def test_inference_notebooks_run_on_the_real_model_id_from_the_hub(hubs, hub_cache, notebook):
    """GRPO_MODEL=real with the hub answering: the path of every learner with network (and
    of every CUDA machine, where auto means real). Run top to bottom, outputs unchecked:
    the stand-in's random body writes other words than Qwen would."""
    output = hub_cache / "notebooks"
    env = online_env(hub_cache, hubs.hub, closed_port_url(), GRPO_MODEL="real")
    command = (
        "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output-dir",
        str(output), "--ExecutePreprocessor.timeout=300", str(REPO / "notebooks" / notebook),
    )  # fmt: skip
    result = run(env, *command, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
