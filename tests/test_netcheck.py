"""Tests for netcheck.py: offline flags, the TCP probe and which endpoints get probed."""

import os
import socket
import time

import pytest

import netcheck

PROXY_ENV_VARS = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(autouse=True)
def clean_network_env(monkeypatch):
    """Every test starts online, without proxies or mirrors, and with an empty probe cache."""
    for name in (*netcheck.OFFLINE_ENV_VARS, *PROXY_ENV_VARS):
        monkeypatch.delenv(name, raising=False)
    for name in ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN"):
        monkeypatch.delenv(name, raising=False)
    netcheck.host_reachable.cache_clear()


@pytest.fixture
def probed_hosts(monkeypatch):
    """Replace the TCP probe with a recorder that says every host is reachable."""
    calls = []

    def record(host, port=443, timeout=2.0):
        calls.append((host, port))
        return True

    monkeypatch.setattr(netcheck, "host_reachable", record)
    return calls


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


def test_listening_localhost_socket_is_reachable():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert netcheck.host_reachable("127.0.0.1", port)


def test_closed_port_is_unreachable_and_answers_quickly():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    start = time.perf_counter()
    assert not netcheck.host_reachable("127.0.0.1", port, timeout=1.0)
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize("host, port", [("no-such-host.invalid", 443), ("127.0.0.1", 70000)])
def test_bad_hosts_and_ports_give_false_instead_of_raising(host, port):
    assert not netcheck.host_reachable(host, port, timeout=1.0)


def connections_received(server: socket.socket) -> int:
    """How many connections reached `server` (they wait in its backlog until accepted)."""
    server.settimeout(0.2)
    count = 0
    while True:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            return count
        connection.close()
        count += 1


def test_a_run_probes_each_endpoint_once(monkeypatch):
    """A run asks "is the hub reachable?" from several places (data, model choice, ...):
    only the first question costs a connection (or, offline, the timeout); a mirror set
    later is a new endpoint and is probed afresh, not answered from the old one."""
    with (
        socket.create_server(("127.0.0.1", 0)) as hub,
        socket.create_server(("127.0.0.1", 0)) as mirror,
    ):
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{hub.getsockname()[1]}")
        assert all(netcheck.hub_reachable() for _ in range(3))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{mirror.getsockname()[1]}")
        assert netcheck.hub_reachable() and netcheck.hub_reachable()
        assert (connections_received(hub), connections_received(mirror)) == (1, 1)


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


def test_hub_probe_defaults_to_huggingface(probed_hosts):
    assert netcheck.hub_reachable()
    assert probed_hosts == [("huggingface.co", 443)]


def test_hub_probe_follows_hf_endpoint(monkeypatch, probed_hosts):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com")
    assert netcheck.hub_reachable()
    assert probed_hosts == [("hf-mirror.com", 443)]


def test_hub_is_unreachable_in_offline_mode_without_probing(monkeypatch, probed_hosts):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not netcheck.hub_reachable()
    assert probed_hosts == []


def test_modelscope_probe_defaults_and_follows_modelscope_domain(monkeypatch, probed_hosts):
    assert netcheck.modelscope_reachable()
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "modelscope.example.cn")
    assert netcheck.modelscope_reachable()
    assert probed_hosts == [("www.modelscope.cn", 443), ("modelscope.example.cn", 443)]


def test_modelscope_ignores_hugging_face_offline_flags(monkeypatch, probed_hosts):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert netcheck.modelscope_reachable()


def test_with_an_https_proxy_the_proxy_is_probed(monkeypatch, probed_hosts):
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert netcheck.hub_reachable()
    assert probed_hosts == [("proxy.example", 3128)]


def test_malformed_endpoint_is_unreachable(monkeypatch, probed_hosts):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com:notaport")
    assert not netcheck.hub_reachable()
    assert probed_hosts == []


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


def test_wandb_probe_defaults_to_api_wandb_ai_and_follows_base_url(
    wandb_env, monkeypatch, probed_hosts
):
    assert not netcheck.wandb_offline_fallback()
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.internal:8080")
    assert not netcheck.wandb_offline_fallback()
    assert probed_hosts == [("api.wandb.ai", 443), ("wandb.internal", 8080)]


def test_unreachable_wandb_switches_to_offline_mode_with_a_notice(wandb_env, monkeypatch, capsys):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")  # nobody listens there

    assert netcheck.wandb_offline_fallback()
    assert os.environ["WANDB_MODE"] == "offline"
    assert "unreachable: logging offline" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_wandb_already_local_is_not_probed(wandb_env, monkeypatch, probed_hosts, mode):
    monkeypatch.setenv("WANDB_MODE", mode)
    assert not netcheck.wandb_offline_fallback()
    assert probed_hosts == []


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
