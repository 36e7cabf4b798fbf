"""Failing sources on loopback: a hub that accepts and never answers, a ModelScope that
answers 500, one that drops the connection mid-file. Each run ends in seconds, with the
next source or one clear line, and leaves nothing in a cache that a later run would trust.

No olah here: the failing servers are tests/hub's, and the commands run in subprocesses with
fresh caches and the offline variables unset (as in tests/test_online.py).
"""

from __future__ import annotations

import time

import pytest

from tests.hub import MODEL_ID, closed_port_url, stalled_server
from tests.hub.modelscope_server import modelscope_server
from tests.test_online import online_env, run

pytestmark = pytest.mark.slow
RESOLVE = "from grpo.models import origin, resolve_model; print(origin(resolve_model('real')))"


def one_line_refusal(result, started: float, limit_s: float) -> str:
    """The run stopped with status 1 and one line on stderr, within `limit_s` seconds."""
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert elapsed < limit_s, f"took {elapsed:.0f} s"
    return result.stderr


def test_a_stalled_hub_and_modelscope_stop_a_learner_run_in_seconds(tmp_path):
    """Both accept the connection and never answer (the stall mainland China often gives):
    the run stops before writing anything, with one line naming both and the ways out."""
    output = tmp_path / "run"
    with stalled_server() as hub, stalled_server() as modelscope:
        env = online_env(tmp_path, hub, modelscope)
        started = time.monotonic()
        result = run(
            env, "train_grpo.py", "--output-dir", str(output), "--profile", "learner",
            "--model", "real", "--allow-cpu",
        )  # fmt: skip
    stderr = one_line_refusal(result, started, limit_s=30)
    assert f"{hub} no answer within" in stderr and f"{modelscope} no answer within" in stderr
    assert "GSM8K_DIR" in stderr and not output.exists()


def test_a_stalled_hub_costs_the_model_seconds_then_modelscope_has_it(tmp_path, qwen_standin_dir):
    with stalled_server() as hub, modelscope_server({MODEL_ID: qwen_standin_dir}, {}) as ms:
        started = time.monotonic()
        result = run(online_env(tmp_path, hub, ms.url), "-c", RESOLVE)
    assert result.returncode == 0, result.stderr[-3000:]
    # The stall costs the probe's 3 s; the rest is the imports and ModelScope's download
    # (39 s in all on a 2-core machine at load 9). Without the probe: minutes.
    assert time.monotonic() - started < 60
    assert f"the Hugging Face hub failed ({hub} no answer within" in result.stdout
    assert result.stdout.strip().endswith(f"ModelScope via {ms.url} (revision master)")


@pytest.mark.parametrize("failure", [dict(fail_with=500), dict(drop_after=4096)])
def test_a_failing_modelscope_ends_in_one_line_and_leaves_no_trusted_file(
    tmp_path, qwen_standin_dir, failure
):
    """ModelScope answers 500, or drops every file after 4 kB; the hub refuses. The run
    stops with one line; then, ModelScope gone too, nothing in its cache passes for the
    model (the next run asks the sources again instead of loading half a file)."""
    output = tmp_path / "eval"
    command = ("evaluate_model.py", "--model", "real", "--limit", "1", "--output-dir", str(output))
    with modelscope_server({MODEL_ID: qwen_standin_dir}, {}, **failure) as ms:
        env = online_env(tmp_path, closed_port_url(), ms.url)
        started = time.monotonic()
        result = run(env, *command)
    stderr = one_line_refusal(result, started, limit_s=45)
    assert f"Could not get '{MODEL_ID}'" in stderr and "ModelScope" in stderr

    assert not output.exists()

    later = run({**env, "MODELSCOPE_ENDPOINT": closed_port_url()}, "-c", RESOLVE)
    assert later.returncode == 1
    assert f"ModelUnavailable: Could not get '{MODEL_ID}'" in later.stderr
