"""The GRPO learner's mechanics on a real tiny model: log-prob alignment, updates, hint tokens."""

from __future__ import annotations

import copy

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

import seele_env  # noqa: E402, F401
from seele_agents.algos.grpo import GRPOLearner, token_logprobs  # noqa: E402
from seele_agents.generation import SamplingParams, TransformersGenerator  # noqa: E402
from seele_agents.models.tiny import build_tiny  # noqa: E402
from seele_agents.training.rollout import collect_rollouts  # noqa: E402


@pytest.fixture(scope="module")
def rollout():
    """A small real rollout batch (SEELE, 2 rounds of 2) and the model that sampled it."""
    model, tokenizer = build_tiny(seed=0)
    generator = TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=8), seed=0)
    env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=2, template="plain")
    batch = collect_rollouts(env, generator, num_problems=3)
    return model, batch


def learner_for(model, **kwargs):
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return GRPOLearner(model, optimizer, max_new_tokens=8, **kwargs)


def test_token_logprobs_align_with_sampling_logprobs(rollout):
    model, batch = rollout
    with torch.no_grad():
        logp = token_logprobs(model, batch.input_ids, batch.attention_mask)  # [B, T-1]
    gen = batch.gen_mask[:, 1:]
    for row, episode in enumerate(batch.episodes):
        assert logp[row][gen[row]].tolist() == pytest.approx(episode.sample.logprobs, abs=2e-4)


def test_equal_rewards_and_no_extra_terms_leave_the_model_unchanged(rollout):
    """With every group's rewards equal, advantages are 0; with beta = gamma = 0 nothing moves."""
    model, batch = rollout
    batch = copy.copy(batch)
    batch.rewards = torch.zeros_like(batch.rewards)
    learner = learner_for(model, beta=0.0, gamma=0.0)
    before = [p.detach().clone() for p in learner.model.parameters()]
    metrics = learner.step(batch)
    assert all(torch.equal(a, b) for a, b in zip(before, learner.model.parameters(), strict=True))
    assert metrics["loss/policy"] == 0.0
    assert metrics["reward/zero_std_fraction"] == 1.0


def test_only_the_imitation_term_moves_hint_logprobs_when_advantages_vanish(rollout):
    """gamma > 0 with zero advantages: the update raises log pi(hint | x) and nothing else."""
    model, batch = rollout
    assert batch.hint_mask.any()
    batch = copy.copy(batch)
    batch.rewards = torch.zeros_like(batch.rewards)
    learner = learner_for(model, beta=0.0, gamma=1.0)
    hint = batch.hint_mask[:, 1:]
    with torch.no_grad():
        before = token_logprobs(learner.model, batch.input_ids, batch.attention_mask)[hint].sum()
    metrics = learner.step(batch)
    with torch.no_grad():
        after = token_logprobs(learner.model, batch.input_ids, batch.attention_mask)[hint].sum()
    assert after > before
    assert metrics["loss/imitation"] > 0


def test_on_policy_update_has_unit_ratio_and_reports_metrics(rollout):
    model, batch = rollout
    batch = copy.copy(batch)
    batch.rewards = torch.arange(len(batch), dtype=torch.float) % 2  # mixed groups
    learner = learner_for(model)
    metrics = learner.step(batch)
    assert metrics["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["clip/low_fraction"] == 0.0 and metrics["clip/high_fraction"] == 0.0
    assert metrics["optim/updates"] == 1.0
    for key in ("loss/policy", "loss/kl", "loss/imitation", "loss/total", "grad/norm",
                "optim/lr", "advantage/abs_mean", "time/train_s"):  # fmt: skip
        assert key in metrics


def test_minibatches_and_epochs(rollout):
    """Several updates per batch: the first minibatch of epoch 1 is on-policy, later ones are
    not (the ratio moves away from 1), and the micro-batch split does not change the result."""
    model, batch = rollout
    batch = copy.copy(batch)
    batch.rewards = torch.arange(len(batch), dtype=torch.float) % 2
    torch.manual_seed(0)
    a = learner_for(model, epochs=2, minibatch_size=6, micro_batch_size=6)
    metrics = a.step(batch)
    assert metrics["optim/updates"] == 4.0
    assert metrics["policy/ratio_mean"] != pytest.approx(1.0, abs=1e-7)
    torch.manual_seed(0)
    b = learner_for(model, epochs=2, minibatch_size=6, micro_batch_size=2)
    b.step(batch)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_reference_is_a_frozen_copy(rollout):
    model, _ = rollout
    learner = learner_for(model, beta=0.1)
    assert learner.ref_model is not learner.model
    assert not any(p.requires_grad for p in learner.ref_model.parameters())
    assert learner_for(model, beta=0.0).ref_model is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"epochs": 0}, "epochs"), ({"micro_batch_size": 0}, "micro_batch_size"),
     ({"minibatch_size": -1}, "minibatch_size")],
)  # fmt: skip
def test_bad_learner_arguments(rollout, kwargs, match):
    model, _ = rollout
    with pytest.raises(ValueError, match=match):
        learner_for(model, **kwargs)


def test_a_few_grpo_steps_raise_the_reward_on_an_easy_task(tmp_path):
    """The whole learner on a task a briefly warmed-up tiny model can improve at within a few
    steps: the env's reward is 1 for an answer given as \\boxed{} (format_reward) plus 1 when it
    is right, on one-operation arithmetic. Mean reward of fresh rollouts (no hint, sampled),
    before and after 8 GRPO steps."""
    import json

    import numpy as np

    from seele_agents.config import load_config
    from seele_agents.training.build import build

    config = load_config(None, [
        "sft.steps=100", "sft.difficulty=1", "sft.num_problems=500", "env.difficulty=1",
        "sft.families=[arithmetic, linear, word]", "sft.lr=1e-3",  # what it was calibrated on
        'env.families=["arithmetic"]', "env.num_problems=200", "env.format_reward=1.0",
        "optim.name=adamw", "optim.lr=1e-3", "optim.scheduler=constant",
        "curriculum.name=none", "curriculum.num_rounds=1",
        "curriculum.group_size=8", "generation.max_new_tokens=40", "eval.num_problems=8",
        f"output_dir={json.dumps(str(tmp_path))}",
    ])  # fmt: skip
    run = build(config, echo=lambda *_: None)

    def mean_reward() -> float:
        run.generator.set_rng_state(torch.Generator().manual_seed(123).get_state())
        batch = collect_rollouts(run.env.unwrapped, run.generator, num_problems=64,
                                 group_size=2, rng=np.random.default_rng(0))  # fmt: skip
        return batch.metrics["reward/mean"]

    before = mean_reward()
    for _ in range(8):
        run.learner.step(collect_rollouts(run.env, run.generator, num_problems=8))
    after = mean_reward()
    assert after > before + 0.2, (before, after)
