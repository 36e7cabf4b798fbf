"""Quick checks for whether the Hugging Face hub, ModelScope or wandb can be reached.

Libraries such as `datasets` and `modelscope` spend 20+ seconds retrying when the network
is down. Probing the host first takes milliseconds, so callers can fall back to local
files at once. Standard library only, so any module can import it cheaply.
"""

from __future__ import annotations

import functools
import netrc
import os
import socket
import threading
import urllib.parse
import urllib.request

TRUTHY_VALUES = frozenset({"1", "true", "yes", "on"})
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_MODELSCOPE_ENDPOINT = "https://www.modelscope.cn"


def env_flag(name: str) -> bool:
    """True when the environment variable `name` says 1, true, yes or on (any case): the one
    rule for every on/off setting (GRPO_USE_WANDB, GRPO_DEBUG, HF_HUB_OFFLINE, ...)."""
    return os.environ.get(name, "").strip().lower() in TRUTHY_VALUES


def is_offline_mode() -> bool:
    """True when the user asked the Hugging Face libraries to stay offline."""
    return any(env_flag(name) for name in OFFLINE_ENV_VARS)


def _try_connect(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, ValueError, OverflowError):
        # OSError: refused, unreachable or unknown host; the others: a malformed host or port.
        return False


@functools.cache  # functools.lru_cache without a size limit
def host_reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    """True if a TCP connection to host:port opens within `timeout` seconds. Never raises.

    The probe runs in a daemon thread because a DNS lookup ignores socket timeouts and
    can hang far longer on a machine with a dead resolver. Answers are cached for the
    life of the process; call `host_reachable.cache_clear()` after the network changes.
    """
    answer: list[bool] = []
    probe = threading.Thread(
        target=lambda: answer.append(_try_connect(host, port, timeout)), daemon=True
    )
    probe.start()
    probe.join(timeout)
    return bool(answer) and answer[0]


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """("hf-mirror.com", 443) from "https://hf-mirror.com" or a bare "hf-mirror.com"."""
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    parts = urllib.parse.urlsplit(endpoint)
    default_port = 80 if parts.scheme == "http" else 443
    return parts.hostname or "", parts.port or default_port


def endpoint_reachable(endpoint: str) -> bool:
    """Probe an endpoint URL, or the HTTPS proxy in front of it when one is configured.

    Behind a proxy the host itself may refuse direct connections while the libraries
    reach it fine through the proxy, so the proxy is the thing worth probing.
    """
    try:
        host, port = split_endpoint(endpoint)
        proxies = urllib.request.getproxies()
        proxy = proxies.get("https") or proxies.get("all")
        if proxy and not urllib.request.proxy_bypass(host):
            host, port = split_endpoint(proxy)
    except ValueError:  # a malformed URL or port number
        return False
    return bool(host) and host_reachable(host, port)


def hub_endpoint() -> str:
    """The Hugging Face endpoint in use: HF_ENDPOINT (e.g. https://hf-mirror.com) or the default."""
    return os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_HUB_ENDPOINT


def modelscope_endpoint() -> str:
    """The ModelScope endpoint in use: MODELSCOPE_ENDPOINT, MODELSCOPE_DOMAIN or the default."""
    for name in ("MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return DEFAULT_MODELSCOPE_ENDPOINT


def hub_reachable() -> bool:
    """True when downloads from the Hugging Face hub (or its mirror) can work right now."""
    return not is_offline_mode() and endpoint_reachable(hub_endpoint())


def modelscope_reachable() -> bool:
    """True when ModelScope answers. The HF offline flags do not apply to ModelScope."""
    return endpoint_reachable(modelscope_endpoint())


DEFAULT_WANDB_ENDPOINT = "https://api.wandb.ai"
WANDB_LOCAL_MODES = frozenset({"offline", "disabled", "dryrun"})


def wandb_endpoint() -> str:
    """The Weights & Biases server in use: WANDB_BASE_URL (a self-hosted one) or the default."""
    return os.environ.get("WANDB_BASE_URL", "").strip() or DEFAULT_WANDB_ENDPOINT


def wandb_key_available() -> bool:
    """True if wandb can find an API key: WANDB_API_KEY, or a ~/.netrc entry (`wandb login`)."""
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host, _ = split_endpoint(wandb_endpoint())
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_offline_fallback() -> bool:
    """Switch wandb to offline mode (WANDB_MODE=offline) when its server cannot be reached.

    Without this, wandb retries for about 100 s and then crashes the run. Offline runs are
    logged under ./wandb and can be uploaded later with `wandb sync`. True if it switched.
    """
    if os.environ.get("WANDB_MODE", "").strip().lower() in WANDB_LOCAL_MODES:
        return False
    if endpoint_reachable(wandb_endpoint()):
        return False
    os.environ["WANDB_MODE"] = "offline"
    print(
        f"[wandb] {wandb_endpoint()} is unreachable: logging offline to ./wandb "
        "(upload later with `wandb sync`)."
    )
    return True
