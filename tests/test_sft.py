"""Tests for seele_agents.training.sft: label construction, the warm-up loop and its argument
checks."""

from __future__ import annotations

import doctest

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (the `train` extra)")
pytest.importorskip("transformers", reason="transformers is not installed")

import seele_agents.training.sft as sft  # noqa: E402
from seele_agents.models.tiny import TinyConfig, build_tiny  # noqa: E402
from seele_agents.training.sft import (  # noqa: E402
    IGNORE_INDEX,
    sft_batch,
    sft_examples,
    sft_loss,
    sft_warmup,
    tokenize_example,
)
from seele_env.problems import Problem  # noqa: E402
from seele_env.procedural import generate_problems  # noqa: E402

SMALL = TinyConfig(hidden_size=48, intermediate_size=96, num_layers=2, num_heads=2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run on one thread, restored afterwards: tiny matrices gain nothing from intra-op threads,
    and on a busy 2-core machine two threads wait on each other (measured: 20 s instead of 0.5 s
    for the warm-up test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    """A fresh small model per test would cost ~0.5 s each; tests that train build their own."""
    return build_tiny(seed=0, config=SMALL)


@pytest.fixture(scope="module")
def examples() -> list[tuple[str, str]]:
    return sft_examples(generate_problems(24, seed=0, families=("arithmetic",), difficulty=1))


def test_sft_examples_pair_the_rendered_prompt_with_the_solution() -> None:
    problems = generate_problems(3, seed=4, difficulty=2)
    pairs = sft_examples(problems)
    assert pairs == [(f"Problem: {p.question}\nSolution:\n", p.solution) for p in problems]
    r1 = sft_examples(problems, template="r1")
    assert [response for _, response in r1] == [p.solution for p in problems]
    assert all(
        p.question in prompt and prompt != plain
        for (prompt, _), (plain, _), p in zip(r1, pairs, problems, strict=True)
    )


def test_sft_examples_reject_a_problem_without_solution() -> None:
    problem = Problem(id="q1", question="What is 1 + 1?", answer="2", solution=None)
    with pytest.raises(ValueError, match="q1"):
        sft_examples([problem])


def test_labels_mask_the_prompt_and_keep_response_and_eos(tiny) -> None:
    _, tokenizer = tiny
    prompt, response = "Problem: Compute 3 + 4.\nSolution:\n", "Step 1: 3 + 4 = 7."
    ids, labels = tokenize_example(tokenizer, prompt, response)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    assert ids == prompt_ids + response_ids + [tokenizer.eos_token_id]
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert labels[len(prompt_ids) :] == [*response_ids, tokenizer.eos_token_id]
    assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == response + "<|endoftext|>"


def test_batch_right_pads_with_pad_and_ignored_labels(tiny) -> None:
    _, tokenizer = tiny
    short = tokenize_example(tokenizer, "P:\n", "1")
    long = tokenize_example(tokenizer, "Problem: 2 + 2\n", "Step 1: 2 + 2 = 4.")
    batch = sft_batch([short, long], tokenizer.pad_token_id)
    n_short, n_long = len(short[0]), len(long[0])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, n_long)
    assert batch["input_ids"][0, :n_short].tolist() == short[0]
    assert batch["input_ids"][0, n_short:].tolist() == [tokenizer.pad_token_id] * (n_long - n_short)
    assert batch["labels"][0].tolist() == short[1] + [IGNORE_INDEX] * (n_long - n_short)
    assert batch["attention_mask"].tolist() == [
        [1] * n_short + [0] * (n_long - n_short),
        [1] * n_long,
    ]
    assert batch["labels"][1].tolist() == long[1]


def test_loss_counts_response_tokens_only(tiny) -> None:
    model, tokenizer = tiny
    response = "Step 1: 1 + 1 = 2."
    n_response = len(tokenizer(response)["input_ids"]) + 1  # + EOS
    for prompt in ("P: 1\n", "Problem: a much longer prompt than the other one\n"):
        ids, labels = tokenize_example(tokenizer, prompt, response)
        batch = sft_batch([(ids, labels)], tokenizer.pad_token_id)
        assert int((batch["labels"] != IGNORE_INDEX).sum()) == n_response
        # The batched loss equals an independent per-position computation over labelled targets.
        expected = _manual_loss(model, ids, labels)
        assert sft_loss(model, tokenizer, [(prompt, response)]) == pytest.approx(expected, rel=1e-5)


def _manual_loss(model, ids: list[int], labels: list[int]) -> float:
    """Independent route: per-position log-softmax, averaged over labelled targets only."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]  # [T, V]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    terms = [-logprobs[t - 1, labels[t]] for t in range(1, len(ids)) if labels[t] != IGNORE_INDEX]
    return float(torch.stack(terms).mean())


def test_padding_does_not_change_the_loss(tiny) -> None:
    model, tokenizer = tiny
    pairs = [
        ("Problem: Compute 3 + 4.\nSolution:\n", "Step 1: 3 + 4 = 7."),
        ("Problem: Compute ((3 + 4) * 2) - 5.\nSolution:\n", "Step 1: 3 + 4 = 7.\n" * 3),
    ]
    # Batched together the short one is padded; the loss must be the token-weighted mean of
    # each example's loss on its own.
    counts = [len(tokenizer(response)["input_ids"]) + 1 for _, response in pairs]
    alone = [sft_loss(model, tokenizer, [pair]) for pair in pairs]
    expected = sum(n * loss for n, loss in zip(counts, alone, strict=True)) / sum(counts)
    assert sft_loss(model, tokenizer, pairs, batch_size=2) == pytest.approx(expected, rel=1e-4)


def test_warmup_reduces_the_loss(examples) -> None:
    model, tokenizer = build_tiny(seed=0, config=SMALL)
    before = sft_loss(model, tokenizer, examples)
    seen: list[tuple[int, float]] = []
    metrics = sft_warmup(
        model,
        tokenizer,
        examples,
        steps=30,
        batch_size=8,
        lr=3e-3,
        seed=0,
        on_step=lambda step, loss: seen.append((step, loss)),
    )
    after = sft_loss(model, tokenizer, examples)
    assert after < 0.6 * before, (before, after)
    assert metrics["sft/loss_last"] < metrics["sft/loss_first"]
    assert metrics["sft/steps"] == 30
    assert metrics["sft/tokens"] > 0
    assert metrics["sft/seconds"] > 0
    assert [step for step, _ in seen] == list(range(1, 31))
    assert seen[0][1] == metrics["sft/loss_first"]
    assert seen[-1][1] == metrics["sft/loss_last"]
    assert not model.training


def test_warmup_is_deterministic_per_seed(examples) -> None:
    def run(seed: int) -> dict[str, torch.Tensor]:
        model, tokenizer = build_tiny(seed=1, config=SMALL)
        sft_warmup(model, tokenizer, examples[:8], steps=3, batch_size=4, lr=1e-3, seed=seed)
        return model.state_dict()

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": -3}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
    ],
)
def test_warmup_rejects_bad_arguments(tiny, examples, kwargs, match: str) -> None:
    model, tokenizer = tiny
    args = {"steps": 1, "batch_size": 2, "lr": 1e-3} | kwargs
    with pytest.raises(ValueError, match=match):
        sft_warmup(model, tokenizer, examples, **args)


def test_warmup_rejects_empty_examples(tiny) -> None:
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="empty"):
        sft_warmup(model, tokenizer, [], steps=1, batch_size=1, lr=1e-3)
    with pytest.raises(ValueError, match="empty"):
        sft_loss(model, tokenizer, [])


def test_warmup_rejects_an_example_longer_than_the_context() -> None:
    config = TinyConfig(
        hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2, max_position_embeddings=16
    )
    model, tokenizer = build_tiny(seed=0, config=config)
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        sft_warmup(
            model, tokenizer, [("Problem: 1\n", "Step 1: " * 20)], steps=1, batch_size=1, lr=1e-3
        )


def test_docstring_examples() -> None:
    results = doctest.testmod(sft, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0
    assert results.failed == 0
