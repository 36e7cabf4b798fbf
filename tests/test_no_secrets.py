"""No key, token or password anywhere in the repository, notebook outputs included.

A focused, dependency-free scanner (in the spirit of detect-secrets, without its install):
every file that git tracks or would track (untracked but not ignored, so a key is caught
before its first commit), and in every notebook each cell's source, each output (stream text,
rich data, tracebacks) and the metadata, parsed from the JSON. It looks for:

* `wandb.login(key=...)` with a literal string;
* a literal string of key-like text (16+ characters, letters and digits, no spaces) assigned
  to a name like api_key / token / secret / password (`x = "..."`, `"x": "..."`,
  `os.environ["X"] = "..."`, `export X=...`);
* known token shapes: a 40-hex wandb key on a line that mentions wandb, Hugging Face `hf_...`,
  OpenAI `sk-...`, AWS `AKIA...`, GitHub `ghp_...` / `github_pat_...`;
* private key headers (`-----BEGIN ... PRIVATE KEY-----`).

Each hit is reported as file, line and rule, with the matched text shortened so that the
CI log does not repeat the secret. A line that holds a deliberate, fake example can opt out
with the comment `pragma: allowlist secret` (detect-secrets' spelling).

The positive examples below are assembled at run time ("hf_" + "a" * 34), so this file
passes its own scan.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Used when git is unavailable (an unpacked archive): folders never worth scanning.
SKIPPED_DIRS = {
    ".git",
    ".venv",
    "venv",
    "runs",
    "outputs",
    "wandb",
    "build",
    "__pycache__",
    ".ipynb_checkpoints",
    ".hypothesis",
    ".ruff_cache",
    ".pytest_cache",
    ".cache",
}
ALLOWLIST_PRAGMA = "pragma: allowlist secret"
BINARY_SNIFF_BYTES = 8192
TEXT_MIME_PREFIXES = ("text/", "application/json", "application/javascript")

# --------------------------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------------------------

_BEFORE = r"(?<![A-Za-z0-9_\-])"  # a token shape must not continue a longer word
_SENSITIVE_NAME = (
    r"[A-Za-z0-9_.\-]*(?:api[_\-]?key|apikey|access[_\-]?key|secret[_\-]?key|secret"
    r"|token|passw(?:or)?d|pwd|auth[_\-]?key)"
)
_KEY_CHARS = r"A-Za-z0-9_\-+/=.~"

RULES: dict[str, re.Pattern[str]] = {
    "wandb.login with a literal key": re.compile(
        r"wandb\s*\.\s*login\s*\([^)]*\bkey\s*=\s*[rRbBuUfF]{0,2}([\"'])[^\"']+\1"
    ),
    "wandb API key (40 hex digits near 'wandb')": re.compile(
        r"(?i)^(?=.*wandb).*?(?<![0-9a-f])([0-9a-f]{40})(?![0-9a-f])"
    ),
    "Hugging Face token": re.compile(_BEFORE + r"hf_[A-Za-z0-9]{30,}"),
    "OpenAI-style secret key": re.compile(
        _BEFORE + r"sk-(?:(?:proj|svcacct|admin|ant)-[A-Za-z0-9_\-]{20,}|[A-Za-z0-9]{20,})"
    ),
    "AWS access key id": re.compile(r"(?<![A-Z0-9])AKIA[0-9A-Z]{16}(?![0-9A-Z])"),
    "GitHub token": re.compile(
        _BEFORE + r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,})"
    ),
    "private key": re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----"),
}

# `name = "value"`, `"name": "value"`, `os.environ["NAME"] = "value"`, `name: str = "value"`.
_QUOTED_ASSIGNMENT = re.compile(
    rf"(?i)(?<![A-Za-z0-9])(?P<name>{_SENSITIVE_NAME})[\"']?\]?"
    r"(?:\s*:\s*[A-Za-z_][\w\[\]., |]*?)?\s*(?::|=|:=)\s*[rRbBuU]{0,2}"
    r"(?P<quote>[\"'])(?P<value>[^\"'\s]{16,})(?P=quote)"
)
# Shell, .env and YAML style, unquoted: `export WANDB_API_KEY=...`, `HF_TOKEN: ...`.
_BARE_ASSIGNMENT = re.compile(
    rf"(?<![A-Za-z0-9])(?P<name>[A-Z0-9_]*(?:API_?KEY|ACCESS_?KEY|SECRET(?:_?KEY)?|TOKEN"
    rf"|PASSW(?:OR)?D|PWD|AUTH_?KEY))\s*[:=]\s*(?P<value>[{_KEY_CHARS}]{{16,}})(?=\s|#|$)"
)
_KEY_LIKE = re.compile(rf"[{_KEY_CHARS}]{{16,}}")
# Documentation placeholders are fine: `api_key = "YOUR_WANDB_API_KEY_HERE"`.
_PLACEHOLDER_WORDS = ("your", "xxxx", "example", "placeholder", "dummy", "redacted", "changeme")


def looks_like_key(value: str) -> bool:
    """16+ characters of key alphabet, with both letters and digits, and not a placeholder."""
    lowered = value.lower()
    return (
        _KEY_LIKE.fullmatch(value) is not None
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and "..." not in value
        and not any(word in lowered for word in _PLACEHOLDER_WORDS)
    )


def _shorten(text: str) -> str:
    """Enough of a match to find it, not enough to reuse it."""
    text = text.strip()
    return text if len(text) <= 12 else f"{text[:12]}..."


def find_secrets_in_line(line: str) -> list[tuple[str, str]]:
    """(rule, shortened match) for every secret-looking thing on one line."""
    if ALLOWLIST_PRAGMA in line:
        return []
    hits = [(rule, _shorten(m.group(0))) for rule, p in RULES.items() for m in p.finditer(line)]
    for pattern in (_QUOTED_ASSIGNMENT, _BARE_ASSIGNMENT):
        for match in pattern.finditer(line):
            if looks_like_key(match.group("value")):
                hits.append((f"literal assigned to {match.group('name')!r}", _shorten(match[0])))
    return hits


def find_secrets(text: str) -> list[tuple[int, str, str]]:
    """(1-based line number, rule, shortened match) for every hit in `text`."""
    return [
        (number, rule, excerpt)
        for number, line in enumerate(text.splitlines(), start=1)
        for rule, excerpt in find_secrets_in_line(line)
    ]


# --------------------------------------------------------------------------------------------
# Files and notebooks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    path: str
    where: str  # "line 12" or "cell 3 output 1 line 2"
    rule: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.rule} ({self.excerpt})"


def _as_text(value) -> str:
    """Notebook strings are stored either whole or as a list of lines."""
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False)


def notebook_texts(notebook: dict) -> list[tuple[str, str]]:
    """(where, text) for each cell source, each output and the metadata of a notebook."""
    texts = [("notebook metadata", json.dumps(notebook.get("metadata", {}), indent=1))]
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        texts.append((f"cell {number} source", _as_text(cell.get("source", ""))))
        if cell.get("metadata"):
            texts.append((f"cell {number} metadata", json.dumps(cell["metadata"], indent=1)))
        for out_number, output in enumerate(cell.get("outputs", []), start=1):
            where = f"cell {number} output {out_number}"
            parts = [_as_text(output.get("text", ""))]
            parts += [_as_text(output.get(key, "")) for key in ("ename", "evalue", "traceback")]
            for mime, data in (output.get("data") or {}).items():
                if mime.startswith(TEXT_MIME_PREFIXES) or mime.endswith("+json"):
                    parts.append(_as_text(data))  # images are base64, not worth a scan
            texts.append((where, "\n".join(part for part in parts if part)))
    return texts


def scan_text(path: str, text: str) -> list[Hit]:
    if path.endswith(".ipynb"):
        try:
            notebook = json.loads(text)
        except json.JSONDecodeError:
            notebook = None
        if isinstance(notebook, dict):
            return [
                Hit(path, f"{where} line {number}", rule, excerpt)
                for where, part in notebook_texts(notebook)
                for number, rule, excerpt in find_secrets(part)
            ]
    return [Hit(path, f"line {n}", rule, excerpt) for n, rule, excerpt in find_secrets(text)]


def scan_file(root: Path, relative: str) -> list[Hit]:
    path = root / relative
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):  # deleted but still in the index; a submodule
        return []
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return []
    return scan_text(relative, data.decode("utf-8", errors="replace"))


def _walk(root: Path) -> list[str]:
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [
            d for d in subfolders if d not in SKIPPED_DIRS and not d.endswith(".egg-info")
        ]
        files += [(Path(folder) / name).relative_to(root).as_posix() for name in names]
    return sorted(files)


def repository_files(root: Path = REPO_ROOT) -> list[str]:
    """Tracked files plus untracked, not-ignored ones; a filtered walk when git is missing."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return _walk(root)
    return sorted({name for name in listing.decode("utf-8").split("\0") if name})


