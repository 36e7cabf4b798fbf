"""GSM8K for GRPO: chat prompts plus gold answers, with offline fallbacks.

`load_gsm8k` reads the folder GSM8K_DIR names when it is set; otherwise it tries the
Hugging Face hub, then ModelScope (often the faster choice in China), then a 300-row
excerpt shipped in assets/. Unreachable hosts are skipped after a quick probe, so an offline machine
gets the excerpt in well under a second instead of waiting on network retries.

The excerpt is for the offline demo only: a run that needs the full data set passes
`allow_excerpt=False` and gets an error naming the sources tried and the ways out instead.
A `GSM8K_DIR` that is set but unusable is an error for every run, never a reason to fall
back: the user pointed at it on purpose.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import netcheck

if TYPE_CHECKING:  # `datasets` is imported where used: `check_local_dir` must stay light
    import datasets

SYSTEM_PROMPT = (
    "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"
)

SPLITS = ("train", "test")
DATA_SOURCES = ("hub", "modelscope", "local", "embedded")
SOURCE_ENV_VAR = "GRPO_DATA_SOURCE"
LOCAL_DIR_ENV_VAR = "GSM8K_DIR"
HUB_DATASET = "openai/gsm8k"
MODELSCOPE_DATASET = "modelscope/gsm8k"
REPO_DIR = Path(__file__).resolve().parent
EMBEDDED_DIR = REPO_DIR / "assets" / "gsm8k_excerpt"

HF_ENDPOINT_WAY = "; or set HF_ENDPOINT to a mirror such as https://hf-mirror.com."
FULL_DATA_WAYS_OUT = (
    f"Ways out: set {LOCAL_DIR_ENV_VAR} to a folder holding GSM8K's train.jsonl and "
    "test.jsonl; or connect to the network (the Hugging Face hub or ModelScope)" + HF_ENDPOINT_WAY
)
OFFLINE_HINT = (
    f"To work offline, set {SOURCE_ENV_VAR}=embedded (or pass source='embedded') to use the "
    "300-row excerpt in assets/gsm8k_excerpt, or set "
    f"{LOCAL_DIR_ENV_VAR} to a folder holding GSM8K's train.jsonl and test.jsonl "
    "(or pass source='local', path=...)."
)


class DataUnavailable(RuntimeError):
    """GSM8K could not be loaded from the source asked for (a user problem, not a bug)."""

    is_user_error = True  # grpo.cli.run_main shows it as one line


def check_local_dir() -> Path | None:
    """The GSM8K_DIR folder, checked: it must hold train.jsonl and test.jsonl, each a valid
    GSM8K file (see `read_jsonl`). DataUnavailable naming the file and line otherwise.

    One file for both splits would serve the test questions as training prompts, so a file
    (or a folder missing a split) is refused. None when GSM8K_DIR is not set. Reading both
    files takes well under a second, so the command lines call this before torch loads.
    """
    location = os.environ.get(LOCAL_DIR_ENV_VAR, "").strip()
    if not location:
        return None
    folder = Path(location).expanduser()
    missing = [f"{split}.jsonl" for split in SPLITS if not (folder / f"{split}.jsonl").is_file()]
    if not folder.is_dir() or missing:
        what = "is not a folder" if not folder.is_dir() else f"lacks {' and '.join(missing)}"
        raise DataUnavailable(
            f"{LOCAL_DIR_ENV_VAR}={location} {what}: it must be a folder holding GSM8K's "
            "train.jsonl and test.jsonl"
        )
    questions = {}
    for split in SPLITS:
        try:
            records = read_jsonl(folder / f"{split}.jsonl")
        except (OSError, ValueError) as error:
            raise DataUnavailable(f"{LOCAL_DIR_ENV_VAR}={location} is unusable: {error}") from None
        questions[split] = {record["question"].strip() for record in records}
    shared = questions["train"] & questions["test"]
    if shared:
        raise DataUnavailable(
            f"{LOCAL_DIR_ENV_VAR}={location} is unusable: {len(shared):,} question(s) are in "
            f"both train.jsonl and test.jsonl (e.g. {min(shared)[:60]!r}), so the held-out "
            "accuracy would count questions the model trained on (GSM8K's splits share none)"
        )
    return folder


def check_full_gsm8k_available() -> None:
    """DataUnavailable unless a source of the full GSM8K may work: a valid GSM8K_DIR, or the
    hub or ModelScope answering (or offline mode, which may find the hub's cached copy).
    For runs that need the full data set: milliseconds, before anything heavy loads."""
    if chosen_source() == "embedded":
        raise DataUnavailable(_excerpt_refused(f"{SOURCE_ENV_VAR}=embedded"))
    if check_local_dir() is not None:
        return
    if netcheck.is_offline_mode() or netcheck.hub_reachable() or netcheck.modelscope_reachable():
        return
    tried = [
        f"the hub ({netcheck.hub_problem() or 'unreachable'})",
        f"ModelScope ({netcheck.modelscope_problem() or 'unreachable'})",
        f"local ({LOCAL_DIR_ENV_VAR} is not set)",
    ]
    raise DataUnavailable(
        "This run needs the full GSM8K, and no source of it answers: tried "
        + "; ".join(tried)
        + ". "
        + full_data_ways_out()
    )


def hub_cache_has_gsm8k() -> bool:
    """True when the Hugging Face cache holds files of openai/gsm8k (HF_HUB_OFFLINE=1 would
    then load it without the network). The cache's place by the hub's own rule."""
    cache = (
        os.environ.get("HF_HUB_CACHE")
        or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
    )
    snapshots = (
        Path(cache).expanduser() / f"datasets--{HUB_DATASET.replace('/', '--')}" / "snapshots"
    )
    return snapshots.is_dir() and any(snapshots.iterdir())


def full_data_ways_out() -> str:
    """FULL_DATA_WAYS_OUT, led by the ways that apply here: the cached copy the hub left
    (when it did), and no mirror suggested when HF_ENDPOINT already names one."""
    ways = FULL_DATA_WAYS_OUT
    if netcheck.hub_endpoint_chosen():
        ways = ways.replace(HF_ENDPOINT_WAY, f" (HF_ENDPOINT={netcheck.hub_endpoint()} is set).")
    if hub_cache_has_gsm8k() and not netcheck.is_offline_mode():
        ways = "The Hugging Face cache holds openai/gsm8k: set HF_HUB_OFFLINE=1 to use it. " + ways
    return ways


def _excerpt_refused(why: str) -> str:
    return (
        f"{why} asks for the 300-row GSM8K excerpt, but this run needs the full data set "
        f"(the excerpt is only for the offline demo). {full_data_ways_out()}"
    )


def extract_hash_answer(text: object) -> str | None:
    """The gold answer after GSM8K's '####' marker, without thousands separators."""
    if not isinstance(text, str) or "####" not in text:
        return None
    answer = text.split("####")[-1].strip().replace(",", "")
    return answer or None


def build_prompt(question: str) -> list[dict]:
    """A chat prompt: the format instructions, then the question. No few-shot examples:
    every generation in a GRPO group repeats the prompt, and the pinned TRL never trims it."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]


# GSM8K's gold answers: a number in ASCII digits (after extract_hash_answer drops commas).
GOLD_NUMBER = re.compile(r"[-+]?(\d+(\.\d+)?|\.\d+)", re.ASCII)


def _parse_record(line: str) -> dict:
    """One JSONL line as a GSM8K record; ValueError saying what is wrong otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from error
    except RecursionError:  # `[[[[...` 100,000 deep: a record is one flat object
        raise ValueError("not a GSM8K record (JSON nested too deep)") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"missing a string '{key}'")
        try:
            record[key].encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate such as "\ud800": not text
            raise ValueError(
                f"the '{key}' holds an escape that is no character (\\ud800...)"
            ) from None
    gold = extract_hash_answer(record["answer"])
    if gold is None:
        raise ValueError("the answer has no '#### <number>' final line")
    if not GOLD_NUMBER.fullmatch(gold):
        raise ValueError(f"the gold answer {gold[:40]!r} after '####' is not a number")
    return record


