"""Static checks of the committed notebooks (nbval executes them; these read the files).

They catch what execution does not: a machine's absolute paths left in the outputs, logic
copied into a notebook instead of imported, outputs that no longer come from one
top-to-bottom run, test machinery in the lesson, and the parts every notebook owes a learner
(the one shared setup cell that runs on Colab, AutoDL and a local checkout; exercises with
folded answers; references; one Chinese word per concept).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SETUP_CELL = REPO / "notebooks" / "setup_cell.ipy"
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
    """The six lessons, and appendices named appendix_NN_topic after the lesson NN they deepen."""
    main = [path.stem for path in NOTEBOOKS if not path.stem.startswith("appendix_")]
    assert main == EXPECTED
    numbers = {stem[:2] for stem in EXPECTED}
    for path in NOTEBOOKS:
        if path.stem.startswith("appendix_"):
            assert re.fullmatch(r"appendix_\d\d_[a-z0-9_]+", path.stem), path.name
            assert path.stem.split("_")[1] in numbers, path.name


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem.startswith("appendix_")])
def test_each_appendix_is_linked_from_its_lesson(path):
    lesson = next(p for p in NOTEBOOKS if p.stem.startswith(path.stem.split("_")[1] + "_"))
    linked = f"]({path.name})" in markdown_text(load(lesson))
    assert linked, f"{lesson.name} never links {path.name}"


@pytest.mark.parametrize("name", EXPECTED)
def test_a_lesson_is_one_thread_of_about_45_cells(name):
    assert len(load(REPO / "notebooks" / f"{name}.ipynb")["cells"]) <= 46


def test_no_notebook_passes_overwrite_for_the_learner():
    """A notebook resumes or asks; it never deletes a run on the learner's behalf."""
    for path in NOTEBOOKS:
        for cell in code_cells(load(path)):
            assert "--overwrite" not in "".join(cell["source"]), path.name


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
def test_the_first_code_cell_is_the_shared_setup_cell(path):
    """One setup cell, written once (notebooks/setup_cell.ipy): an edit reaches all six."""
    first = "".join(code_cells(load(path))[0]["source"])
    assert first == SETUP_CELL.read_text(encoding="utf-8").rstrip("\n"), (
        f"{path.name}: the first code cell differs from {SETUP_CELL.name}; copy it over"
    )


def test_the_setup_cell_reloads_modules_and_needs_no_placeholder():
    """It reloads edited modules, starts with an empty REPO_URL (no `<...>` that would break a
    shell line) and, inside a checkout, installs nothing: pip runs only off the local branch."""
    text = SETUP_CELL.read_text(encoding="utf-8")
    assert "%load_ext autoreload" in text and "%autoreload 2" in text
    assert 'REPO_URL = ""' in text and "<" not in text.split("REPO_URL")[1].split("\n")[0]
    local_branch = text.index('if REPO_ROOT is None and PLATFORM != "local":')
    assert text.index('"pip", "install"') > local_branch
    assert "/etc/network_turbo" in text and "/root/autodl-tmp" in text


