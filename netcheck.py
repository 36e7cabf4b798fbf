"""Quick checks for whether the Hugging Face hub, ModelScope or wandb can be reached.

Libraries such as `datasets` and `modelscope` spend 20+ seconds retrying when the network
is down, and wait far longer on a server that accepts the connection but never answers.
One HTTP request with a short timeout, sent the way the libraries send theirs (to the
endpoint they will use, through the proxy they will use), tells in seconds, so callers can
fall back to local files at once. Standard library only, so any module can import it cheaply.
"""

from __future__ import annotations

import functools
import http.client
import netrc
import os
import threading
import urllib.error
import urllib.parse
import urllib.request

TRUTHY_VALUES = frozenset({"1", "true", "yes", "on"})
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_MODELSCOPE_ENDPOINT = "https://www.modelscope.cn"
PROBE_TIMEOUT_S = 3.0


def env_flag(name: str) -> bool:
    """True when the environment variable `name` says 1, true, yes or on (any case): the one
    rule for every on/off setting (GRPO_USE_WANDB, GRPO_DEBUG, HF_HUB_OFFLINE, ...)."""
    return os.environ.get(name, "").strip().lower() in TRUTHY_VALUES


def is_offline_mode() -> bool:
    """True when the user asked the Hugging Face libraries to stay offline."""
    return any(env_flag(name) for name in OFFLINE_ENV_VARS)


def as_url(endpoint: str) -> str:
    """ "https://hf-mirror.com" from "https://hf-mirror.com/" or a bare "hf-mirror.com"."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """("hf-mirror.com", 443) from "https://hf-mirror.com" or a bare "hf-mirror.com"."""
    parts = urllib.parse.urlsplit(as_url(endpoint))
    default_port = 80 if parts.scheme == "http" else 443
    return parts.hostname or "", parts.port or default_port


def proxy_for(url: str) -> str | None:
    """The proxy a request to `url` goes through: the `<scheme>_proxy` (or `all_proxy`)
    variable, unless no_proxy exempts the host, the rule of requests, httpx and urllib."""
    scheme = urllib.parse.urlsplit(url).scheme
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(split_endpoint(url)[0]):
        return None
    return proxy


def _request(url: str, proxy: str | None, timeout: float) -> str | None:
    """None if `url` answers with any HTTP status, else what went wrong."""
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout):  # the status line is enough: no body read
            return None
    except urllib.error.HTTPError:  # any status: it answers (a mirror's root may say 500)
        return None
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except (OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", error)  # URLError wraps the socket's error
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout:.0f} s"
        return f"unreachable ({type(reason).__name__}: {str(reason)[:120]})"


@functools.cache  # functools.lru_cache without a size limit
def http_problem(url: str, proxy: str | None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """What stops an HTTP request to `url` (through `proxy`) within `timeout` seconds, or None
    when it answered. Never raises.

    The request runs in a daemon thread because a DNS lookup ignores socket timeouts and
    can hang far longer on a machine with a dead resolver. Answers are cached for the
    life of the process; call `http_problem.cache_clear()` after the network changes.
    """
    answer: list[str | None] = []
    probe = threading.Thread(
        target=lambda: answer.append(_request(url, proxy, timeout)), daemon=True
    )
    probe.start()
    probe.join(timeout + 1)
    return answer[0] if answer else f"no answer within {timeout:.0f} s"


def endpoint_problem(endpoint: str) -> str | None:
    """None when `endpoint` answers an HTTP request, through the proxy the libraries would
    use for it; else one short phrase, e.g. "http://127.0.0.1:9 unreachable (...)"."""
    try:
        url = as_url(endpoint)
        if not split_endpoint(url)[0]:
            return f"{endpoint} is not a URL"
        proxy = proxy_for(url)
    except ValueError:  # a malformed URL or port number
        return f"{endpoint} is not a URL"
    problem = http_problem(url, proxy)
    if problem is None:
        return None
    return f"{url} {problem}" + (f" (through the proxy {proxy})" if proxy else "")


def endpoint_reachable(endpoint: str) -> bool:
    return endpoint_problem(endpoint) is None


def hub_endpoint() -> str:
    """The Hugging Face endpoint in use: HF_ENDPOINT (e.g. https://hf-mirror.com) or the default."""
    return os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_HUB_ENDPOINT


def hub_endpoint_chosen() -> bool:
    """True when the user named a hub endpoint (HF_ENDPOINT): a mirror they chose on purpose."""
    return bool(os.environ.get("HF_ENDPOINT", "").strip())


def modelscope_endpoint() -> str:
    """The ModelScope endpoint in use: MODELSCOPE_ENDPOINT, MODELSCOPE_DOMAIN or the default."""
    for name in ("MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return DEFAULT_MODELSCOPE_ENDPOINT


def hub_problem() -> str | None:
    """Why the Hugging Face hub (or its mirror) cannot be used right now, or None."""
    if is_offline_mode():
        return "offline mode is on (HF_HUB_OFFLINE or a similar variable)"
    return endpoint_problem(hub_endpoint())


def modelscope_problem() -> str | None:
    """Why ModelScope cannot be used right now, or None. The HF offline flags do not apply."""
    return endpoint_problem(modelscope_endpoint())


def hub_reachable() -> bool:
    """True when downloads from the Hugging Face hub (or its mirror) can work right now."""
    return hub_problem() is None


def modelscope_reachable() -> bool:
    """True when ModelScope answers."""
    return modelscope_problem() is None


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


# Per-request limits for the download libraries, unless the user set their own: how long a
# server may stay silent (seconds), and how often a failed request is tried again. The
# probe catches a hub that never answers; these bound one that stalls mid-download.
# ModelScope's own defaults are 60 s and 5 retries per request; huggingface_hub's are
# already 10 s (HF_HUB_DOWNLOAD_TIMEOUT, HF_HUB_ETAG_TIMEOUT), so it is left as it is.
DOWNLOAD_LIMITS = {
    "MODELSCOPE_API_TIMEOUT": "15",
    "MODELSCOPE_API_MAX_RETRIES": "2",
    "MODELSCOPE_DOWNLOAD_TIMEOUT": "15",
    "MODELSCOPE_DOWNLOAD_MAX_RETRIES": "2",
}


def bound_download_times() -> None:
    """Set DOWNLOAD_LIMITS where the environment has none; the libraries read them when
    first imported, so call this before importing modelscope."""
    for name, value in DOWNLOAD_LIMITS.items():
        os.environ.setdefault(name, value)
