"""Advantages: hand-computed tables, an independent plain-Python route, and input checks."""

from __future__ import annotations

import math
import random
import statistics

import pytest
import torch

from seele_agents.algos.advantages import ADVANTAGES, compute_advantages, group_stats

# Three problems, listed here in problem order. Problems 7 and 3: two rounds of two rollouts;
# problem 10: one round of three. Ids are not dense, and the rows are then interleaved (_ORDER) so
# that the grouping, not the row order, decides the result.
#   problem 7:  round 0 [0, 0], round 1 [1, 0]
#   problem 3:  round 0 [1, 0], round 1 [1, 1]
#   problem 10: round 0 [1, 0, 0]
_ORDER = [0, 4, 1, 5, 2, 6, 3, 7, 8, 9, 10]
PROBLEM = torch.tensor([7, 7, 7, 7, 3, 3, 3, 3, 10, 10, 10])[_ORDER]
ROUND = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0])[_ORDER]
REWARD = torch.tensor([0.0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0])[_ORDER]
S3, S2 = math.sqrt(3), math.sqrt(2)
# Expected values in problem order (permuted like the inputs in the test):
# pooled, problem 7: mean 1/4 -> r - 1/4; pop. std sqrt(1/4 · 3/4) = sqrt(3)/4,
#   so GRPO gives -1/4 / (sqrt3/4) = -1/sqrt3 and 3/4 / (sqrt3/4) = sqrt3.
# pooled, problem 3: mean 3/4 -> [1/4, -3/4, 1/4, 1/4]; GRPO [1/sqrt3, -sqrt3, 1/sqrt3, 1/sqrt3].
# problem 10 (one round, so pooled = round): mean 1/3 -> [2/3, -1/3, -1/3];
#   pop. std sqrt(1/3 · 2/3) = sqrt2/3 -> GRPO [sqrt2, -1/sqrt2, -1/sqrt2].
# round, problem 7: round 0 all 0 -> [0, 0]; round 1 [1, 0], mean 1/2, std 1/2 -> dr [1/2, -1/2],
#   GRPO [1, -1]. round, problem 3: round 0 [1, 0] -> same; round 1 all 1 -> [0, 0].
_P10_DR = [2 / 3, -1 / 3, -1 / 3]
_P10_GRPO = [S2, -1 / S2, -1 / S2]
EXPECTED = {
    ("dr_grpo", "pooled"): [-1 / 4, -1 / 4, 3 / 4, -1 / 4, 1 / 4, -3 / 4, 1 / 4, 1 / 4, *_P10_DR],
    ("grpo", "pooled"): [-1 / S3, -1 / S3, S3, -1 / S3, 1 / S3, -S3, 1 / S3, 1 / S3, *_P10_GRPO],
    ("dr_grpo", "round"): [0, 0, 1 / 2, -1 / 2, 1 / 2, -1 / 2, 0, 0, *_P10_DR],
    ("grpo", "round"): [0, 0, 1, -1, 1, -1, 0, 0, *_P10_GRPO],
}


@pytest.mark.parametrize(("estimator", "baseline"), list(EXPECTED))
def test_table_of_estimators_and_baselines(estimator: str, baseline: str) -> None:
    expected = torch.tensor(EXPECTED[estimator, baseline])[_ORDER]
    out = compute_advantages(
        REWARD, PROBLEM, ROUND, estimator=estimator, baseline=baseline, eps=0.0
    )
    assert out.dtype == torch.float32 and out.shape == REWARD.shape
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-7)


def test_default_is_dr_grpo_pooled_and_pooled_ignores_rounds() -> None:
    default = compute_advantages(REWARD, PROBLEM)
    torch.testing.assert_close(default, torch.tensor(EXPECTED["dr_grpo", "pooled"])[_ORDER])
    torch.testing.assert_close(compute_advantages(REWARD, PROBLEM, ROUND), default)


def test_grpo_adds_eps_to_the_std() -> None:
    # One group [1, 0, 0]: mean 1/3, pop. std sqrt2/3; with eps = 0.1 the first advantage is
    # (2/3) / (sqrt2/3 + 0.1).
    out = compute_advantages(
        torch.tensor([1.0, 0.0, 0.0]), torch.zeros(3, dtype=torch.long), estimator="grpo", eps=0.1
    )
    assert out[0].item() == pytest.approx((2 / 3) / (S2 / 3 + 0.1), rel=1e-6)


@pytest.mark.parametrize("estimator", sorted(ADVANTAGES))
@pytest.mark.parametrize("eps", [0.0, 1e-6])
@pytest.mark.parametrize(
    "rewards",
    [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.1], [0.7], [1e-30, 1e-30], [-3.0, -3.0]],
)
def test_all_equal_groups_give_exact_zeros(estimator: str, eps: float, rewards: list) -> None:
    # eps = 0 would give 0/0 in GRPO without the explicit rule; float rewards such as 0.1 would
    # leave rounding residue in r - mean.
    groups = torch.zeros(len(rewards), dtype=torch.long)
    out = compute_advantages(torch.tensor(rewards), groups, estimator=estimator, eps=eps)
    assert torch.equal(out, torch.zeros(len(rewards)))