def scan_repository(root: Path = REPO_ROOT) -> list[Hit]:
    return [hit for relative in repository_files(root) for hit in scan_file(root, relative)]


# --------------------------------------------------------------------------------------------
# The check itself
# --------------------------------------------------------------------------------------------


def test_repository_and_notebook_outputs_hold_no_secrets():
    hits = scan_repository()
    assert not hits, (
        "Secret-looking strings found (remove them, rotate the key, and read it from an "
        "environment variable instead):\n  " + "\n  ".join(str(hit) for hit in hits)
    )


def test_the_scan_covers_code_and_notebooks():
    files = repository_files()
    assert "grpo/training.py" in files
    assert Path(__file__).relative_to(REPO_ROOT).as_posix() in files  # untracked files too
    assert any(name.endswith(".ipynb") for name in files)


# --------------------------------------------------------------------------------------------
# Tests of the detector, so that a regression in it is caught. Fake keys are built at run time.
# --------------------------------------------------------------------------------------------

HEX40 = "0123456789abcdef" * 2 + "01234567"
HF_TOKEN = "hf_" + "aB3" * 12
SK_KEY = "sk-" + "Ab1" * 8
SK_PROJ_KEY = "sk-" + "proj-" + "Ab1_-" * 6
AWS_KEY = "AK" + "IA" + "ABCDEFGH23456789"
GH_TOKEN = "gh" + "p_" + "aB3" * 12
GH_PAT = "github" + "_pat_" + "11AB" * 8
KEY_LIKE = "a1B2c3D4" * 3  # 24 characters, letters and digits
BEGIN = "-----" + "BEGIN"
LOGIN = "wandb" + ".login"

