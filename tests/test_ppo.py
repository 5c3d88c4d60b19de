"""PPO (value head, GAE) and REINFORCE++ on a real tiny model and real rollouts."""

from __future__ import annotations

import copy
import json

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

import seele_env  # noqa: E402, F401
from seele_agents.algos.learner import token_logprobs  # noqa: E402
from seele_agents.algos.ppo import PPOLearner, ValueHead, explained_variance  # noqa: E402
from seele_agents.algos.reinforcepp import ReinforcePPLearner  # noqa: E402
from seele_agents.algos.returns import gae, token_rewards, whiten  # noqa: E402
from seele_agents.generation import SamplingParams, TransformersGenerator  # noqa: E402
from seele_agents.models.tiny import build_tiny  # noqa: E402
from seele_agents.training.rollout import collect_rollouts  # noqa: E402


@pytest.fixture(scope="module")
def rollout():
    """A small real rollout batch with hint tokens (SEELE, 2 rounds of 2) and its model."""
    model, tokenizer = build_tiny(seed=0)
    generator = TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=8), seed=0)
    env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=2, template="plain")
    batch = collect_rollouts(env, generator, num_problems=3)
    assert batch.hint_mask.any() and batch.gen_mask.any()
    # Rewards of an untrained model are mostly 0; give the batch a spread to learn from.
    batch.rewards = torch.tensor([float(i % 3 == 0) for i in range(len(batch))])
    return model, batch


def ppo_for(model, **kwargs):
    model = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return PPOLearner(model, optimizer, max_new_tokens=8, **kwargs)


def aligned(batch):
    return batch.input_ids, batch.attention_mask, batch.gen_mask[:, 1:]


def test_value_head_reads_the_state_before_each_token(rollout):
    model, batch = rollout
    learner = ppo_for(model)
    ids, attn, _ = aligned(batch)
    with torch.no_grad():
        learner.value_head.linear.weight.normal_()
        logp, values = learner.forward(ids, attn)
        hidden = learner.model(input_ids=ids, attention_mask=attn, output_hidden_states=True)
        last = hidden.hidden_states[-1]
        assert torch.allclose(logp, token_logprobs(learner.model, ids, attn), atol=1e-6)
        # column t-1 scores token t: its value is that of the state ending at token t-1
        expected = last[:, :-1].float() @ learner.value_head.linear.weight[0]
        expected = expected + learner.value_head.linear.bias
        assert values.shape == logp.shape
        assert torch.allclose(values, expected, atol=1e-5)


def test_first_ppo_targets_with_a_fresh_critic_by_hand(rollout):
    """A zero-initialised critic values every state at 0, so the first advantages are the
    lambda-discounted score, whitened: A_t = score * lambda^(L-1-t) before whitening."""
    model, batch = rollout
    learner = ppo_for(model, beta=0.0, gae_lambda=0.5)
    ids, attn, gen = aligned(batch)
    targets = learner.prepare(batch, ids, attn, gen)
    raw = torch.zeros(gen.shape)
    for row in range(len(batch)):
        cols = torch.nonzero(gen[row]).squeeze(-1)
        length = len(cols)
        raw[row, cols] = batch.rewards[row] * 0.5 ** torch.arange(length - 1, -1, -1).float()
    assert torch.allclose(targets.advantages, whiten(raw, gen), atol=1e-6)
    assert torch.equal(targets.extra["old_values"], torch.zeros(gen.shape))
    assert torch.allclose(targets.extra["returns"], raw, atol=1e-6)
    assert (targets.advantages[~gen] == 0).all()  # prompt, hint and padding: no signal
    assert targets.ref_logp is None  # PPO pays the KL in the reward, not in the loss


def test_ppo_kl_enters_the_reward(rollout):
    model, batch = rollout
    learner = ppo_for(model, beta=0.5)
    with torch.no_grad():  # a reference that differs from the policy
        for p in learner.ref_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ids, attn, gen = aligned(batch)
    targets = learner.prepare(batch, ids, attn, gen)
    old = learner.no_grad_forward(ids, attn)[0]
    ref = learner.reference_logprobs(ids, attn)
    rewards = token_rewards(batch.rewards, gen, logp=old, ref_logp=ref, beta=0.5)
    want, _ = gae(rewards, torch.zeros(gen.shape), gen, discount=1.0, lam=1.0)
    assert torch.allclose(targets.advantages, whiten(want, gen), atol=1e-5)
    assert targets.metrics["kl/reward_mean"] == pytest.approx(float((old - ref)[gen].mean()))


def test_the_critic_learns_the_returns_of_a_fixed_batch(rollout):
    """Repeated updates on one batch: the value loss falls and explained variance rises."""
    model, batch = rollout
    learner = ppo_for(model, beta=0.0, value_coef=1.0, value_clip=None)
    first = learner.step(batch)
    for _ in range(25):
        last = learner.step(batch)
    assert last["loss/value"] < 0.5 * first["loss/value"], (first["loss/value"], last)
    assert last["value/explained_variance"] > 0.3
    for key in ("loss/policy", "loss/value", "value/clip_fraction", "value/mean", "grad/norm"):
        assert np.isfinite(last[key]), key


