"""The transformers generation backend: forced hints, log-probs, padding, determinism."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents.generation import (  # noqa: E402
    GenerationRequest,
    Generator,
    SamplingParams,
    TransformersGenerator,
    encode,
)
from seele_agents.models.tiny import build_tiny  # noqa: E402

PROMPTS = [
    "Problem: What is 3 + 4?\nSolution:\n",
    "Problem: Solve for x: 2x + 1 = 7.\nSolution:\n",
    "Problem: Tom has 5 apples and buys 3 more. How many apples does he have now?\nSolution:\n",
]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny(seed=0)


def teacher_forced_logprobs(model, ids: list[int], start: int, temperature: float = 1.0):
    """Log-probs of ids[start:] given the prefix, from one unpadded forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float() / temperature
    logp = logits.log_softmax(-1)
    return [float(logp[t - 1, ids[t]]) for t in range(start, len(ids))]


def test_protocol_and_parts(tiny):
    model, tokenizer = tiny
    generator = TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=12))
    assert isinstance(generator, Generator)
    requests = [GenerationRequest(PROMPTS[0], "Step 1: 3 + 4"), GenerationRequest(PROMPTS[1])]
    samples = generator.generate(requests)
    assert len(samples) == 2
    for request, sample in zip(requests, samples, strict=True):
        assert sample.prompt_ids == encode(tokenizer, request.prompt)
        assert sample.forced_ids == encode(tokenizer, request.forced)
        assert 1 <= len(sample.completion_ids) <= 12
        assert len(sample.logprobs) == len(sample.completion_ids)
        ends_with_eos = sample.completion_ids[-1] == tokenizer.eos_token_id
        assert sample.finish_reason == ("stop" if ends_with_eos else "length")
        if sample.finish_reason == "length":
            assert len(sample.completion_ids) == 12
        assert sample.text == tokenizer.decode(sample.completion_ids, skip_special_tokens=True)
    assert samples[1].forced_ids == []


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_match_a_teacher_forced_pass(tiny, temperature):
    """Batched, left-padded, KV-cached sampling reports the same log-probs as one plain
    forward pass over each finished sequence (an independent route)."""
    model, tokenizer = tiny
    params = SamplingParams(max_new_tokens=10, temperature=temperature)
    generator = TransformersGenerator(model, tokenizer, params, seed=3)
    requests = [GenerationRequest(p, "Step 1:") for p in PROMPTS]
    for sample in generator.generate(requests):
        ids = sample.prompt_ids + sample.forced_ids + sample.completion_ids
        start = len(sample.prompt_ids) + len(sample.forced_ids)
        expected = teacher_forced_logprobs(model, ids, start, temperature)
        assert sample.logprobs == pytest.approx(expected, abs=2e-4)


def test_greedy_matches_transformers_generate_and_ignores_padding(tiny):
    model, tokenizer = tiny
    params = SamplingParams(max_new_tokens=8, temperature=0)
    generator = TransformersGenerator(model, tokenizer, params)
    batched = generator.generate([GenerationRequest(p) for p in PROMPTS])
    for prompt, sample in zip(PROMPTS, batched, strict=True):
        ids = torch.tensor([encode(tokenizer, prompt)])
        with torch.no_grad():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        reference = out[0, ids.shape[1] :].tolist()
        assert sample.completion_ids == reference[: len(sample.completion_ids)]
        # Alone (no padding) gives the same tokens as inside the padded batch.
        [alone] = generator.generate([GenerationRequest(prompt)])
        assert alone.completion_ids == sample.completion_ids


def test_top_k_one_is_greedy(tiny):
    model, tokenizer = tiny
    generator = TransformersGenerator(model, tokenizer)
    requests = [GenerationRequest(p) for p in PROMPTS]
    greedy = generator.generate(requests, SamplingParams(max_new_tokens=6, temperature=0))
    top1 = generator.generate(requests, SamplingParams(max_new_tokens=6, top_k=1))
    assert [s.completion_ids for s in top1] == [s.completion_ids for s in greedy]
    assert all(lp == pytest.approx(0.0, abs=1e-6) for s in top1 for lp in s.logprobs)


def test_sampling_is_deterministic_per_seed_and_rng_state(tiny):
    model, tokenizer = tiny
    requests = [GenerationRequest(PROMPTS[0])] * 4
    params = SamplingParams(max_new_tokens=6)

    def run(seed):
        return [
            s.completion_ids
            for s in TransformersGenerator(model, tokenizer, params, seed=seed).generate(requests)
        ]

    assert run(1) == run(1)
    assert run(1) != run(2)
    generator = TransformersGenerator(model, tokenizer, params, seed=5)
    state = generator.get_rng_state()
    first = [s.completion_ids for s in generator.generate(requests)]
    generator.set_rng_state(state)
    assert [s.completion_ids for s in generator.generate(requests)] == first


def test_top_p_keeps_only_the_nucleus(tiny):
    """With a tiny top_p only the most likely token survives: top-p sampling is greedy."""
    model, tokenizer = tiny
    generator = TransformersGenerator(model, tokenizer)
    requests = [GenerationRequest(p) for p in PROMPTS]
    greedy = generator.generate(requests, SamplingParams(max_new_tokens=5, temperature=0))
    nucleus = generator.generate(requests, SamplingParams(max_new_tokens=5, top_p=1e-6))
    assert [s.completion_ids for s in nucleus] == [s.completion_ids for s in greedy]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"max_new_tokens": 4, "min_new_tokens": 5}, "min_new_tokens=5"),
        ({"min_new_tokens": -1}, "min_new_tokens=-1"),
    ],
)
def test_bad_sampling_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams(**kwargs)


def test_bad_generator_arguments(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="batch_size"):
        TransformersGenerator(model, tokenizer, batch_size=0)
    with pytest.raises(ValueError, match="empty prompt"):
        TransformersGenerator(model, tokenizer).generate([GenerationRequest("")])


@pytest.mark.parametrize(
    ("min_new_tokens", "length", "reason"), [(0, 1, "stop"), (5, 6, "stop"), (8, 8, "length")]
)
def test_min_new_tokens_masks_eos_until_reached(tiny, min_new_tokens, length, reason):
    """With the EOS logit pushed far up the model would stop at once; min_new_tokens holds
    EOS back for that many tokens, after which it comes at once."""
    model, tokenizer = tiny
    eos = tokenizer.eos_token_id

    def eager_to_stop(module, args, output):
        output.logits[..., eos] += 50.0
        return output

    handle = model.register_forward_hook(eager_to_stop)
    try:
        params = SamplingParams(max_new_tokens=8, min_new_tokens=min_new_tokens)
        samples = TransformersGenerator(model, tokenizer, params, seed=0).generate(
            [GenerationRequest(p) for p in PROMPTS]
        )
    finally:
        handle.remove()
    for sample in samples:
        assert len(sample.completion_ids) == length and sample.finish_reason == reason
        assert eos not in sample.completion_ids[:min_new_tokens]
        assert all(lp <= 0.0 for lp in sample.logprobs)
