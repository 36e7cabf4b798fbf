"""Tests for evaluation.py: stop handling, scoring and greedy batched generation (tiny model)."""

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

import data
from grpo import evaluation, models
from offline_demo import tiny_model, toy_task, warm_start

MAX_NEW_TOKENS = 12
METRIC_KEYS = {"accuracy", "strict_format", "soft_format", "mean_tokens", "num_examples"}
ROW_KEYS = {"question", "answer", "completion", "num_tokens", "correct"}
ROW_KEYS |= {"strict_format", "soft_format"}

STRICT = "<reasoning>\n6 * 5 = 30\n</reasoning>\n<answer>\n30\n</answer>\n"
SOFT_ONLY = "<reasoning>6 * 5 = 30</reasoning> <answer>30</answer>"
NO_TAGS = "The answer is 30."


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, one_torch_thread):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, models.load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="module")
def warm(one_torch_thread):
    """The shipped warm start: unlike the random model, it answers each question differently
    and repeats itself (its answers echo the question), so order and penalties show."""
    path = warm_start.warm_start_path()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, models.load_tokenizer(path)


@pytest.fixture(scope="module")
def toy_rows():
    return toy_task.toy_splits(train_size=1, eval_size=6, seed=0)[1]


@pytest.fixture(scope="module")
def rows():
    return data.load_gsm8k("test", limit=4, source="embedded")


def generate(tiny, prompts, **kwargs):
    model, tokenizer = tiny
    kwargs.setdefault("max_new_tokens", MAX_NEW_TOKENS)
    return evaluation.generate(model, tokenizer, prompts, progress=False, **kwargs)


# ---------------------------------------------------------------------------------------------
# _length_until_stop and score
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([5, 6, 2, 0, 0], 3),  # the stop token counts, the padding after it does not
        ([5, 0, 2, 2], 2),  # the first stop token wins, whichever it is
        ([2, 7, 7], 1),
        ([5, 6, 7], 3),  # no stop token: cut off at max_new_tokens
        ([], 0),
    ],
)
def test_length_until_stop(ids, expected):
    assert evaluation._length_until_stop(ids, {0, 2}) == expected


def test_score_on_hand_made_completions():
    completions = [STRICT, SOFT_ONLY, NO_TAGS, STRICT, STRICT]
    answers = ["30", "30", "30", "31", None]
    verdicts = evaluation.score(completions, answers)
    assert verdicts == {
        "correct": [True, True, False, False, False],
        "strict_format": [True, False, False, True, True],
        "soft_format": [True, True, False, True, True],
    }


def test_score_compares_numbers_not_strings():
    verdicts = evaluation.score(
        ["<answer>\n$1,000.\n</answer>", "<answer>\n1000.5\n</answer>"], ["1000", "1000"]
    )
    assert verdicts["correct"] == [True, False]


def test_score_rejects_misaligned_answers():
    with pytest.raises(ValueError, match="gold answers"):
        evaluation.score([STRICT, STRICT], ["30"])


def test_score_of_nothing_is_empty():
    assert evaluation.score([], []) == {"correct": [], "strict_format": [], "soft_format": []}


# ---------------------------------------------------------------------------------------------
# Greedy generation with the tiny model
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def test_generation_is_greedy_decoding_token_by_token(tiny, rows):
    """Each answer is what picking the most likely token at every step gives, stopped at the
    model's own stop token: a hand-rolled greedy loop, one prompt at a time, as reference."""
    model, tokenizer = tiny
    eos = model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos])
    prompts = list(rows["prompt"])[:2]
    for prompt, generation in zip(prompts, generate(tiny, prompts, batch_size=2), strict=True):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        new: list[int] = []
        while len(new) < MAX_NEW_TOKENS and not (new and new[-1] in stops):
            new.append(
                int(
                    model(torch.cat([ids, torch.tensor([new], dtype=ids.dtype)], 1))
                    .logits[0, -1]
                    .argmax()
                )
            )
        assert generation.num_tokens == len(new)
        assert generation.text == tokenizer.decode(new, skip_special_tokens=True)