def test_on_policy_ppo_step_has_unit_ratio(rollout):
    model, batch = rollout
    metrics = ppo_for(model).step(batch)
    assert metrics["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["clip/low_fraction"] == 0 and metrics["clip/high_fraction"] == 0
    assert metrics["optim/updates"] == 1


def test_ppo_minibatches_and_epochs_and_the_value_head_state(rollout):
    model, batch = rollout
    learner = ppo_for(model, epochs=2, minibatch_size=4, micro_batch_size=3)
    before = copy.deepcopy(learner.value_head.state_dict())
    metrics = learner.step(batch)
    assert metrics["optim/updates"] == 2 * -(-len(batch) // 4)
    state = learner.state_dict()["value_head"]
    assert not torch.equal(state["linear.weight"], before["linear.weight"])
    fresh = ppo_for(model)
    fresh.load_state_dict(learner.state_dict())
    assert torch.equal(fresh.value_head.linear.weight, learner.value_head.linear.weight)
    with pytest.raises(ValueError, match="no value head"):
        fresh.load_state_dict({})


def test_ppo_argument_errors(rollout):
    model, _ = rollout
    with pytest.raises(ValueError, match="gae_lambda=2"):
        ppo_for(model, gae_lambda=2)
    with pytest.raises(ValueError, match="value_clip=0"):
        ppo_for(model, value_clip=0)
    head = ValueHead.for_model(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="not in the optimizer"):
        PPOLearner(model, optimizer, value_head=head)


def test_explained_variance():
    mask = torch.tensor([[True, True, True, False]])
    returns = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 4), 2.0), returns, mask) == pytest.approx(0.0)
    assert np.isnan(explained_variance(returns, torch.ones(1, 4), mask))


def test_reinforcepp_advantages_by_hand(rollout):
    """Without a KL penalty every generated token's return is its sequence's score, so the
    advantage is (score - token-weighted mean score) / token-level std, the same on every token
    of a sequence."""
    model, batch = rollout
    policy = copy.deepcopy(model)
    learner = ReinforcePPLearner(policy, torch.optim.SGD(policy.parameters(), lr=0.0), beta=0.0)
    ids, attn, gen = aligned(batch)
    targets = learner.prepare(batch, ids, attn, gen)
    per_token = batch.rewards[:, None].expand(gen.shape)[gen]
    mean, std = per_token.mean(), per_token.std()
    for row in range(len(batch)):
        got = targets.advantages[row][gen[row]]
        assert torch.allclose(got, (batch.rewards[row] - mean) / (std + 1e-8), atol=1e-5)
    assert targets.old_logp is None  # on-policy and no KL: no extra forward pass


def test_reinforcepp_step_updates_the_policy(rollout):
    model, batch = rollout
    policy = copy.deepcopy(model)
    learner = ReinforcePPLearner(policy, torch.optim.AdamW(policy.parameters(), lr=1e-3), beta=0.01)
    before = [p.detach().clone() for p in learner.model.parameters()]
    metrics = learner.step(batch)
    assert any(
        not torch.equal(a, p) for a, p in zip(before, learner.model.parameters(), strict=True)
    )
    assert "kl/reward_mean" in metrics and metrics["policy/ratio_mean"] == pytest.approx(1.0)


@pytest.mark.parametrize("algo", ["ppo", "reinforcepp"])
def test_a_few_steps_raise_the_reward_on_an_easy_task(tmp_path, algo):
    """As for GRPO (tests/test_grpo.py): format bonus + correctness on one-operation
    arithmetic, a warmed-up tiny model, mean reward of fresh rollouts (no hint, sampled) before
    and after 8 steps; here with one rollout per problem. 250 warm-up steps, so the model starts
    with some reward (~0.45): from a model that never gets one (100 steps), whether 8 steps of
    any learner find it is luck (seed 1: GRPO 0.0 -> 0.07)."""
    from seele_agents.config import load_config
    from seele_agents.training.build import build

    config = load_config(None, [
        f"algo.name={algo}", "sft.steps=250", "sft.difficulty=1", "sft.num_problems=500",
        "sft.families=[arithmetic, linear, word]", "sft.lr=1e-3",  # what it was calibrated on
        "env.difficulty=1", 'env.families=["arithmetic"]', "env.num_problems=200",
        "env.format_reward=1.0", "optim.name=adamw", "optim.lr=1e-3", "optim.scheduler=constant",
        "curriculum.name=none",
        "curriculum.num_rounds=1", "curriculum.group_size=1", "generation.max_new_tokens=40",
        "eval.num_problems=8", f"output_dir={json.dumps(str(tmp_path))}",
    ])  # fmt: skip
    run = build(config, echo=lambda *_: None)

    def mean_reward() -> float:
        run.generator.set_rng_state(torch.Generator().manual_seed(123).get_state())
        batch = collect_rollouts(run.env.unwrapped, run.generator, num_problems=64,
                                 group_size=2, rng=np.random.default_rng(0))  # fmt: skip
        return batch.metrics["reward/mean"]

    before = mean_reward()
    for _ in range(8):
        run.learner.step(collect_rollouts(run.env, run.generator, num_problems=64))
    after = mean_reward()
    assert after > before + 0.2, (before, after)


def test_the_new_learner_example_in_docs_agents_md_runs(rollout):
    """docs/agents.md's "Writing a new learner" block, executed as written."""
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "agents.md").read_text(encoding="utf-8")
    section = docs.split("### Writing a new learner", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/agents.md", "exec"), namespace)  # our own docs, not model output
    model, batch = rollout
    policy = copy.deepcopy(model)
    learner = namespace["MeanBaseline"](policy, torch.optim.SGD(policy.parameters(), lr=0.1))
    before = [p.detach().clone() for p in policy.parameters()]
    metrics = learner.step(batch)
    expected = (batch.rewards - batch.rewards.mean()).abs().mean()
    assert metrics["advantage/abs_mean"] == pytest.approx(float(expected))
    assert any(not torch.equal(a, p) for a, p in zip(before, policy.parameters(), strict=True))
