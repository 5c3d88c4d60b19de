"""Token rewards, GAE, returns, whitening and the value loss, against numbers worked by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents.algos.returns import (  # noqa: E402
    discounted_returns,
    gae,
    last_token_index,
    token_rewards,
    value_loss,
    whiten,
)


def mask_of(rows: list[str]) -> torch.Tensor:
    """'.' = not generated (prompt, hint, padding), 'g' = generated."""
    return torch.tensor([[c == "g" for c in row] for row in rows])


def test_last_token_index():
    mask = mask_of(["..ggg.", "g.....", "......", "gggggg"])
    assert last_token_index(mask).tolist() == [4, 0, -1, 5]


def test_token_rewards_pay_the_score_at_the_last_generated_token():
    mask = mask_of([".ggg..", "..gg..", "......"])
    rewards = token_rewards(torch.tensor([1.0, 0.5, 1.0]), mask)
    assert rewards.tolist() == [
        [0, 0, 0, 1.0, 0, 0],
        [0, 0, 0, 0.5, 0, 0],
        [0, 0, 0, 0, 0, 0],  # no generated token: the score has nowhere to go
    ]


def test_token_rewards_with_a_kl_penalty():
    mask = mask_of([".gg"])
    logp = torch.log(torch.tensor([[0.9, 0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.1, 0.25, 0.5]]))
    rewards = token_rewards(torch.tensor([1.0]), mask, logp=logp, ref_logp=ref, beta=0.1)
    # -0.1 * log(0.5 / 0.25) = -0.1 ln 2; last: 1 - 0.1 * log(0.25 / 0.5) = 1 + 0.1 ln 2.
    expected = [0.0, -0.1 * math.log(2), 1 + 0.1 * math.log(2)]
    assert rewards[0].tolist() == pytest.approx(expected, abs=1e-6)
    # beta = 0 ignores the log-probs entirely.
    plain = token_rewards(torch.tensor([1.0]), mask, logp=logp, ref_logp=ref, beta=0.0)
    assert plain[0].tolist() == [0, 0, 1.0]


def test_gae_by_hand():
    """rewards (0, 0, 1), values 0.5 each, discount 1, lambda 0.5:
    deltas = (0 + 0.5 - 0.5, 0 + 0.5 - 0.5, 1 + 0 - 0.5) = (0, 0, 0.5);
    A_2 = 0.5, A_1 = 0 + 0.5 * 0.5 = 0.25, A_0 = 0 + 0.5 * 0.25 = 0.125; R = A + V."""
    mask = mask_of(["ggg"])
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    advantages, returns = gae(rewards, torch.full((1, 3), 0.5), mask, discount=1.0, lam=0.5)
    assert advantages[0].tolist() == pytest.approx([0.125, 0.25, 0.5])
    assert returns[0].tolist() == pytest.approx([0.625, 0.75, 1.0])


def test_gae_with_a_discount_by_hand():
    """discount 0.9, lambda 1, values (0.2, 0.4): delta_1 = 1 - 0.4 = 0.6,
    delta_0 = 0 + 0.9 * 0.4 - 0.2 = 0.16, A_0 = 0.16 + 0.9 * 0.6 = 0.7 (= 0.9 * 1 - 0.2)."""
    mask = mask_of(["gg"])
    advantages, returns = gae(
        torch.tensor([[0.0, 1.0]]), torch.tensor([[0.2, 0.4]]), mask, discount=0.9, lam=1.0
    )
    assert advantages[0].tolist() == pytest.approx([0.7, 0.6])
    assert returns[0].tolist() == pytest.approx([0.9, 1.0])


def test_gae_skips_positions_outside_the_mask():
    """A row with prompt, hint and padding positions equals its generated tokens packed."""
    packed_mask = mask_of(["ggg"])
    rewards = torch.tensor([[0.1, -0.2, 1.0]])
    values = torch.tensor([[0.3, 0.6, 0.2]])
    want_adv, want_ret = gae(rewards, values, packed_mask, discount=0.95, lam=0.9)

    spread_mask = mask_of(["..g.gg.."])  # a gap in the middle too
    spread_rewards = torch.zeros(1, 8)
    spread_values = torch.full((1, 8), 99.0)  # values outside the mask must not leak in
    for col, k in zip((2, 4, 5), range(3), strict=True):
        spread_rewards[0, col], spread_values[0, col] = rewards[0, k], values[0, k]
    adv, ret = gae(spread_rewards, spread_values, spread_mask, discount=0.95, lam=0.9)
    assert adv[0, [2, 4, 5]].tolist() == pytest.approx(want_adv[0].tolist())
    assert ret[0, [2, 4, 5]].tolist() == pytest.approx(want_ret[0].tolist())
    assert adv[0, [0, 1, 3, 6, 7]].abs().sum() == 0 and ret[0, [0, 1, 3, 6, 7]].abs().sum() == 0


def test_gae_with_lambda_one_and_zero_values_is_the_return():
    mask = mask_of([".ggg", "gg.."])
    rewards = torch.tensor([[0.0, -0.1, -0.1, 1.0], [0.5, 0.25, 0.0, 0.0]])
    returns = discounted_returns(rewards, mask, discount=1.0)
    assert returns[0].tolist() == pytest.approx([0, 0.8, 0.9, 1.0])
    assert returns[1].tolist() == pytest.approx([0.75, 0.25, 0, 0])
    half = discounted_returns(rewards, mask, discount=0.5)
    assert half[0].tolist() == pytest.approx([0, -0.1 - 0.05 + 0.25, -0.1 + 0.5, 1.0])


def test_whiten_over_masked_entries_only():
    mask = mask_of(["gg.", "g.g"])
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, -50.0, 4.0]])
    out = whiten(values, mask)
    # mean 2.5, unbiased std sqrt(5/3)
    std = math.sqrt(5 / 3)
    assert out[mask].tolist() == pytest.approx([(x - 2.5) / std for x in (1, 2, 3, 4)])
    assert out[~mask].tolist() == [0, 0]
    scaled = whiten(values, mask, shift_mean=False)
    assert scaled[mask].tolist() == pytest.approx([(x - 2.5) / std + 2.5 for x in (1, 2, 3, 4)])
    assert whiten(values, mask_of(["...", "..."])).abs().sum() == 0
    assert whiten(values, mask_of(["g..", "..."]))[0, 0] == 0  # one entry: centred, unscaled


def test_value_loss_by_hand():
    old = torch.tensor([0.0, 0.0, 0.0])
    values = torch.tensor([1.0, 0.1, -1.0])
    returns = torch.tensor([2.0, 0.5, 0.0])
    loss, clipped = value_loss(values, old, returns, clip=0.2)
    # 1: max((1-2)^2, (0.2-2)^2) = 3.24; 2: within the clip, (0.1-0.5)^2 = 0.16;
    # 3: max((-1-0)^2, (-0.2-0)^2) = 1. Halved.
    assert loss.tolist() == pytest.approx([1.62, 0.08, 0.5])
    assert clipped.tolist() == [True, False, False]
    plain, none = value_loss(values, old, returns, clip=None)
    assert plain.tolist() == pytest.approx([0.5, 0.08, 0.5]) and not none.any()


def test_value_loss_gradient_vanishes_where_clipped():
    values = torch.tensor([1.0, 0.1], requires_grad=True)
    loss, _ = value_loss(values, torch.zeros(2), torch.tensor([2.0, 0.5]), clip=0.2)
    loss.sum().backward()
    assert values.grad.tolist() == pytest.approx([0.0, 0.1 - 0.5])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: gae(torch.zeros(1, 3), torch.zeros(1, 2), m), "values has shape"),
        (lambda m: gae(torch.zeros(1, 3), torch.zeros(1, 3), m, lam=1.5), "lam=1.5"),
        (lambda m: gae(torch.zeros(1, 3), torch.zeros(1, 3), m.float()), "bool"),
        (lambda m: token_rewards(torch.zeros(2), m), "one per sequence"),
        (lambda m: token_rewards(torch.zeros(1), m, beta=-1), "beta=-1"),
        (lambda m: token_rewards(torch.zeros(1), m, ref_logp=torch.zeros(1, 3), beta=1), "no logp"),
        (lambda m: value_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), clip=0), "clip=0"),
    ],
)
def test_bad_arguments_name_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call(mask_of(["ggg"]))