POSITIVES = {
    "wandb login, double quotes": f'{LOGIN}(key="{KEY_LIKE}")',
    "wandb login, single quotes, other args": f"{LOGIN}(relogin=True, key='{HEX40}')",
    "wandb login, short literal": f'{LOGIN}(key="abc")',
    "wandb hex key in a shell command": f"!wandb login {HEX40}",
    "wandb hex key in an env var": f"WANDB_API_KEY={HEX40}",
    "hf token in a call": f"login(token='{HF_TOKEN}')",
    "hf token in notebook output text": f"Using token {HF_TOKEN} for the hub",
    "openai key": f'client = OpenAI(api_key="{SK_KEY}")',
    "openai project key": f"key: {SK_PROJ_KEY}",
    "aws key": f"aws_access_key_id = {AWS_KEY}",
    "github classic token": f"git clone https://{GH_TOKEN}@github.com/x/y",
    "github fine-grained token": f"GH={GH_PAT}",
    "rsa private key": BEGIN + " RSA PRIVATE KEY-----",
    "openssh private key": BEGIN + " OPENSSH PRIVATE KEY-----",
    "plain private key": BEGIN + " PRIVATE KEY-----",
    "api_key assignment": f'api_key = "{KEY_LIKE}"',
    "typed token assignment": f'hf_token: str = "{KEY_LIKE}"',
    "password in a dict": f'{{"password": "{KEY_LIKE}"}}',
    "secret keyword argument": f"Client(client_secret='{KEY_LIKE}')",
    "os.environ assignment": f'os.environ["WANDB_API_KEY"] = "{KEY_LIKE}"',
    "shell export, unquoted": f"export HF_TOKEN={KEY_LIKE}",
    "yaml style, unquoted": f"OPENAI_API_KEY: {KEY_LIKE}",
}

NEGATIVES = {
    "wandb login from the environment": "wandb.login()",
    "wandb login with a variable": 'wandb.login(key=os.environ["WANDB_API_KEY"])',
    "key read from the environment": 'api_key = os.environ.get("WANDB_API_KEY")',
    "export placeholder": "export WANDB_API_KEY=...",
    "documented placeholder": 'api_key = "YOUR_WANDB_API_KEY_HERE"',
    "x placeholder": 'token = "hf_xxxxxxxxxxxxxxxxxxxxxxxx"',
    "special token": 'pad_token = "<|endoftext|>"',
    "token counts": "max_new_tokens = 1234567890123456789",
    "token comparison": f'if token == "{KEY_LIKE}":',
    "short password": 'password = "abc123"',
    "words, no digits": 'secret = "not-a-real-secret-at-all"',
    "git commit hash without wandb": f"commit {HEX40}",
    "hf environment variable": "HF_HUB_OFFLINE=1 HF_ENDPOINT=https://hf-mirror.com",
    "hf_ identifier": "from huggingface_hub import hf_hub_download_with_a_long_name",
    "short hf_ string": "hf_" + "abc",
    "sk- inside a word": "task-" + "Ab1" * 8,
    "scikit-learn": "pip install scikit-learn",
    "AKIA too short": "AK" + "IA" + "ABC123",
    "public key header": "-----" + "BEGIN PUBLIC KEY-----",
    "model id": 'model_id = "Qwen/Qwen2.5-0.5B-Instruct"',
    "allowlisted fake": f'api_key = "{KEY_LIKE}"  # ' + "pragma: allowlist" + " secret",
}


