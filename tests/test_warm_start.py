"""Tests for offline_demo/warm_start.py: the shipped weights match the code's recipe, the
recipe still rebuilds them, and the teachers never see an evaluation computation."""

import dataclasses
import json

import pytest

from grpo.profiles import TINY
from offline_demo import warm_start
from offline_demo.cache import CACHE_ENV_VAR
from offline_demo.toy_task import question_signature, split_of, toy_splits

SHIPPED_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "recipe.json",
}
# Counts small enough for seconds on a CPU; everything else is the real recipe.
SMALL = dataclasses.replace(
    warm_start.RECIPE,
    solve=dataclasses.replace(warm_start.RECIPE.solve, count=64, epochs=1, warmup_steps=0),
    habit=dataclasses.replace(warm_start.RECIPE.habit, count=32),
)


@pytest.fixture
def recipe(monkeypatch):
    """Swap the code's recipe for the duration of a test (the record is cached per recipe)."""

    def use(new_recipe: warm_start.Recipe) -> None:
        monkeypatch.setattr(warm_start, "RECIPE", new_recipe)
        warm_start._current_record.cache_clear()

    yield use
    warm_start._current_record.cache_clear()


def test_shipped_weights_were_built_by_the_current_recipe():
    """Changing the recipe or the teacher data without `--rebuild` fails here."""
    shipped = json.loads((warm_start.SHIPPED_DIR / "recipe.json").read_text(encoding="utf-8"))
    assert shipped["recipe"] == warm_start.recipe_record(warm_start.RECIPE)


def test_shipped_folder_is_complete_and_small():
    files = {path.name: path.stat().st_size for path in warm_start.SHIPPED_DIR.iterdir()}
    assert set(files) == SHIPPED_FILES  # no training_args.bin pickle, no leftovers
    assert sum(files.values()) < 5 * 2**20


def test_warm_start_path_is_the_shipped_copy_without_building(monkeypatch):
    monkeypatch.setattr(warm_start, "build_once", pytest.fail)

    assert warm_start.warm_start_path() == warm_start.SHIPPED_DIR
    assert warm_start.warm_start_dir() == warm_start.SHIPPED_DIR


def test_another_recipe_is_built_into_the_cache_with_a_notice(
    recipe, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    built = []
    monkeypatch.setattr(warm_start, "train_warm_start", lambda folder: built.append(folder))
    recipe(dataclasses.replace(warm_start.RECIPE, seed=1))

    path = warm_start.warm_start_path()

    assert path.parent == tmp_path and path.name.startswith("tiny-qwen2-warm-")
    assert path == warm_start.warm_start_dir() != warm_start.SHIPPED_DIR
    assert len(built) == 1
    assert "does not match the current recipe" in capsys.readouterr().out


def test_each_recipe_has_its_own_cache_folder(recipe, monkeypatch, tmp_path):
    """Recipes with the same teacher data but other settings must not share a build."""
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    folders = set()
    for learning_rate in (1e-3, 2e-3):
        solve = dataclasses.replace(warm_start.RECIPE.solve, learning_rate=learning_rate)
        recipe(dataclasses.replace(warm_start.RECIPE, solve=solve))
        folders.add(warm_start.warm_start_dir())
    assert len(folders) == 2 and all(folder.parent == tmp_path for folder in folders)


def test_teachers_draw_only_training_computations():
    for stage in (warm_start.RECIPE.solve, warm_start.RECIPE.habit):
        rows = warm_start.teacher_rows(stage)
        assert len(rows) == stage.count
        assert {split_of(question_signature(question)) for question, _ in rows} == {"train"}


def test_default_evaluation_set_overlaps_no_training_source():
    train, evaluation = toy_splits(TINY.train_size, TINY.evaluation.size, seed=0)

    assert warm_start.eval_overlap_with_training(evaluation["question"], train["question"]) == 0


def test_overlap_counts_teacher_questions_planted_in_an_evaluation_set():
    train, evaluation = toy_splits(100, 50, seed=0)
    solve = [q for q, _ in warm_start.teacher_rows(warm_start.RECIPE.solve)[:3]]
    habit = [q for q, _ in warm_start.teacher_rows(warm_start.RECIPE.habit)[:2]]
    questions = [*evaluation["question"], *solve, *habit, *train["question"][:4]]

    assert warm_start.eval_overlap_with_training(questions, train["question"]) == 9


@pytest.mark.slow
def test_the_recipe_rebuilds_the_shipped_model(recipe, monkeypatch, tmp_path, tiny_cache):
    """`--rebuild` with tiny counts: the same code path, in seconds, gives a loadable model
    with the shipped tokenizer and config."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    shipped = warm_start.SHIPPED_DIR
    target = tmp_path / "assets" / "tiny_qwen2_warm"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("from an older build")
    monkeypatch.setattr(warm_start, "SHIPPED_DIR", target)
    recipe(SMALL)

    warm_start.main(["--rebuild"])

    assert warm_start.warm_start_path() == target
    assert {path.name for path in target.iterdir()} == SHIPPED_FILES
    assert sorted(path.name for path in target.parent.iterdir()) == ["tiny_qwen2_warm"]
    record = json.loads((target / "recipe.json").read_text(encoding="utf-8"))
    assert record["recipe"] == warm_start.recipe_record(SMALL)
    configs = [AutoConfig.from_pretrained(folder).to_dict() for folder in (target, shipped)]
    for config in configs:
        config.pop("_name_or_path")
    assert configs[0] == configs[1]
    rebuilt, original = (
        AutoTokenizer.from_pretrained(target),
        AutoTokenizer.from_pretrained(shipped),
    )
    assert rebuilt.get_vocab() == original.get_vocab()
    assert rebuilt.chat_template == original.chat_template
    model = AutoModelForCausalLM.from_pretrained(target)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(shipped).parameters()
    )