def _reference(
    rewards: list[float], groups: list[int], rounds: list[int], estimator: str, baseline: str
) -> list[float]:
    """Plain-Python loop over groups (statistics.fmean / pstdev), eps = 0."""
    keys = [(g, r) if baseline == "round" else g for g, r in zip(groups, rounds, strict=True)]
    members: dict[object, list[float]] = {}
    for key, reward in zip(keys, rewards, strict=True):
        members.setdefault(key, []).append(reward)
    out = []
    for key, reward in zip(keys, rewards, strict=True):
        values = members[key]
        if max(values) == min(values):
            out.append(0.0)
            continue
        centred = reward - statistics.fmean(values)
        out.append(centred / statistics.pstdev(values) if estimator == "grpo" else centred)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("estimator", sorted(ADVANTAGES))
@pytest.mark.parametrize("baseline", ["pooled", "round"])
def test_matches_a_plain_python_loop(seed: int, estimator: str, baseline: str) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 60)
    groups = [rng.randint(-2, 6) for _ in range(size)]
    rounds = [rng.randint(0, 3) for _ in range(size)]
    if seed % 2:
        rewards = [float(rng.random() < 0.4) for _ in range(size)]  # 0/1, many constant groups
    else:
        rewards = [round(rng.uniform(-1, 2), 3) for _ in range(size)]
    out = compute_advantages(
        torch.tensor(rewards, dtype=torch.float64),
        torch.tensor(groups),
        torch.tensor(rounds),
        estimator=estimator,
        baseline=baseline,
        eps=0.0,
    )
    expected = _reference(rewards, groups, rounds, estimator, baseline)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float32))


def test_integer_rewards_and_empty_batch() -> None:
    out = compute_advantages(torch.tensor([1, 0]), torch.tensor([0, 0]))
    torch.testing.assert_close(out, torch.tensor([0.5, -0.5]))
    empty = compute_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0,) and empty.dtype == torch.float32


def test_result_carries_no_gradient() -> None:
    rewards = torch.tensor([1.0, 0.0], requires_grad=True)
    assert not compute_advantages(rewards, torch.tensor([0, 0])).requires_grad


_GROUPS = torch.tensor([0, 0, 1])
_REWARDS = torch.tensor([1.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((_REWARDS, _GROUPS), {"estimator": "dr-grpo"}, "Did you mean 'dr_grpo'"),
        ((_REWARDS, _GROUPS), {"estimator": "gpro"}, "Did you mean 'grpo'"),
        ((_REWARDS, _GROUPS), {"baseline": "rounds"}, "Did you mean 'round'"),
        ((_REWARDS, _GROUPS), {"baseline": "round"}, "needs round_index"),
        ((_REWARDS, _GROUPS, torch.tensor([0, 1])), {"baseline": "round"}, r"round_index.*\(3,\)"),
        ((_REWARDS, torch.tensor([0, 0])), {}, r"group_index has shape \(2,\)"),
        ((_REWARDS, _GROUPS.float()), {}, "integer ids"),
        ((_REWARDS[None], _GROUPS), {}, "1-D"),
        ((torch.tensor([1.0, math.nan, 0.0]), _GROUPS), {}, "nan"),
        ((_REWARDS, _GROUPS), {"eps": -1.0}, "eps=-1.0"),
    ],
)
def test_bad_input_is_named(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compute_advantages(*args, **kwargs)


# -- group_stats -----------------------------------------------------------------------------------


def test_group_stats_by_hand() -> None:
    # Groups: 0 -> [1, 0] (std 1/2), 1 -> [1, 1] (std 0, constant), 2 -> [1, 0, 0] (std sqrt2/3).
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    stats = group_stats(rewards, groups)
    assert set(stats) == {"reward/group_std_mean", "reward/zero_std_fraction"}
    assert stats["reward/group_std_mean"] == pytest.approx((0.5 + 0 + S2 / 3) / 3)  # 0.32380
    assert stats["reward/zero_std_fraction"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", range(4))
def test_group_stats_match_a_plain_python_loop(seed: int) -> None:
    rng = random.Random(seed)
    groups = [rng.randint(0, 9) for _ in range(40)]
    rewards = [float(rng.random() < 0.5) for _ in range(40)]
    members: dict[int, list[float]] = {}
    for g, r in zip(groups, rewards, strict=True):
        members.setdefault(g, []).append(r)
    stds = [statistics.pstdev(v) for v in members.values()]
    stats = group_stats(torch.tensor(rewards), torch.tensor(groups))
    assert stats["reward/group_std_mean"] == pytest.approx(statistics.fmean(stds))
    zero = sum(max(v) == min(v) for v in members.values()) / len(members)
    assert stats["reward/zero_std_fraction"] == pytest.approx(zero)


def test_group_stats_rejects_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least one sequence"):
        group_stats(torch.zeros(0), torch.zeros(0, dtype=torch.long))