def test_generation_lengths_and_text(tiny, rows):
    model, tokenizer = tiny
    for generation in generate(tiny, list(rows["prompt"]), batch_size=4):
        assert 1 <= generation.num_tokens <= MAX_NEW_TOKENS
        assert isinstance(generation.text, str)
        for special in (tiny_model.IM_END, tiny_model.ENDOFTEXT, tiny_model.IM_START):
            assert special not in generation.text


def test_batch_size_does_not_change_greedy_outputs(tiny, rows, monkeypatch):
    """Left padding plus the attention mask must make a padded row behave like a lone one.

    The texts of a random model are weak evidence (it often repeats one token), so the
    logits of every generated step are compared too, row by row: each batch row is matched
    to its lone run by its unpadded prompt ids (batches are sorted by length).
    """
    model, tokenizer = tiny
    tokenizer.padding_side = "right"  # generate() must switch it back to left
    calls: list[tuple[list[tuple[int, ...]], tuple[torch.Tensor, ...]]] = []
    original = model.generate

    def recording_generate(input_ids, attention_mask, **kwargs):
        output = original(
            input_ids=input_ids,
            attention_mask=attention_mask,
            **kwargs,
            output_scores=True,
            return_dict_in_generate=True,
        )
        prompts = [
            tuple(ids[mask.bool()].tolist())
            for ids, mask in zip(input_ids, attention_mask, strict=True)
        ]
        calls.append((prompts, output.scores))
        return output.sequences

    monkeypatch.setattr(model, "generate", recording_generate)
    prompts = list(rows["prompt"])
    lengths = [
        len(tokenizer.apply_chat_template(p, add_generation_prompt=True, return_dict=False))
        for p in prompts
    ]
    assert len(set(lengths)) > 1, "the prompts must differ in length for padding to matter"

    one_by_one = generate(tiny, prompts, batch_size=1)
    batched = generate(tiny, prompts, batch_size=4)
    assert tokenizer.padding_side == "left"
    assert [g.text for g in batched] == [g.text for g in one_by_one]
    assert [g.num_tokens for g in batched] == [g.num_tokens for g in one_by_one]

    lone_scores = {call_prompts[0]: scores for call_prompts, scores in calls[:4]}
    batch_prompts, batch_scores = calls[4]
    assert set(batch_prompts) == set(lone_scores)
    for row, prompt_ids in enumerate(batch_prompts):
        for step, lone_step in enumerate(lone_scores[prompt_ids]):
            torch.testing.assert_close(batch_scores[step][row], lone_step[0], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_length_sorted_batches_keep_the_input_order(warm, toy_rows):
    """Sorting by length changes which prompts share a batch, never whose answer is whose."""
    prompts = list(toy_rows["prompt"])
    reordered = prompts[::-1] + prompts[:1]  # an order unlike the sorted one, with a repeat

    lone = generate(warm, reordered, batch_size=1, sort_by_length=False)
    assert len({g.text for g in lone}) > 2, "distinct answers are needed to show the order"
    for sort_by_length in (True, False):
        for batch_size in (2, 3):
            answers = generate(
                warm, reordered, batch_size=batch_size, sort_by_length=sort_by_length
            )
            assert answers == lone


def prompt_ids(tokenizer, prompt) -> torch.Tensor:
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, return_tensors="pt")["input_ids"]


def argmax_ids(model, ids: torch.Tensor, stop_ids: set[int]) -> list[int]:
    """Greedy decoding spelled out: the most likely next token, until a stop token."""
    new: list[int] = []
    while len(new) < MAX_NEW_TOKENS and not (new and new[-1] in stop_ids):
        context = torch.cat([ids, torch.tensor([new], dtype=ids.dtype)], dim=1)
        new.append(int(model(context).logits[0, -1].argmax()))
    return new


def with_settings(model, **settings):
    """A copy of `model` whose generation_config asks for `settings`."""
    copied = copy.deepcopy(model)
    copied.generation_config.update(**settings)
    return copied