def read_jsonl(path: str | Path) -> list[dict]:
    """GSM8K records from a JSON Lines file: one object per line with a string "question"
    and a string "answer" ending in "#### <number>"; blank lines are ignored.

    The rule for a bad line: the whole file is rejected, with ValueError naming the file
    and line. A hand-made file with one damaged line is better fixed than silently used
    short (or replaced by another source). An empty file is rejected too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GSM8K file not found: {path}")
    records: list[dict] = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
                if line.strip():
                    records.append(_parse_record(line))
            except ValueError as error:  # UnicodeDecodeError included
                reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error
                raise ValueError(f"{path}:{number}: {reason}") from None
    if not records:
        raise ValueError(f"{path}: empty, no GSM8K records")
    return records


def _records_from_hub(split: str) -> tuple[list[dict], str]:
    import datasets

    # With HF_HUB_OFFLINE=1 set before `datasets` was imported, load_dataset answers from
    # its cache without touching the network, so a copy downloaded earlier still works.
    if datasets.config.HF_HUB_OFFLINE:
        origin = f"the Hugging Face cache ({HUB_DATASET}, offline mode)"
    elif netcheck.hub_reachable():
        origin = f"the Hugging Face hub ({HUB_DATASET} via {netcheck.hub_endpoint()})"
    else:
        raise ConnectionError(netcheck.hub_problem() or f"{netcheck.hub_endpoint()} unreachable")
    try:
        dataset = datasets.load_dataset(HUB_DATASET, "main", split=split)
    except datasets.exceptions.DatasetsError as error:  # not all of them are OSErrors
        raise ConnectionError(f"the hub's copy failed: {error}") from error
    return dataset.to_list(), origin


def _records_from_modelscope(split: str) -> tuple[list[dict], str]:
    """GSM8K's files from ModelScope's dataset repository (no `modelscope[datasets]` needed:
    that extra pins an older `datasets` than this project uses)."""
    if not netcheck.modelscope_reachable():
        endpoint = netcheck.modelscope_endpoint()
        raise ConnectionError(netcheck.modelscope_problem() or f"{endpoint} unreachable")
    netcheck.bound_download_times()  # before modelscope reads its timeouts
    import datasets
    from modelscope import snapshot_download
    from modelscope.hub.errors import HubError

    try:
        folder = Path(snapshot_download(MODELSCOPE_DATASET, repo_type="dataset"))
    except HubError as error:  # API errors are not OSErrors
        raise ConnectionError(f"ModelScope's download failed: {error}") from error
    files = _split_files(folder, split)
    suffix = files[0].suffix.lstrip(".")
    try:
        table = datasets.load_dataset(suffix, data_files=[str(f) for f in files])
    except datasets.exceptions.DatasetsError as error:
        raise ValueError(f"unreadable download in {folder}: {error}") from error
    endpoint = netcheck.modelscope_endpoint()
    return table["train"].to_list(), f"ModelScope ({MODELSCOPE_DATASET} via {endpoint})"


def _split_files(folder: Path, split: str) -> list[Path]:
    """The data files of `split` in a downloaded dataset repository, `main` subset first."""
    for pattern in (f"main/{split}*.parquet", f"**/main/{split}*", f"**/{split}*.parquet",
                    f"**/{split}*.jsonl"):  # fmt: skip
        files = sorted(p for p in folder.glob(pattern) if p.suffix in (".parquet", ".jsonl"))
        if files:
            return files
    raise FileNotFoundError(f"no {split} parquet/jsonl file in the download at {folder}")


def _local_file(split: str, path: str | Path | None) -> Path:
    """`path` (a folder with <split>.jsonl, or the file itself), else the GSM8K_DIR folder."""
    if path is None:
        folder = check_local_dir()
        if folder is None:
            raise FileNotFoundError(f"no path given and {LOCAL_DIR_ENV_VAR} is not set")
        return folder / f"{split}.jsonl"
    location = Path(path).expanduser()
    return location / f"{split}.jsonl" if location.is_dir() else location


def _records_from_local(split: str, path: str | Path | None) -> tuple[list[dict], str]:
    file = _local_file(split, path)
    return read_jsonl(file), f"the local file {file}"


def _records_from_embedded(split: str) -> tuple[list[dict], str]:
    file = EMBEDDED_DIR / f"{split}.jsonl"
    return read_jsonl(file), f"the embedded excerpt ({file.relative_to(REPO_DIR).as_posix()})"


def _fetch_records(source: str, split: str, path: str | Path | None) -> tuple[list[dict], str]:
    """Raw GSM8K records and a description of where they came from."""
    if source == "hub":
        return _records_from_hub(split)
    if source == "modelscope":
        return _records_from_modelscope(split)
    if source == "local":
        return _records_from_local(split, path)
    return _records_from_embedded(split)


def _training_row(record: dict) -> dict | None:
    """The columns the notebooks use, or None when the record has no usable gold answer."""
    question, solution = record.get("question"), record.get("answer")
    gold = extract_hash_answer(solution)
    if not isinstance(question, str) or gold is None:
        return None
    return {
        "question": question,
        "answer": gold,
        "solution": solution,
        "prompt": build_prompt(question),
    }


def _load_rows(source: str, split: str, path: str | Path | None) -> tuple[list[dict], str]:
    records, origin = _fetch_records(source, split, path)
    rows = [row for row in map(_training_row, records) if row is not None]
    if not rows:
        raise ValueError(f"no usable rows in {origin}")
    skipped = len(records) - len(rows)
    if skipped:
        print(f"GSM8K {split}: skipped {skipped} row(s) without a '#### <answer>' line.")
    return rows, origin


def short_reason(error: BaseException) -> str:
    """The error's type and the first line of its message: the cause in a one-line error
    (for GSM8K's sources here, and for models that do not load in grpo.models)."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line[:200]}"


# What a failing source raises: no network or file (OSError, which the hub's, datasets' and
# ModelScope's network errors are, or are turned into above) and bad content (ValueError).
# Anything else is a bug and surfaces as one.
SOURCE_ERRORS = (OSError, ValueError)


def _load_named_source(source: str, split: str, path: str | Path | None) -> tuple[list[dict], str]:
    try:
        return _load_rows(source, split, path)
    except SOURCE_ERRORS as error:
        raise DataUnavailable(
            f"Could not load GSM8K {split} from source '{source}': {short_reason(error)}.\n"
            + OFFLINE_HINT
        ) from error


def _load_first_available(
    split: str, path: str | Path | None, sources: tuple[str, ...]
) -> tuple[list[dict], str]:
    """Try each of `sources` in order; report the failures once, at the end."""
    failures: list[str] = []
    for source in sources:
        try:
            rows, origin = _load_rows(source, split, path)
        except SOURCE_ERRORS as error:  # a failing source is never fatal while others remain
            failures.append(f"{source} ({short_reason(error)})")
            continue
        if failures:
            print(f"GSM8K: could not use {'; '.join(failures)}. Using {source} instead.")
        return rows, origin
    if "embedded" not in sources:
        raise DataUnavailable(
            f"Could not load the full GSM8K {split}: tried {'; '.join(failures)}. "
            + full_data_ways_out()
        )
    raise DataUnavailable(f"Could not load GSM8K {split} from any source: {'; '.join(failures)}")


def chosen_source(source: str | None = None, path: str | Path | None = None) -> str | None:
    """The source asked for, or None for "the first that works": the argument wins, then a
    given path (meaning local), then GRPO_DATA_SOURCE, then a set GSM8K_DIR (local).
    DataUnavailable for an unknown one, so a command line can check the setting before
    anything loads."""
    chosen = source or ("local" if path is not None else None)
    chosen = (chosen or os.environ.get(SOURCE_ENV_VAR, "").strip().lower()) or None
    if chosen is None and os.environ.get(LOCAL_DIR_ENV_VAR, "").strip():
        chosen = "local"  # the user pointed at a folder: use it, even when the hub is reachable
    if chosen is not None and chosen not in DATA_SOURCES:
        named = f"source {chosen!r}" if source else f"{SOURCE_ENV_VAR}={chosen}"
        raise DataUnavailable(f"Unknown GSM8K {named}; choose one of {', '.join(DATA_SOURCES)}")
    return chosen


def load_gsm8k(
    split: str = "train",
    limit: int | None = None,
    source: str | None = None,
    path: str | Path | None = None,
    *,
    allow_excerpt: bool = True,
) -> datasets.Dataset:
    """GSM8K as a Dataset with columns question, answer (gold), solution and prompt.

    With no source named (argument or GRPO_DATA_SOURCE) it uses the first of DATA_SOURCES
    that works; with `allow_excerpt=False` (runs that need the full data set) the embedded
    excerpt is never used, and DataUnavailable says which sources were tried and the ways
    out. `limit` keeps the first N rows, so runs are repeatable.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of rows or None, got {limit}")
    chosen = chosen_source(source, path)
    if chosen == "embedded" and not allow_excerpt:
        named = f"source={source!r}" if source else f"{SOURCE_ENV_VAR}=embedded"
        raise DataUnavailable(_excerpt_refused(named))
    if path is None and chosen in (None, "local"):
        check_local_dir()  # a wrong GSM8K_DIR is an error, not a reason to fall back
    if chosen is None:
        sources = DATA_SOURCES if allow_excerpt else DATA_SOURCES[:-1]
        rows, origin = _load_first_available(split, path, sources)
    else:
        rows, origin = _load_named_source(chosen, split, path)
    kept = rows[:limit] if limit is not None else rows
    count = f"the first {len(kept)} of {len(rows)}" if len(kept) < len(rows) else len(kept)
    print(f"GSM8K {split}: {count} rows from {origin}")
    import datasets

    # metrics.json reads the origin back from here (grpo.run_record.data_source).
    info = datasets.DatasetInfo(description=f"GSM8K {split}: {origin}")
    return datasets.Dataset.from_list(kept, info=info)


def gsm8k_load_arguments() -> dict:
    """Keyword arguments for `datasets.load_dataset` that give GSM8K's train and test splits
    here, so a notebook can make the seed's own call: with the hub reachable (or source
    "hub" asked for) they are the seed's ``load_dataset("openai/gsm8k", "main")``; otherwise
    the same call reads local JSON files: the GSM8K_DIR folder when it is set, else the
    300-row excerpt shipped in assets/. One printed line says which, and why.
    For ModelScope's copy use `load_gsm8k`, which downloads its files itself."""
    chosen = chosen_source()
    if chosen == "modelscope":
        raise DataUnavailable(
            f"{SOURCE_ENV_VAR}=modelscope: load_dataset reads the hub or local files; use "
            "load_gsm8k(source='modelscope'), or set HF_ENDPOINT to a mirror"
        )
    folder = check_local_dir()  # a wrong GSM8K_DIR is an error, not a reason to fall back
    if chosen == "hub" or (chosen is None and folder is None and netcheck.hub_reachable()):
        print(f"GSM8K: {HUB_DATASET} from the Hugging Face hub ({netcheck.hub_endpoint()})")
        return {"path": HUB_DATASET, "name": "main"}
    if chosen != "embedded" and folder is not None:
        print(f"GSM8K: local JSON files in the {LOCAL_DIR_ENV_VAR} folder")
    else:
        folder = EMBEDDED_DIR
        why = f"{SOURCE_ENV_VAR}=embedded" if chosen else f"{netcheck.hub_endpoint()} unreachable"
        print(
            f"GSM8K: local JSON files, the 300-row excerpt in "
            f"{folder.relative_to(REPO_DIR).as_posix()} ({why})"
        )
    return {"path": "json", "data_files": {s: str(folder / f"{s}.jsonl") for s in SPLITS}}