def test_the_setup_cell_finds_the_checkout_from_the_root_and_from_notebooks(tmp_path):
    """Run locally (not Colab, not AutoDL) from the repository root, it must still make
    notebooks/ the working folder, so ../runs means the repository's runs/ folder."""
    code = SETUP_CELL.read_text(encoding="utf-8")
    code = "\n".join(line for line in code.splitlines() if not line.startswith("%"))
    script = tmp_path / "setup.py"
    script.write_text(code + "\nprint('cwd', Path.cwd())\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "COLAB_RELEASE_TAG"}
    for start in (REPO, REPO / "notebooks"):
        result = subprocess.run(
            [sys.executable, str(script)], cwd=start, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert f"cwd {REPO / 'notebooks'}" in result.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_shell_line_holds_a_placeholder(path):
    for cell in code_cells(load(path)):
        for line in "".join(cell["source"]).splitlines():
            if line.lstrip().startswith(("!", "%")):
                assert not re.search(r"<[^>]*>", line), f"{path.name}: {line}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_test_machinery_in_the_lesson(path):
    """Checked outputs are marked by nbval's cell tag, not by comments or prose."""
    notebook = load(path)
    text = "\n".join("".join(cell["source"]) for cell in notebook["cells"])
    for needle in ("NBVAL", "nbval", "逐字检查", "由测试"):
        assert needle not in text, f"{path.name} mentions {needle!r}"
    tags = [cell["metadata"].get("tags", []) for cell in code_cells(notebook)]
    assert any("nbval-check-output" in cell_tags for cell_tags in tags)


def test_notebook_02_shows_qwens_real_tokens():
    """The tokenizer lesson shows Qwen2.5's own ids and Chinese tokens, whatever model ran."""
    notebook = load(REPO / "notebooks" / "02_chat_template.ipynb")
    outputs = json.dumps([cell.get("outputs", []) for cell in code_cells(notebook)])
    assert "<|im_start|>(151644)" in outputs and "<|im_end|>(151645)" in outputs
    assert "'\\u6bcf\\u5929'" in outputs  # '每天', one token in Qwen's vocabulary


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


def prose(notebook: dict) -> str:
    """The lesson's text: markdown without code spans and without 01's glossary, which names
    each term in both languages on purpose."""
    cells = [
        "".join(cell["source"])
        for cell in notebook["cells"]
        if cell["cell_type"] == "markdown" and "### 术语表" not in "".join(cell["source"])
    ]
    return CODE_SPANS.sub("", "\n".join(cells))


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
    text = prose(load(path)).replace(
        "TRL 把模型针对一个提示词（prompt）生成的文本叫 completion", ""
    )
    assert not BARE_COMPLETION.findall(text)


def test_01_holds_the_glossary_and_the_story():
    text = markdown_text(load(REPO / "notebooks" / "01_load_model.ipynb"))
    assert "### 术语表" in text
    for term in ("提示词", "回答", "热身", "学习率预热", "优势", "参考模型"):
        assert f"| {term} |" in text, f"the glossary lacks {term}"
    for event in ("DeepSeekMath", "R1-Zero", "aha moment", "0.5B"):
        assert event in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_word_per_concept_in_the_prose(path):
    """Warm start is 热身; 预热 only ever means the learning-rate warm-up (学习率预热); a
    prompt is 提示词 (English only inside code and in a term's first definition)."""
    text = prose(load(path))
    assert "预热" not in text.replace("学习率预热", ""), f"{path.name} uses 预热 for warm start"
    bare = re.findall(r"(?<![\w/\-（(])[Pp]rompts?(?![\w\-）)])", text)
    assert not bare, f"{path.name} has English 'prompt' in its prose"


def test_notebook_05_trains_with_plain_trl_and_public_hooks_only():
    notebook = load(REPO / "notebooks" / "05_grpo_training.ipynb")
    sources = "\n".join("".join(cell["source"]) for cell in code_cells(notebook))
    training = next(
        "".join(cell["source"])
        for cell in code_cells(notebook)
        if "trainer.train()" in "".join(cell["source"]) and "USE_LORA" in "".join(cell["source"])
    )
    literal = ("GRPOConfig(", "GRPOTrainer(", "USE_LORA = False", "LoraConfig(")
    seed_values = ("use_bias_correction_kl=False", "learning_rate=5e-6", "temperature=0.9")
    for needle in literal + seed_values:
        assert needle in training, needle
    private_names = ("._logs", "_generate_and_score_completions", "_calculate_rewards")
    for private in private_names:
        assert private not in sources, f"notebook 05 uses TRL's private {private}"
    # The committed outputs are a whole run: the test suite's shortened one (GRPO_SMOKE_STEPS)
    # never lands in the notebook a learner reads.
    trained = next(
        "".join(output.get("text", ""))
        for cell in code_cells(notebook)
        if "".join(cell["source"]) == training
        for output in cell["outputs"]
        if "GRPO steps in" in "".join(output.get("text", ""))
    )
    assert re.search(r"\b80 GRPO steps in", trained), trained
    # The training cell sits in the first half, its layout from the command line's resolution.
    cells = notebook["cells"]
    position = next(i for i, cell in enumerate(cells) if "".join(cell["source"]) == training)
    assert position < len(cells) / 2
    assert "resolve_run(RUN_DIR" in training and "run.lora" in training


def test_notebook_06_ends_with_the_trained_model_answering_the_joy_question():
    """The seed's last step: the saved model, asked with apply_chat_template, generate and
    decode(skip_special_tokens=False), before and after, in the committed outputs."""
    cells = code_cells(load(REPO / "notebooks" / "06_evaluation.ipynb"))
    asking = next(cell for cell in cells if "Joy can read" in "".join(cell["source"]))
    source = "".join(asking["source"])
    for call in ("apply_chat_template(", ".generate(", "skip_special_tokens=False"):
        assert call in source, call
    printed = "".join("".join(output.get("text", "")) for output in asking["outputs"])
    assert "Joy can read" in printed and "--- before:" in printed and "--- after:" in printed


def test_notebook_05_rerun_never_evaluates_or_trains_the_trained_model_as_the_start():
    """Each cell that evaluates "before" or trains loads its model itself from `model_path`, so
    running the cells again in the same kernel starts from the untrained model again; "after"
    reloads the saved final/ the same way "before" loaded its model."""
    cells = [
        "".join(cell["source"])
        for cell in code_cells(load(REPO / "notebooks" / "05_grpo_training.ipynb"))
    ]
    before = next(cell for cell in cells if "before = evaluate(" in cell)
    training = next(cell for cell in cells if "trainer.train()" in cell and "USE_LORA" in cell)
    after = next(cell for cell in cells if "after = evaluate(" in cell)
    assert "load_policy(model_path)" in before.split("before = evaluate(")[0]
    assert "load_policy(model_path, for_training=True)" in training.split("GRPOTrainer(")[0]
    assert 'load_policy(RUN_DIR / "final")' in after.split("after = evaluate(")[0]
