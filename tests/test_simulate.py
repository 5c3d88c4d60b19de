"""Synthetic learners and SyntheticEnv: population, true curves, sampling, learning, the env."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from seele_env import EnvUsageError, HintError, MathHintEnv, hint_length
from seele_env.simulate import SyntheticEnv, SyntheticLearner


@pytest.fixture(scope="module")
def population() -> SyntheticLearner:
    return SyntheticLearner(4000, seed=3)


# -- population -----------------------------------------------------------------------------------


def test_same_seed_same_population_and_samples_other_seed_differs() -> None:
    a, b, c = (SyntheticLearner(300, seed=s) for s in (5, 5, 6))
    for name in ("k", "mu", "b", "n_units"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))
    idx = np.arange(300)
    assert np.array_equal(a.sample(idx, 0.7, n=8), b.sample(idx, 0.7, n=8))
    assert not np.array_equal(a.sample(idx, 0.7, n=8), c.sample(idx, 0.7, n=8))


def test_population_statistics_are_within_their_ranges(population) -> None:
    L = population
    assert L.problem_ids[:2] == ("syn-0000", "syn-0001") and len(L.problem_ids) == 4000
    assert L.k.min() >= 4.0 and L.k.max() <= 50.0
    # log-uniform: the median is the geometric mean of the ends, not the arithmetic one
    assert abs(np.median(L.k) - math.sqrt(4 * 50)) < 1.5
    assert (-L.mu).min() >= 0.4 and (-L.mu).max() <= 0.9
    assert np.all((L.b >= 0) & (L.b <= 0.25))
    assert 0.8 < np.mean(L.b < 0.05) < 0.95  # mostly near 0, a minority with a guessing floor
    assert L.n_units.dtype.kind == "i" and L.n_units.min() >= 100 and L.n_units.max() <= 800
    steps = SyntheticLearner(2000, units="steps").n_units
    assert set(np.unique(steps)) <= {1, 2, 3, 4, 5} and np.mean(steps >= 3) > 0.75
    assert 0.02 < L.no_hint_accuracy() < 0.1


def test_accuracy_is_the_3pl_curve_and_broadcasts(population) -> None:
    L = population
    k, mu, b = L.k[7], L.mu[7], L.b[7]
    expected = b + (1 - b) / (1 + math.exp(-k * (0.6 + mu)))
    assert L.accuracy(7, 0.6) == pytest.approx(expected, rel=1e-12)
    assert L.accuracy("syn-0007", 0.6) == pytest.approx(expected, rel=1e-12)
    grid = L.accuracy(np.arange(3)[:, None], np.linspace(0, 1, 5)[None, :])
    assert grid.shape == (3, 5) and np.all(np.diff(grid, axis=1) > 0)  # more hint, more accuracy
    assert L.accuracy(7, 0.0) == pytest.approx(L.b[7] + (1 - b) / (1 + math.exp(-k * mu)))


def test_oracle_rate_hits_the_target(population) -> None:
    idx = np.arange(200)
    p = population.oracle_hint_rate(idx, 0.5)
    inside = (p > 0) & (p < 1)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(population.accuracy(idx[inside], p[inside]), 0.5, atol=1e-9)


def test_sample_frequencies_converge_to_accuracy() -> None:
    L = SyntheticLearner(20, seed=1)
    idx, rates = np.array([0, 1, 2, 3]), np.array([0.0, 0.55, 0.7, 1.0])
    draws = L.sample(idx, rates, n=20_000)
    assert draws.shape == (4, 20_000) and draws.dtype == bool
    np.testing.assert_allclose(draws.mean(axis=1), L.accuracy(idx, rates), atol=0.01)


def test_index_accepts_ids_and_ints_and_names_unknown_ones() -> None:
    L = SyntheticLearner(10)
    assert L.index(["syn-0009", 2, np.int64(4)]).tolist() == [9, 2, 4]
    assert L.index(np.array([[1, 2]])).shape == (1, 2)
    for bad in ("syn-0010", 10, -1, "foo", [1, 10]):
        with pytest.raises(KeyError, match="unknown problem"):
            L.index(bad)
    with pytest.raises(KeyError, match="did you mean 'syn-0001'"):
        L.index("syn-001")


# -- learning -------------------------------------------------------------------------------------


def test_groups_that_all_agree_teach_nothing() -> None:
    L = SyntheticLearner(50)
    mu = L.mu.copy()
    outcomes = np.array([[True] * 8, [False] * 8, [True] * 8])
    metrics = L.learn([0, 1, 2], [0.3, 0.0, 1.0], outcomes)
    assert np.array_equal(L.mu, mu) and metrics["signal"] == 0.0 and metrics["informative"] == 0.0
    assert L.steps_trained == 1


def test_a_mixed_group_raises_its_own_problem_most() -> None:
    L = SyntheticLearner(50, own_rate=0.1, transfer_rate=0.02, hint_transfer=0.5)
    mu = L.mu.copy()
    L.learn([4], [0.5], [[True] * 4 + [False] * 4])  # signal 1, weight 1 - 0.5·0.5
    delta = L.mu - mu
    transfer = 0.02 * 0.75 / 50
    assert delta[4] == pytest.approx(0.1 * 0.75 + transfer)
    np.testing.assert_allclose(np.delete(delta, 4), transfer)


def test_own_signal_is_the_mean_over_a_problems_groups() -> None:
    L = SyntheticLearner(10, own_rate=1.0, transfer_rate=0.0, hint_transfer=1.0)
    mu = L.mu.copy()
    L.learn([2, 2], [0.0, 0.0], [[True, False], [True, True]])  # signals 1 and 0
    assert L.mu[2] - mu[2] == pytest.approx(0.5)


def test_hint_transfer_zero_makes_a_full_hint_worthless() -> None:
    L = SyntheticLearner(10, hint_transfer=0.0)
    mu = L.mu.copy()
    metrics = L.learn([0, 1], [1.0, 1.0], [[True, False]] * 2)
    assert np.array_equal(L.mu, mu) and metrics["signal"] == 1.0
    assert metrics["weighted_signal"] == 0.0


def test_mu_is_capped_at_mu_max() -> None:
    L = SyntheticLearner(5, own_rate=10.0, transfer_rate=10.0, mu_max=0.3)
    for _ in range(3):
        L.learn([0, 1], [0.0, 0.0], [[True, False]] * 2)
    np.testing.assert_array_equal(L.mu, 0.3)


def test_learn_validates_shapes_and_outcomes() -> None:
    L = SyntheticLearner(5)
    with pytest.raises(ValueError, match=r"outcomes shape \(3,\)"):
        L.learn([0, 1, 2], 0.5, [True, False, True])
    with pytest.raises(ValueError, match="bools"):
        L.learn([0], 0.5, [[0.5, 1.0]])
    with pytest.raises(HintError, match=r"1\.5"):
        L.learn([0], 1.5, [[True]])


def test_hints_train_and_no_hints_barely_move() -> None:
    def run(hinted: bool) -> float:
        L = SyntheticLearner(400, seed=2)
        rng = np.random.default_rng(0)
        for _ in range(12):
            idx = np.repeat(rng.choice(400, 100, replace=False), 4)
            p = L.oracle_hint_rate(idx) if hinted else np.zeros(len(idx))
            L.learn(idx, p, L.sample(idx, p, n=8))
        return L.no_hint_accuracy()

    start = SyntheticLearner(400, seed=2).no_hint_accuracy()
    assert run(hinted=True) - start > 5 * (run(hinted=False) - start) > 0


# -- checkpoints ----------------------------------------------------------------------------------


def test_state_dict_json_round_trip_resumes_identically() -> None:
    a = SyntheticLearner(30, seed=9)
    idx = np.arange(30)
    a.learn(idx, 0.6, a.sample(idx, 0.6, n=8))
    state = json.loads(json.dumps(a.state_dict()))
    cont_a = [a.sample(idx, 0.6, n=8)]
    a.learn(idx, 0.6, cont_a[0])
    cont_a.append(a.sample(idx, 0.0, n=4))

    b = SyntheticLearner(**state["config"])
    b.load_state_dict(state)
    assert b.steps_trained == 1
    cont_b = [b.sample(idx, 0.6, n=8)]
    b.learn(idx, 0.6, cont_b[0])
    cont_b.append(b.sample(idx, 0.0, n=4))
    for x, y in zip(cont_a, cont_b, strict=True):
        assert np.array_equal(x, y)
    assert np.array_equal(a.mu, b.mu) and b.steps_trained == 2


def test_load_state_dict_refuses_another_config() -> None:
    state = SyntheticLearner(30, seed=9).state_dict()
    with pytest.raises(ValueError, match=r"\['seed'\]"):
        SyntheticLearner(30, seed=8).load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        SyntheticLearner(30, seed=9).load_state_dict({"mu": []})


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"num_problems": 0}, "num_problems=0"),
        ({"num_problems": 2.5}, "num_problems=2.5"),
        ({"units": "words"}, "units='words'"),
        ({"seed": -1}, "seed=-1"),
        ({"k_range": (50, 4)}, r"k_range=\(50, 4\)"),
        ({"k_range": (0, 4)}, r"k_range=\(0, 4\)"),
        ({"midpoint_range": (0.4,)}, r"midpoint_range=\(0.4,\)"),
        ({"own_rate": -0.1}, "own_rate=-0.1"),
        ({"transfer_rate": float("nan")}, "transfer_rate=nan"),
        ({"hint_transfer": 1.5}, "hint_transfer=1.5"),
        ({"mu_max": -0.5}, "mu_max=-0.5"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, bad) -> None:
    with pytest.raises(ValueError, match=bad):
        SyntheticLearner(**kwargs)


def test_bad_rates_and_counts_name_the_value() -> None:
    L = SyntheticLearner(5)
    with pytest.raises(HintError, match=r"-0\.2"):
        L.accuracy([0, 1], [0.5, -0.2])
    with pytest.raises(HintError, match="nan"):
        L.sample(0, float("nan"), n=2)
    with pytest.raises(ValueError, match="n=0"):
        L.sample(0, 0.5, n=0)


# -- the env --------------------------------------------------------------------------------------


def test_synthetic_env_passes_check_env() -> None:
    env = SyntheticEnv(num_problems=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env, skip_render_check=True)


def test_info_keys_are_math_hint_envs_plus_true_accuracy() -> None:
    real = MathHintEnv()
    _, real_info = real.reset(seed=0)
    real.close()
    env = SyntheticEnv(num_problems=20)
    obs, info = env.reset(seed=0)
    assert set(info) == set(real_info) | {"true_accuracy"}
    assert info["hint_text"] == "" and info["placement"] == "response"
    assert info["prompt"] == obs and info["source"] == "synthetic"
    assert info["hint_rate"] == 0.0 and info["requested_hint_rate"] == 0.0
    real_step = MathHintEnv()
    real_step.reset(seed=0)
    real_after = real_step.step("\\boxed{1}")[4]
    real_step.close()
    assert set(env.step("x")[4]) == set(real_after) | {"true_accuracy"}


@pytest.mark.parametrize("units", ["tokens", "steps"])
def test_realised_rate_follows_hint_length(units) -> None:
    env = SyntheticEnv(num_problems=100, units=units, seed=4)
    for pid, rate in [("syn-0000", 0.5), ("syn-0011", 0.37), ("syn-0042", 0.999)]:
        _, info = env.reset(options={"problem_id": pid, "hint_rate": rate})
        n = env.unwrapped.n_units(pid)
        assert info["n_units"] == n and info["hint_len"] == hint_length(rate, n)
        assert info["hint_rate"] == info["hint_len"] / n and info["requested_hint_rate"] == rate
        assert info["true_accuracy"] == pytest.approx(
            float(env.learner.accuracy(pid, info["hint_rate"]))
        )
    assert env.problem_ids == env.learner.problem_ids


def test_rewards_follow_true_accuracy() -> None:
    env = SyntheticEnv(num_problems=10, seed=2)
    pid = "syn-0005"
    rate = float(env.learner.oracle_hint_rate(pid, 0.3))
    env.reset(seed=11)
    rewards, acc = [], None
    for _ in range(5000):
        _, info = env.reset(options={"problem_id": pid, "hint_rate": rate})
        acc = info["true_accuracy"]
        _, reward, *_, step_info = env.step("")
        assert reward == float(step_info["correct"])
        rewards.append(reward)
    assert 0.2 < acc < 0.4 and abs(np.mean(rewards) - acc) < 0.02


def test_same_reset_seed_same_episode_and_reward() -> None:
    def episode(seed: int) -> tuple:
        env = SyntheticEnv(num_problems=100)
        obs, _ = env.reset(seed=seed, options={"hint_rate": 0.6})
        return obs, env.step("")[1]

    assert episode(3) == episode(3)
    assert len({episode(s) for s in range(10)}) > 1


def test_env_usage_errors() -> None:
    env = SyntheticEnv(num_problems=10)
    with pytest.raises(EnvUsageError, match="reset"):
        env.step("x")
    with pytest.raises(EnvUsageError, match=r"'hint_rate'.*Did you mean 'hint_rate'"):
        env.reset(options={"hint_rat": 0.5})
    with pytest.raises(HintError, match=r"1\.2"):
        env.reset(options={"hint_rate": 1.2})
    with pytest.raises(KeyError, match="syn-0010"):
        env.reset(options={"problem_id": "syn-0010"})
    env.reset()
    with pytest.raises(EnvUsageError, match="int"):
        env.step(3)  # type: ignore[arg-type]
    with pytest.raises(EnvUsageError, match="not both"):
        SyntheticEnv(SyntheticLearner(5), seed=1)
    with pytest.raises(EnvUsageError, match="not a SyntheticLearner"):
        SyntheticEnv("learner")  # type: ignore[arg-type]