def test_greedy_ignores_the_models_sampling_and_penalty_settings(tiny, rows):
    """Models whose generation_config asks for sampling and a repetition penalty (Qwen2.5's
    values, then a penalty strong enough to change this model's answers) still decode
    exactly like plain argmax."""
    model, tokenizer = tiny
    sampling = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20}
    qwen_like = with_settings(model, repetition_penalty=1.1, **sampling)
    heavy = with_settings(model, repetition_penalty=2.0, **sampling)
    stop_ids = set(model.generation_config.eos_token_id)
    inputs = [prompt_ids(tokenizer, p) for p in rows["prompt"]]
    argmax = [argmax_ids(model, ids, stop_ids) for ids in inputs]
    expected = [
        evaluation.Generation(tokenizer.decode(new, skip_special_tokens=True), len(new))
        for new in argmax
    ]

    for trap in (qwen_like, heavy):
        assert generate((trap, tokenizer), list(rows["prompt"]), batch_size=4) == expected

    # The trap is real: generate() left to the model's settings decodes differently.
    inherited = [
        heavy.generate(ids, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)[0, ids.shape[1] :]
        for ids in inputs
    ]
    assert any(out.tolist()[: len(new)] != new for out, new in zip(inherited, argmax, strict=True))


def test_greedy_generation_settings_are_valid_and_json_ready():
    """transformers accepts them without a warning (strict: a setting greedy decoding would
    ignore raises), and metrics.json can record them as they are."""
    config = GenerationConfig(**evaluation.GREEDY_GENERATION)
    config.validate(strict=True)
    assert json.loads(json.dumps(evaluation.GREEDY_GENERATION)) == evaluation.GREEDY_GENERATION


def test_generate_with_no_prompts_returns_nothing(tiny):
    assert generate(tiny, [], batch_size=4) == []


@pytest.mark.parametrize("batch_size", [0, -1])
def test_non_positive_batch_size_is_a_clear_error(tiny, rows, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        generate(tiny, list(rows["prompt"])[:1], batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------


def test_evaluate_metrics_and_rows(tiny, rows):
    model, tokenizer = tiny
    result = evaluation.evaluate(
        model, tokenizer, rows, max_new_tokens=MAX_NEW_TOKENS, batch_size=4, progress=False
    )
    metrics = result.metrics
    assert set(metrics) == METRIC_KEYS
    assert metrics["num_examples"] == len(rows) == len(result.rows) == 4
    for metric, verdict in [("accuracy", "correct"), ("strict_format",) * 2, ("soft_format",) * 2]:
        assert 0.0 <= metrics[metric] <= 1.0
        assert metrics[metric] == sum(row[verdict] for row in result.rows) / 4
    assert 1 <= metrics["mean_tokens"] <= MAX_NEW_TOKENS
    assert metrics["mean_tokens"] == sum(r["num_tokens"] for r in result.rows) / 4

    for row, question, answer in zip(result.rows, rows["question"], rows["answer"], strict=True):
        assert set(row) == ROW_KEYS
        assert (row["question"], row["answer"]) == (question, answer)
        # The verdicts are those of score() on the logged completion.
        verdicts = evaluation.score([row["completion"]], [answer])
        assert {name: row[name] for name in verdicts} == {n: v[0] for n, v in verdicts.items()}


def test_evaluate_on_an_empty_dataset_gives_zeros(tiny, rows):
    model, tokenizer = tiny
    result = evaluation.evaluate(model, tokenizer, rows.select([]), progress=False)
    assert result.rows == []
    assert result.metrics == {
        "accuracy": 0.0,
        "strict_format": 0.0,
        "soft_format": 0.0,
        "mean_tokens": 0.0,
        "num_examples": 0,
    }


def test_a_shorter_budget_scores_like_a_run_with_that_budget(warm):
    """Scoring the first N tokens of the long greedy answers equals evaluating with
    max_new_tokens=N: one generation gives both (the learner profile's 512 and 200)."""
    model, tokenizer = warm
    questions = toy_task.toy_splits(train_size=1, eval_size=40, seed=0)[1]
    long = evaluation.evaluate(
        model, tokenizer, questions, max_new_tokens=48, progress=False, also_scored_at=(16,)
    )
    short = evaluation.evaluate(model, tokenizer, questions, max_new_tokens=16, progress=False)

    for name in ("accuracy", "strict_format", "soft_format"):
        assert long.metrics[f"{name}_at_16_tokens"] == short.metrics[name], name
    # The budget matters on these questions (reasoned answers need more than 16 tokens),
    # so equal scores are not a coincidence of two identical runs.
    assert long.metrics["strict_format"] > short.metrics["strict_format"]