@pytest.mark.parametrize("line", POSITIVES.values(), ids=POSITIVES.keys())
def test_detector_flags_secret_looking_lines(line):
    assert find_secrets_in_line(line), line


@pytest.mark.parametrize("line", NEGATIVES.values(), ids=NEGATIVES.keys())
def test_detector_passes_ordinary_lines(line):
    assert find_secrets_in_line(line) == []


def test_hits_report_line_numbers_and_hide_the_secret():
    text = "first line\n" + f'api_key = "{KEY_LIKE}"\n' + "third\n" + f"token {HF_TOKEN}\n"
    hits = find_secrets(text)
    assert [number for number, _, _ in hits] == [2, 4]
    assert all(KEY_LIKE not in excerpt and HF_TOKEN not in excerpt for _, _, excerpt in hits)


def _notebook(source: str, output: str) -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]},
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 1,
                "source": source.splitlines(keepends=True),
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": ["ok\n"]},
                    {
                        "output_type": "execute_result",
                        "execution_count": 1,
                        "metadata": {},
                        "data": {"text/plain": ["line one\n", output], "image/png": "iVBORw0K"},
                    },
                ],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_notebook_sources_and_outputs_are_scanned(tmp_path):
    notebook = _notebook(f'import wandb\n{LOGIN}(key="{KEY_LIKE}")\n', HF_TOKEN)
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook, indent=1), "utf-8")
    hits = scan_file(tmp_path, "nb.ipynb")
    assert [(hit.where, hit.rule) for hit in hits] == [
        ("cell 2 source line 2", "wandb.login with a literal key"),
        ("cell 2 output 2 line 2", "Hugging Face token"),
    ]
    assert str(hits[0]).startswith("nb.ipynb: cell 2 source line 2: wandb.login")


def test_secrets_in_a_notebooks_error_output_and_metadata_are_found(tmp_path):
    notebook = _notebook("print(1)\n", "fine")
    notebook["cells"][1]["outputs"].append(
        {"output_type": "error", "ename": "E", "evalue": f"bad key {SK_KEY}", "traceback": []}
    )
    notebook["metadata"]["colab"] = {"token": HF_TOKEN}
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook), "utf-8")
    wheres = [hit.where for hit in scan_file(tmp_path, "nb.ipynb")]
    assert "cell 2 output 3 line 2" in wheres
    assert any(where.startswith("notebook metadata") for where in wheres)


def test_a_clean_notebook_passes(tmp_path):
    (tmp_path / "nb.ipynb").write_text(json.dumps(_notebook("x = 1\n", "1")), "utf-8")
    assert scan_file(tmp_path, "nb.ipynb") == []


def test_a_broken_notebook_is_still_scanned_as_text(tmp_path):
    (tmp_path / "nb.ipynb").write_text('{"cells": [' + f'"{HF_TOKEN}"', "utf-8")
    assert [hit.rule for hit in scan_file(tmp_path, "nb.ipynb")] == ["Hugging Face token"]


def test_binary_and_missing_files_are_skipped(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0\1" + HF_TOKEN.encode())
    assert scan_file(tmp_path, "weights.bin") == []
    assert scan_file(tmp_path, "deleted.py") == []


def test_the_fallback_walk_skips_git_venv_and_runs(tmp_path):
    for name in ("keep.py", "notebooks/a.ipynb", ".git/config", ".venv/x.py", "runs/log.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", "utf-8")
    assert _walk(tmp_path) == ["keep.py", "notebooks/a.ipynb"]


def test_without_git_the_tree_is_walked(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text(f'password = "{KEY_LIKE}"\n', "utf-8")
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))  # no git on the PATH
    assert repository_files(tmp_path) == ["config.py"]
    assert [str(hit).split(":")[:2] for hit in scan_repository(tmp_path)] == [
        ["config.py", " line 1"]
    ]
