"""What both command lines share: strict argument types, one-line errors and exit codes.

Standard library only: a mistyped flag must be answered before torch, transformers and
TRL are imported (10-20 s on a laptop), not after the model has loaded.

Exit codes: 0 done (or nothing to do: one line says why); 1 a mistake the user can fix
(one line on stderr, no traceback); 2 a bad command line; 130 Ctrl-C; 143 SIGTERM; 129
SIGHUP (a closed terminal or SSH session). A
traceback means a bug, or that `--debug` / GRPO_DEBUG=1 asked for one.

Each kind of user error is turned into its line once, here in `run_main`: `UserError`,
and any exception whose class sets `is_user_error = True` (data.DataUnavailable,
grpo.models.ModelUnavailable: modules that must not import this one), and a full disk.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import sys
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

from netcheck import env_flag
from offline_demo.cache import CACHE_ENV_VAR

DEBUG_ENV_VAR = "GRPO_DEBUG"
EXIT_USER_ERROR, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit

# Deprecations inside TRL/transformers/peft that a learner can do nothing about; matched
# by message so that any new warning still shows.
KNOWN_WARNINGS = ((FutureWarning, r"`(is_)?gradient_checkpointing` is deprecated"),)

T = TypeVar("T")


class UserError(Exception):
    """A mistake the user can fix (bad input, missing file, no network): one line, no traceback."""

    is_user_error = True


class ConfigError(ValueError):
    """A setting, or a combination of settings, that cannot run: a usage error (exit 2)."""


class NothingToDo(Exception):
    """The command has nothing to do (a complete run asked to resume): one line, exit 0."""


def is_user_error(error: BaseException) -> bool:
    """True for the exceptions that mean a mistake the user can fix (see the module doc)."""
    return getattr(type(error), "is_user_error", False) is True or _disk_full(error)


def _disk_full(error: BaseException) -> bool:
    """ENOSPC / EDQUOT, whether raised by Python (OSError) or by safetensors' Rust writer,
    which says so only in its message (SafetensorError: "... StorageFull ...")."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(error)
    return type(error).__name__ == "SafetensorError" and (
        "StorageFull" in text or "No space left" in text or "code: 28" in text
    )


def user_message(error: BaseException) -> str:
    """The one line a user error is shown as."""
    if _disk_full(error):
        where = getattr(error, "filename", None)
        place = f" ({where})" if where else ""
        return f"the disk is full{place}: free some space or choose another --output-dir"
    return str(error).strip().replace("\n", " ")


class Terminated(BaseException):
    """SIGTERM or SIGHUP turned into an exception, so `finally` blocks, temp-file cleanup
    and run.json's "interrupted" still happen; `signum` is the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The signals that end a run like SIGTERM does (Windows has no SIGHUP).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def usage_error(prog: str, message: str) -> NoReturn:
    """Refuse the command line: one line on stderr, exit status 2."""
    print(f"{prog}: error: {message} (see --help)", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad value is one line naming the flag, not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, message)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def range_problem(value: float, low: float, high: float | None = None, *, strict: bool = False):
    """Why `value` lies outside [low, high] ((low, high] when `strict`), or None: one wording
    for this project's own flags (`bounded`) and the GRPOConfig fields TRL types
    (grpo.grpo_fields)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    too_low = value <= low if strict else value < low
    if too_low or (high is not None and value > high):
        above = "greater than" if strict else "at least"
        top = f" and at most {_number(high)}" if high is not None else ""
        return f"must be {above} {_number(low)}{top}"
    return None


def bounded(kind: Callable[[str], T], low: T, high: T | None = None, *, strict: bool = False):
    """An argparse type for `kind` values in [low, high] (or (low, high] when `strict`)."""

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        problem = range_problem(value, low, high, strict=strict)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    return parse


positive_int = bounded(int, 1)
positive_float = bounded(float, 0.0, strict=True)
non_negative_float = bounded(float, 0.0)
random_seed = bounded(int, 0, MAX_SEED)


def comma_list(allowed: tuple[str, ...]):
    """An argparse type: comma-separated names, each one of `allowed`."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",")]
        unknown = [name for name in names if name not in allowed]
        if unknown or not text.strip():
            raise argparse.ArgumentTypeError(
                f"unknown name(s) {unknown or [text]}; choose from {', '.join(allowed)}"
            )
        return names

    return parse


NAME_MAX = 255  # bytes in one file or folder name: Linux, macOS and Windows alike


def output_folder(text: str) -> Path:
    """An argparse type for --output-dir: a folder name; "" (which Path reads as the current
    folder) and a name longer than file systems allow are refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: name a folder for the results")
    path = Path(text)
    longest = max(path.parts, key=lambda part: len(os.fsencode(part)), default="")
    if len(os.fsencode(longest)) > NAME_MAX:
        raise argparse.ArgumentTypeError(
            f"the name {longest[:20]}... is {len(os.fsencode(longest))} bytes long; file "
            f"systems allow {NAME_MAX}"
        )
    return path


URL_ENV_VARS = ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN", "WANDB_BASE_URL")


def environment_problem() -> str | None:
    """What is wrong with the settings both commands read from the environment, or None:
    an endpoint that is no URL, a cache folder that is a file. Checked before anything loads."""
    for name in URL_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        try:
            parts = urllib.parse.urlsplit(value if "://" in value else f"https://{value}")
            valid = bool(parts.hostname) and parts.port != 0  # .port: ValueError if malformed
        except ValueError:
            valid = False
        if not valid:
            return f"{name}={value!r} is not a URL (like https://hf-mirror.com): fix or unset it"
    cache = os.environ.get(CACHE_ENV_VAR, "").strip()
    if cache and Path(cache).expanduser().exists() and not Path(cache).expanduser().is_dir():
        return f"{CACHE_ENV_VAR}={cache} is a file, not a folder: point it at a folder or unset it"
    return None


def refuse_environment_problem() -> None:
    """UserError for environment_problem(): both commands call it first, before their
    parsers import huggingface_hub, which fails on a malformed HF_ENDPOINT with a traceback."""
    problem = environment_problem()
    if problem:
        raise UserError(problem)


def debug_requested(flag: bool) -> bool:
    return flag or env_flag(DEBUG_ENV_VAR)


def quiet_known_warnings() -> None:
    """Hide the deprecation notices listed in KNOWN_WARNINGS (see there why)."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated(signum)


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` while inside; the previous handlers come back
    after."""
    previous = {signum: signal.signal(signum, _raise_terminated) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_main(prog: str, work: Callable[[], T], debug: bool = False) -> T | None:
    """`work()`, with user errors and interruptions turned into a message and an exit code;
    None when there was nothing to do (the line says why)."""
    quiet_known_warnings()
    debug = debug_requested(debug)
    try:
        with sigterm_as_exception():
            return work()
    except NothingToDo as done:
        print(f"{prog}: {done}")
        return None
    except Exception as error:
        if debug or not is_user_error(error):
            raise
        raise SystemExit(f"{prog}: error: {user_message(error)}") from None
    except (KeyboardInterrupt, Terminated) as error:
        if debug:
            raise
        code = 128 + error.signum if isinstance(error, Terminated) else EXIT_INTERRUPTED
        print(f"{prog}: interrupted ({str(error) or 'Ctrl-C'})", file=sys.stderr)
        raise SystemExit(code) from None
