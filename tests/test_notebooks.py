"""Static checks of the committed notebooks (nbval executes them; these read the files).

They catch what execution does not: a machine's absolute paths left in the outputs, a
notebook that needs a kernel restart to see module edits, logic copied into a notebook
instead of imported, outputs that no longer come from one top-to-bottom run, and the
parts every notebook owes a learner (how to run it on Colab/AutoDL, a first cell that
explains a missing module instead of dying, exercises with folded answers, references,
one Chinese word for "completion").
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
EXPECTED = [
    "01_load_model",
    "02_chat_template",
    "03_prompt_baseline",
    "04_reward_functions",
    "05_grpo_training",
    "06_evaluation",
]
# Home folders, temp folders and this project's checkout paths, on Linux, macOS and Windows.
ABSOLUTE_PATH = re.compile(r"(/root/|/home/\w|/Users/\w|/tmp/|/work/|[A-Z]:\\\\Users)")
SHARED_FUNCTIONS = re.compile(
    r"^def (correctness_reward_func|int_reward_func|strict_format_reward_func|"
    r"soft_format_reward_func|xmlcount_reward_func|extract_xml_answer|extract_hash_answer|"
    r"load_gsm8k|build_prompt)\(",
    re.MULTILINE,
)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_the_series_is_complete_and_numbered():
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_hold_no_absolute_paths(path):
    hits = [
        f"cell {index}: {match.group(0)}"
        for index, cell in enumerate(code_cells(load(path)))
        for output in cell.get("outputs", [])
        for match in ABSOLUTE_PATH.finditer(json.dumps(output))
    ]
    assert not hits, f"{path.name} has machine-specific paths in its outputs: {hits}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_modules_reload_without_a_kernel_restart(path):
    first = "".join(code_cells(load(path))[0]["source"])
    assert "%load_ext autoreload" in first and "%autoreload 2" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_shared_helpers_are_imported_not_redefined(path):
    sources = "\n".join("".join(cell["source"]) for cell in code_cells(load(path)))
    assert not SHARED_FUNCTIONS.findall(sources)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_come_from_one_top_to_bottom_run(path):
    """Execution counts either all empty (cleared) or 1, 2, 3, ... in cell order."""
    counts = [cell.get("execution_count") for cell in code_cells(load(path))]
    assert counts == [None] * len(counts) or counts == list(range(1, len(counts) + 1))


def markdown_text(notebook: dict) -> str:
    return "\n".join(
        "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_code_cell_explains_a_missing_module(path):
    first = "".join(code_cells(load(path))[0]["source"])
    assert 'find_spec("grpo")' in first and "sys.path.insert" in first
    assert "pip install --no-deps -e ." in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_it_says_how_to_run_on_colab_and_autodl(path):
    text = markdown_text(load(path))
    for needle in (
        "source /etc/network_turbo",
        "/root/autodl-tmp",
        "hf-mirror.com",
        "grep -vE '^(torch|jupyter|ipykernel)=='",
    ):
        assert needle in text, f"{path.name} lacks {needle!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_it_ends_with_exercises_and_references(path):
    text = markdown_text(load(path))
    assert "## 练习" in text and "<details><summary>答案</summary>" in text
    assert "## 参考文献" in text and "arxiv.org/abs/" in text


CODE_SPANS = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
BARE_COMPLETION = re.compile(r"(?<![\w/])[Cc]ompletions?(?![\w])")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_completion_is_translated_in_the_prose(path):
    """The series calls a completion 回答; English stays only in code and identifiers."""
    prose = CODE_SPANS.sub("", markdown_text(load(path)))
    prose = prose.replace("TRL 把模型针对一个提示词（prompt）生成的文本叫 completion", "")
    assert not BARE_COMPLETION.findall(prose)
