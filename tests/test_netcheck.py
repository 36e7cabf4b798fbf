"""Tests for netcheck.py: offline flags, the HTTP probe and which endpoints get probed."""

import http.server
import os
import socket
import threading
import time

import pytest

import netcheck

PROXY_ENV_VARS = tuple(f"{scheme}_proxy" for scheme in ("http", "https", "all", "no")) + tuple(
    f"{scheme.upper()}_PROXY" for scheme in ("http", "https", "all", "no")
)


@pytest.fixture(autouse=True)
def clean_network_env(monkeypatch):
    """Every test starts online, without proxies or mirrors, and with an empty probe cache."""
    for name in (*netcheck.OFFLINE_ENV_VARS, *PROXY_ENV_VARS):
        monkeypatch.delenv(name, raising=False)
    for name in ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN"):
        monkeypatch.delenv(name, raising=False)
    netcheck.http_problem.cache_clear()


@pytest.fixture
def probed(monkeypatch):
    """Replace the HTTP probe with a recorder of (url, proxy) that says every URL answers."""
    calls = []

    def record(url, proxy, timeout=netcheck.PROBE_TIMEOUT_S):
        calls.append((url, proxy))

    monkeypatch.setattr(netcheck, "http_problem", record)
    return calls


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.hits += 1
        self.send_response(404)  # any status counts: the server answers
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A loopback HTTP server; yields (url, server), server.hits counting its requests."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.hits = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes", "on", " 1 "])
@pytest.mark.parametrize("name", netcheck.OFFLINE_ENV_VARS)
def test_truthy_offline_variables_mean_offline(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert netcheck.is_offline_mode()


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "maybe"])
def test_other_values_do_not_mean_offline(monkeypatch, value):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert not netcheck.is_offline_mode()


def test_no_offline_variables_means_online():
    assert not netcheck.is_offline_mode()


def test_an_http_server_answering_404_is_reachable(http_server):
    url, server = http_server
    assert netcheck.endpoint_reachable(url) and server.hits == 1


def test_closed_port_is_unreachable_and_answers_quickly():
    start = time.perf_counter()
    problem = netcheck.endpoint_problem(f"http://127.0.0.1:{closed_port()}")
    assert "unreachable" in problem and "ConnectionRefusedError" in problem
    assert time.perf_counter() - start < 1.5


def test_a_server_that_accepts_and_never_answers_costs_the_timeout_only():
    """The kernel accepts connections into the listener's backlog; no answer ever comes.
    A TCP probe called this reachable; the HTTP probe gives up after its timeout."""
    with socket.create_server(("127.0.0.1", 0)) as stalled:
        url = f"http://127.0.0.1:{stalled.getsockname()[1]}"
        start = time.perf_counter()
        problem = netcheck.http_problem(url, None, timeout=1.0)
    assert problem == "no answer within 1 s"
    assert time.perf_counter() - start < 2.5


@pytest.mark.parametrize("url", ["http://no-such-host.invalid", "http://127.0.0.1:70000"])
def test_bad_hosts_and_ports_give_a_problem_instead_of_raising(url):
    assert netcheck.http_problem(url, None, timeout=1.0) is not None


def test_a_run_probes_each_endpoint_once(monkeypatch, http_server):
    """A run asks "is the hub reachable?" from several places (data, model choice, ...):
    only the first question costs a request; a mirror set later is a new endpoint and is
    probed afresh, not answered from the old one."""
    url, server = http_server
    monkeypatch.setenv("HF_ENDPOINT", url)
    assert all(netcheck.hub_reachable() for _ in range(3))
    monkeypatch.setenv("HF_ENDPOINT", f"{url}/")  # the same endpoint, written differently
    assert netcheck.hub_reachable()
    monkeypatch.setenv("HF_ENDPOINT", f"http://localhost:{server.server_address[1]}")
    assert netcheck.hub_reachable()
    assert server.hits == 2


@pytest.mark.parametrize(
    "endpoint, expected",
    [
        ("https://hf-mirror.com", ("hf-mirror.com", 443)),
        ("hf-mirror.com", ("hf-mirror.com", 443)),
        ("http://localhost:8080/", ("localhost", 8080)),
        ("http://proxy.example", ("proxy.example", 80)),
    ],
)
def test_split_endpoint(endpoint, expected):
    assert netcheck.split_endpoint(endpoint) == expected


def test_hub_probe_defaults_to_huggingface(probed):
    assert netcheck.hub_reachable()
    assert probed == [("https://huggingface.co", None)]


