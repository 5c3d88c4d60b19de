"""Tests for seele_agents.models.tiny: the locally built tokenizer and tiny Llama."""

from __future__ import annotations

import doctest

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (the `train` extra)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed")

import seele_agents.models.tiny as tiny  # noqa: E402
from seele_agents.models.tiny import (  # noqa: E402
    EOS_TOKEN,
    PAD_TOKEN,
    TinyConfig,
    build_tiny,
    build_tokenizer,
    default_corpus,
)

SMALL = TinyConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2)

ROUND_TRIP_TEXTS = [
    "Problem: Compute ((17 + 4) + 4) / 5.\nSolution:\n",
    "Step 1: Subtract 4 from both sides: 3x = 15.\nStep 2: x = 5. The answer is \\boxed{5}.",
    "Let $f(x) = \\frac{x^2 - 1}{x + 1}$, so $\\lim_{x \\to -1} f(x) = -2$.",
    "∫₀¹ x² dx = ⅓, α + β = γ, √2 ≈ 1.414, x ≠ y, ∀ε > 0 ∃δ",
    "Ünïcödé, 中文数学题, emoji 🎲🧮, tabs\tand\r\nnewlines\n\n  spaces  ",
    "\\begin{align} a &= b \\\\ c &= d \\end{align}",
    "",
]


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
def corpus() -> list[str]:
    return default_corpus()


@pytest.fixture(scope="module")
def tokenizer(corpus: list[str]) -> transformers.PreTrainedTokenizerFast:
    return build_tokenizer(corpus)


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_tokenizer_round_trips_any_text(tokenizer, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_tokenizer_special_tokens(tokenizer) -> None:
    assert tokenizer.eos_token == EOS_TOKEN
    assert tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.eos_token_id != tokenizer.pad_token_id
    assert tokenizer.padding_side == "right"
    # Nothing is added on encoding: the trainer appends EOS itself.
    assert (
        tokenizer("Step 1:")["input_ids"]
        == tokenizer("Step 1:", add_special_tokens=False)["input_ids"]
    )
    assert tokenizer.decode([tokenizer.eos_token_id]) == EOS_TOKEN
    assert tokenizer.decode([5, tokenizer.eos_token_id], skip_special_tokens=True) == (
        tokenizer.decode([5])
    )


def test_tokenizer_spells_numbers_digit_by_digit(tokenizer) -> None:
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("x = 127 and -40.")["input_ids"])
    digits = [t.lstrip("Ġ") for t in tokens if t.lstrip("Ġ-").isdigit()]
    assert digits == ["1", "2", "7", "4", "0"]


def test_tokenizer_compresses_the_problem_text(tokenizer, corpus: list[str]) -> None:
    # Frequent words are merged: far fewer tokens than bytes on the texts it was trained for.
    n_bytes = sum(len(text.encode()) for text in corpus[:300])
    n_tokens = sum(len(tokenizer(text)["input_ids"]) for text in corpus[:300])
    assert n_tokens < 0.6 * n_bytes
    assert len(tokenizer) <= 512


def test_tokenizer_is_deterministic(corpus: list[str], tokenizer) -> None:
    again = build_tokenizer(corpus)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()


def test_default_corpus_is_deterministic_per_seed() -> None:
    assert default_corpus(seed=1) == default_corpus(seed=1)
    assert default_corpus(seed=1) != default_corpus(seed=2)
    prompts = [t for t in default_corpus(1) if t.startswith("Problem: ")]
    assert prompts
    assert all(t.endswith("\nSolution:\n") for t in prompts)


@pytest.mark.parametrize("vocab_size", [0, 100, 259, 300.0])
def test_build_tokenizer_rejects_a_too_small_vocab(vocab_size) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(["a b c"], vocab_size=vocab_size)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_build_tiny_is_deterministic_per_seed() -> None:
    model_a, tok_a = build_tiny(seed=3, config=SMALL)
    model_b, tok_b = build_tiny(seed=3, config=SMALL)
    model_c, tok_c = build_tiny(seed=4, config=SMALL)
    a, b, c = _state(model_a), _state(model_b), _state(model_c)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if "norm" not in k)
    assert tok_a.get_vocab() == tok_b.get_vocab() == tok_c.get_vocab()


def test_build_tiny_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny(seed=9, config=SMALL)
    assert torch.equal(torch.rand(3), expected)


def test_build_tiny_default_model() -> None:
    model, tokenizer = build_tiny(seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.15e6 < n_params < 0.5e6, n_params
    assert isinstance(model, transformers.LlamaForCausalLM)
    assert model.dtype == torch.float32
    assert not model.training
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.num_hidden_layers == TinyConfig().num_layers
    assert model.config.hidden_size == TinyConfig().hidden_size
    for config in (model.config, model.generation_config):
        assert config.eos_token_id == tokenizer.eos_token_id
        assert config.pad_token_id == tokenizer.pad_token_id


def test_build_tiny_generates_and_stops_at_eos() -> None:
    model, tokenizer = build_tiny(seed=0, config=SMALL)
    # Make EOS the only likely token: generation must stop after one step and pad the rest.
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[tokenizer.eos_token_id] = 1.0
        model.model.norm.weight.fill_(10.0)
    inputs = tokenizer(["Problem: 1 + 1\nSolution:\n"], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert new[0] == tokenizer.eos_token_id
    assert len(new) == 1


def test_save_and_load_round_trip(tmp_path) -> None:
    model, tokenizer = build_tiny(seed=5, config=SMALL)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    loaded_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, transformers.LlamaForCausalLM)
    expected, got = _state(model), _state(loaded)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert loaded.generation_config.eos_token_id == tokenizer.eos_token_id
    assert loaded.generation_config.pad_token_id == tokenizer.pad_token_id
    assert loaded_tok.get_vocab() == tokenizer.get_vocab()
    assert (loaded_tok.eos_token, loaded_tok.pad_token) == (EOS_TOKEN, PAD_TOKEN)
    for text in ROUND_TRIP_TEXTS:
        ids = loaded_tok(text, add_special_tokens=False)["input_ids"]
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
        assert loaded_tok.decode(ids) == text
    ids = torch.tensor([tokenizer("Step 1: 2 + 3 = 5.")["input_ids"]])
    loaded.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_size": 30, "num_heads": 4}, "divisible"),
        ({"num_layers": 0}, "num_layers"),
        ({"hidden_size": 64.0}, "hidden_size"),
        ({"vocab_size": 100}, "vocab_size"),
    ],
)
def test_tiny_config_rejects_bad_shapes(kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TinyConfig(**kwargs)


def test_docstring_examples() -> None:
    results = doctest.testmod(tiny, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0
    assert results.failed == 0