def test_hub_probe_follows_hf_endpoint(monkeypatch, probed):
    monkeypatch.setenv("HF_ENDPOINT", "hf-mirror.com/")
    assert netcheck.hub_reachable() and netcheck.hub_endpoint_chosen()
    assert probed == [("https://hf-mirror.com", None)]


def test_hub_is_unreachable_in_offline_mode_without_probing(monkeypatch, probed):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not netcheck.hub_reachable()
    assert "offline mode" in netcheck.hub_problem()
    assert probed == []


def test_modelscope_probe_defaults_and_follows_modelscope_domain(monkeypatch, probed):
    assert netcheck.modelscope_reachable()
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "modelscope.example.cn")
    assert netcheck.modelscope_reachable()
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:8000")
    assert netcheck.modelscope_reachable()
    assert [url for url, _ in probed] == [
        "https://www.modelscope.cn",
        "https://modelscope.example.cn",
        "http://127.0.0.1:8000",
    ]


def test_modelscope_ignores_hugging_face_offline_flags(monkeypatch, probed):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert netcheck.modelscope_reachable()


def test_an_https_endpoint_is_probed_through_the_https_proxy(monkeypatch, probed):
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("http_proxy", "http://other.example:3128")
    assert netcheck.hub_reachable()
    assert probed == [("https://huggingface.co", "http://proxy.example:3128")]


def test_proxies_apply_as_the_libraries_apply_them(monkeypatch, http_server):
    """An http endpoint goes through http_proxy only: a dead https_proxy does not make it
    unreachable, a dead http_proxy does (and the problem names the proxy); no_proxy wins."""
    url, _ = http_server
    dead = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("https_proxy", dead)
    assert netcheck.endpoint_problem(url) is None
    monkeypatch.setenv("http_proxy", dead)
    assert f"(through the proxy {dead})" in netcheck.endpoint_problem(url)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert netcheck.endpoint_problem(url) is None


def test_malformed_endpoint_is_unreachable(monkeypatch, probed):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com:notaport")
    assert not netcheck.hub_reachable()
    assert probed == []


# ---------------------------------------------------------------------------------------------
# wandb: probed like the hub, so a run without network logs offline instead of hanging
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    """No wandb settings, and a HOME without a ~/.netrc."""
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE"):
        monkeypatch.setenv(name, "")  # recorded, so a value set by the code is undone too
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_wandb_probe_defaults_to_api_wandb_ai_and_follows_base_url(wandb_env, monkeypatch, probed):
    assert not netcheck.wandb_offline_fallback()
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.internal:8080")
    assert not netcheck.wandb_offline_fallback()
    assert [url for url, _ in probed] == ["https://api.wandb.ai", "http://wandb.internal:8080"]


def test_unreachable_wandb_switches_to_offline_mode_with_a_notice(wandb_env, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")  # nobody there

    assert netcheck.wandb_offline_fallback()
    assert os.environ["WANDB_MODE"] == "offline"
    assert "unreachable: logging offline" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_wandb_already_local_is_not_probed(wandb_env, monkeypatch, probed, mode):
    monkeypatch.setenv("WANDB_MODE", mode)
    assert not netcheck.wandb_offline_fallback()
    assert probed == []


def test_wandb_key_comes_from_the_environment_or_netrc(wandb_env, monkeypatch):
    assert not netcheck.wandb_key_available()
    (wandb_env / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
    (wandb_env / ".netrc").chmod(0o600)
    assert netcheck.wandb_key_available()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.internal")  # the key is per host
    assert not netcheck.wandb_key_available()
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert netcheck.wandb_key_available()


# One rule for every on/off environment variable.
BOOLEAN_SETTINGS = ("GRPO_USE_WANDB", "GRPO_DEBUG", *netcheck.OFFLINE_ENV_VARS)


@pytest.mark.parametrize("name", BOOLEAN_SETTINGS)
@pytest.mark.parametrize(
    ("value", "on"),
    [("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("On", True)]
    + [("0", False), ("false", False), ("no", False), ("", False), ("2", False), ("y", False)],
)
def test_every_boolean_setting_reads_the_same_values_as_on(monkeypatch, name, value, on):
    from grpo.cli import debug_requested

    monkeypatch.setenv(name, value)
    assert netcheck.env_flag(name) is on
    if name == "GRPO_DEBUG":  # the command lines' --debug switch reads it through the rule
        assert debug_requested(False) is on
    monkeypatch.delenv(name)
    assert netcheck.env_flag(name) is False
