"""The 3PL accuracy model: curve, inverse, per-rate means and the batched fit.

The fit is checked against hand-made cases, against known curves, and against an independent
route: ``scipy.optimize.least_squares(method="trf")`` run per problem from the same start.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import least_squares
from scipy.special import expit

from seele_env import irt
from seele_env.irt import FitBounds, accuracy_curve, fit_curves, invert_curve, mean_by_rate

# -- accuracy_curve: f(p) = b + (1 - b) / (1 + exp(-k (p + mu))) ---------------------------------


@pytest.mark.parametrize(
    ("p", "k", "mu", "b", "expected"),
    [
        (0.5, 10.0, -0.5, 0.0, 0.5),  # p = -mu: the logistic is 1/2, so f = b + (1 - b)/2
        (0.5, 10.0, -0.5, 0.2, 0.6),  # 0.2 + 0.8/2
        (0.3, 7.0, -0.3, 0.9, 0.95),  # 0.9 + 0.1/2
        (0.6, 10.0, -0.5, 0.0, 1 / (1 + math.exp(-1))),  # k (p + mu) = 1
        (0.4, 10.0, -0.5, 0.5, 0.5 + 0.5 / (1 + math.e)),  # k (p + mu) = -1
        (1.0, 1e-12, -0.5, 0.4, 0.7),  # k -> 0: flat at b + (1 - b)/2
        (0.0, 50.0, -1.5, 0.0, 0.0),  # expit(-75) ~ 3e-33
        (1.0, 50.0, 0.5, 0.3, 1.0),  # 1 - 0.7 expit(-75)
    ],
)
def test_accuracy_curve_by_hand(p: float, k: float, mu: float, b: float, expected: float) -> None:
    assert float(accuracy_curve(p, k, mu, b)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_accuracy_curve_broadcasts() -> None:
    rates = np.array([[0.0], [0.5], [1.0]])
    out = accuracy_curve(rates, np.array([1.0, 10.0]), -0.5, 0.0)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[1], [0.5, 0.5])
    np.testing.assert_allclose(out[:, 1], [expit(-5), 0.5, expit(5)])


def test_accuracy_curve_extreme_exponents_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = accuracy_curve([0.0, 1.0], 1e6, -0.5, 0.1)  # k (p + mu) = -5e5 and 5e5
    np.testing.assert_array_equal(out, [0.1, 1.0])


# -- invert_curve: p = -mu + ln((t - b) / (1 - t)) / k, clipped ----------------------------------


@pytest.mark.parametrize(
    ("target", "k", "mu", "b", "expected"),
    [
        (0.5, 10.0, -0.5, 0.0, 0.5),  # ln(1) = 0: the midpoint
        (0.75, 10.0, -0.5, 0.0, 0.5 + math.log(3) / 10),  # ln(0.75 / 0.25)
        (0.5, 10.0, -0.5, 0.2, 0.5 + math.log(0.3 / 0.5) / 10),  # 0.44892
        (0.25, 4.0, -0.75, 0.0, 0.75 - math.log(3) / 4),  # 0.47535
        (0.9, 2.0, -0.9, 0.0, 1.0),  # 0.9 + ln(9)/2 = 2.0, clipped to 1
        (0.1, 5.0, 0.2, 0.0, 0.0),  # -0.2 + ln(1/9)/5 = -0.64, clipped to 0
        (0.5, 10.0, -0.5, 0.5, 0.0),  # b = target: no hint needed
        (0.5, 10.0, -0.5, 0.7, 0.0),  # b > target
        (0.5, 1e-12, -0.5, 0.1, 0.0),  # nearly flat at 0.55 >= 0.5: logit / k -> -inf, clipped
    ],
)
def test_invert_curve_by_hand(
    target: float, k: float, mu: float, b: float, expected: float
) -> None:
    assert float(invert_curve(target, k, mu, b)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 1.5, float("nan"), [0.5, 1.0]])
def test_invert_curve_rejects_targets_outside_the_open_unit_interval(target: object) -> None:
    with pytest.raises(ValueError, match="target_accuracy"):
        invert_curve(target, 10.0, -0.5, 0.0)


def test_invert_curve_round_trips_where_unclipped() -> None:
    rng = np.random.default_rng(0)
    k, mu, b = rng.uniform(1, 50, 500), rng.uniform(-1.5, 0.5, 500), rng.uniform(0, 0.4, 500)
    target = rng.uniform(0.45, 0.95, 500)
    p = invert_curve(target, k, mu, b)
    inside = (p > 0) & (p < 1)
    assert inside.sum() > 100
    np.testing.assert_allclose(accuracy_curve(p, k, mu, b)[inside], target[inside], rtol=1e-10)


def test_invert_curve_is_nan_free_at_the_bounds() -> None:
    bounds = FitBounds()
    grid = np.meshgrid(
        [1e-6, 0.5, 1 - 1e-6], [*bounds.k, 1.0], [*bounds.mu, -0.5], [*bounds.b, 0.5]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = invert_curve(*grid)
    assert np.all((p >= 0) & (p <= 1))


# -- mean_by_rate -------------------------------------------------------------------------------


def test_mean_by_rate_averages_repeated_rates() -> None:
    # 0.5 seen three times: (1 + 0 + 0.5) / 3 = 0.5; 0.25 twice: (0 + 0.5) / 2 = 0.25
    rates, means, counts = mean_by_rate([0.5, 0.25, 0.5, 1.0, 0.25, 0.5], [1, 0, 0, 1, 0.5, 0.5])
    np.testing.assert_array_equal(rates, [0.25, 0.5, 1.0])
    np.testing.assert_allclose(means, [0.25, 0.5, 1.0])
    np.testing.assert_array_equal(counts, [2, 3, 1])


def test_mean_by_rate_merges_rates_within_1e9() -> None:
    rates, means, counts = mean_by_rate([0.4, 0.4 + 5e-10, 0.4 + 1e-6], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(rates, [0.4, 0.4 + 1e-6])
    np.testing.assert_allclose(means, [0.5, 1.0])
    np.testing.assert_array_equal(counts, [2, 1])


def test_mean_by_rate_of_nothing_is_empty() -> None:
    assert all(v.size == 0 for v in mean_by_rate([], []))


# -- fit_curves ---------------------------------------------------------------------------------

RATES = np.array([0.0, 0.2, 0.35, 0.45, 0.55, 0.65, 0.8, 1.0])


@pytest.mark.parametrize(
    ("k", "mu", "b"),
    [(5.0, -0.5, 0.0), (40.0, -0.6, 0.0), (12.0, -0.3, 0.2), (20.0, -0.7, 0.1), (8.0, -0.45, 0.05)],
)
def test_fit_recovers_a_known_curve_from_noiseless_points(k: float, mu: float, b: float) -> None:
    fit = fit_curves(RATES[None], accuracy_curve(RATES, k, mu, b)[None])
    # The fit stops once the cost is below 1e-9 (residuals under 4.5e-5); with eight points
    # spread over the rise the parameters are well determined, and the errors seen are at most
    # 3e-5 in k and 1e-6 in mu and b, so these bounds leave a wide margin.
    assert fit.k[0] == pytest.approx(k, rel=1e-3)
    assert fit.mu[0] == pytest.approx(mu, abs=1e-4)
    assert fit.b[0] == pytest.approx(b, abs=1e-4)
    assert fit.cost[0] < 1e-9
    assert fit.n_points[0] == len(RATES)  # p = 0 and p = 1 observed: no anchors


def _points(rates: np.ndarray, accs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fit's points built by hand: means per rate, plus the anchors that apply."""
    x, y, _ = mean_by_rate(rates, accs)
    if not np.any(x == 0.0):
        x, y = np.r_[0.0, x], np.r_[0.0, y]
    if not np.any(x == 1.0):
        x, y = np.r_[x, 1.0], np.r_[y, 1.0]
    return x, y


def _scipy_cost(x: np.ndarray, y: np.ndarray, start: np.ndarray) -> float:
    def residuals(theta: np.ndarray) -> np.ndarray:
        return accuracy_curve(x, *theta) - y

    def jacobian(theta: np.ndarray) -> np.ndarray:
        k, mu, b = theta
        s = expit(k * (x + mu))
        slope = (1 - b) * s * (1 - s)
        return np.stack([slope * (x + mu), slope * k, 1 - s], axis=1)

    lo, hi = FitBounds()._arrays()
    return float(least_squares(residuals, start, jac=jacobian, bounds=(lo, hi), method="trf").cost)


def _random_problems(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1-6 noisy points per problem around random curves, padded with NaN."""
    rng = np.random.default_rng(seed)
    rates, accs = np.full((n, 6), np.nan), np.full((n, 6), np.nan)
    for i in range(n):
        m = int(rng.integers(1, 7))
        x = rng.uniform(0, 1, m) if rng.random() < 0.5 else rng.integers(0, 6, m) / 5
        truth = accuracy_curve(x, rng.uniform(1, 50), -rng.uniform(0, 1), rng.uniform(0, 0.3))
        rates[i, :m], accs[i, :m] = x, np.clip(truth + rng.normal(0, 0.2, m), 0, 1)
    return rates, accs


def test_fit_matches_or_beats_scipy_trf_from_the_same_start() -> None:
    rates, accs = _random_problems(60, seed=7)
    fit = fit_curves(rates, accs)
    lo, hi = FitBounds()._arrays()
    diffs = []
    for i in range(len(rates)):
        used = ~np.isnan(rates[i])
        x, y = _points(rates[i, used], accs[i, used])
        # The primary start (k = 10, midpoint at the 0.5 crossing) of the batched solver.
        start = irt._initial_guess(x[None], y[None], np.ones((1, x.size)), lo, hi)[0, :, 0]
        diffs.append(fit.cost[i] - _scipy_cost(x, y, start))
    assert max(diffs) <= 1e-8, np.argmax(diffs)


def _predicted(fit: irt.CurveFit, rates: object) -> np.ndarray:
    return accuracy_curve(rates, fit.k[:, None], fit.mu[:, None], fit.b[:, None])


def test_fit_all_wrong_predicts_about_zero_where_observed() -> None:
    rates = np.array([[0.2, 0.5, 0.8], [0.0, 0.4, 0.7]])
    fit = fit_curves(rates, np.zeros_like(rates))
    # The (1, 1) anchor and k <= 50 cap how low the curve can stay at the last zero: the best
    # fit puts the midpoint halfway, at 0.9 for row one, so f(0.8) = expit(-50 * 0.1) = 0.0067.
    assert np.all(_predicted(fit, rates) < 0.01)


def test_fit_all_right_predicts_about_one_where_observed() -> None:
    rates = np.array([[0.2, 0.5, 0.8], [0.3, 0.6, 1.0]])
    fit = fit_curves(rates, np.ones_like(rates))
    assert np.all(_predicted(fit, rates) > 0.99)  # mirror image of the all-wrong case


def test_fit_a_single_point_is_met_exactly() -> None:
    # Three points (two anchors), three parameters: the curve goes through all of them.
    fit = fit_curves([[0.6]], [[0.25]])
    assert fit.cost[0] < 1e-9
    np.testing.assert_allclose(_predicted(fit, [0.0, 0.6, 1.0]), [[0.0, 0.25, 1.0]], atol=1e-4)
    assert fit.n_points[0] == 3


def test_fit_needing_a_step_ends_at_the_slope_bound() -> None:
    fit = fit_curves([[0.9]], [[0.0]])  # (0, 0), (0.9, 0), (1, 1): a step between 0.9 and 1
    assert fit.k[0] == 50.0


def test_fit_without_observations() -> None:
    fit = fit_curves([[np.nan, np.nan]], [[np.nan, np.nan]])  # anchors only
    assert fit.n_points[0] == 2
    np.testing.assert_allclose(_predicted(fit, [0.0, 1.0]), [[0.0, 1.0]], atol=1e-4)
    bare = fit_curves(np.zeros((2, 0)), np.zeros((2, 0)), anchors=False)  # nothing at all
    np.testing.assert_array_equal(bare.n_points, [0, 0])
    np.testing.assert_array_equal(bare.cost, [0.0, 0.0])
    # The initial guess: k = 10, the midpoint at 0.5 (no crossing to find), b = 0.
    np.testing.assert_array_equal(np.c_[bare.k, bare.mu, bare.b], [[10, -0.5, 0]] * 2)


def test_fit_of_no_problems_is_empty() -> None:
    fit = fit_curves([], [])
    assert fit.k.shape == fit.n_points.shape == (0,)


@pytest.mark.parametrize(
    ("rates", "distinct", "anchors"),
    [
        ([0.5, np.nan], 1, 2),  # NaN is padding; both anchors
        ([0.0, 0.5], 2, 1),  # rate 0 observed: no (0, 0) anchor
        ([0.5, 1.0], 2, 1),  # rate 1 observed: no (1, 1) anchor
        ([0.0, 1.0], 2, 0),  # both observed: none
        ([0.5, 0.5], 1, 2),  # a repeated rate is one point
        ([1e-10, 0.5], 2, 1),  # within 1e-9 of 0 counts as rate 0
    ],
)
def test_fit_counts_points_and_anchors(rates: list[float], distinct: int, anchors: int) -> None:
    accs = np.array([[0.25, 0.75]])
    assert fit_curves(np.array([rates]), accs).n_points[0] == distinct + anchors
    assert fit_curves(np.array([rates]), accs, anchors=False).n_points[0] == distinct


def test_fit_averages_repeated_rates_into_one_point() -> None:
    repeated = fit_curves([[0.5, 0.5, 0.5, 0.5]], [[0.0, 1.0, 0.0, 1.0]])
    single = fit_curves([[0.5]], [[0.5]])
    assert repeated.n_points[0] == single.n_points[0] == 3
    assert repeated.k[0] == single.k[0] and repeated.mu[0] == single.mu[0]


def test_ragged_input_equals_padded_input_with_mask() -> None:
    ragged_rates = [np.array([0.5]), np.array([0.2, 0.8, 0.8]), np.array([])]
    ragged_accs = [np.array([0.5]), np.array([0.1, 0.9, 0.7]), np.array([])]
    padded_rates = np.array([[0.5, -1, -1], [0.2, 0.8, 0.8], [-1, -1, -1]])  # junk in padding
    padded_accs = np.array([[0.5, 9, 9], [0.1, 0.9, 0.7], [9, 9, 9]])
    mask = padded_rates >= 0
    a = fit_curves(ragged_rates, ragged_accs)
    b = fit_curves(padded_rates, padded_accs, mask)
    for name in ("k", "mu", "b", "cost", "n_points"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize(
    ("rates", "accs", "mask", "match"),
    [
        (np.zeros((2, 3)), np.zeros((2, 2)), None, "differ in layout"),
        (np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 2), bool), "differ in layout"),
        ([[0.1, 0.2], [0.3]], [[0.1], [0.3]], None, "differ in layout"),
        (np.zeros(3), np.zeros(3), None, r"\[P, R\] array"),
        (np.array([[0.5, 1.5]]), np.array([[0.5, 0.5]]), None, "hint_rates holds 1.5"),
        (np.array([[0.5, -0.1]]), np.array([[0.5, 0.5]]), None, "hint_rates holds -0.1"),
        (np.array([[0.5, np.inf]]), np.array([[0.5, 0.5]]), None, "hint_rates holds inf"),
        (np.array([[0.5, 0.6]]), np.array([[0.5, 2.0]]), None, "accuracies holds 2.0"),
    ],
)
def test_fit_validates_its_inputs(rates: object, accs: object, mask: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_curves(rates, accs, mask)


def test_fit_ignores_out_of_range_values_under_the_mask() -> None:
    fit = fit_curves(np.array([[0.5, 7.0]]), np.array([[0.5, -3.0]]), np.array([[True, False]]))
    assert fit.n_points[0] == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": (0.0, 50.0)}, "must be > 0"),
        ({"k": (5.0, 1.0)}, "two finite floats"),
        ({"mu": (-1.0, math.inf)}, "two finite floats"),
        ({"b": (0.0, 1.0)}, r"\[0, 1\)"),
        ({"b": (-0.1, 0.5)}, r"\[0, 1\)"),
    ],
)
def test_fit_bounds_are_validated(kwargs: dict[str, tuple[float, float]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FitBounds(**kwargs)


def test_fit_respects_custom_bounds() -> None:
    bounds = FitBounds(k=(1.0, 5.0), mu=(-0.6, -0.4), b=(0.1, 0.2))
    fit = fit_curves([[0.9], [0.1]], [[0.0], [1.0]], bounds=bounds)
    for name, (lo, hi) in (("k", bounds.k), ("mu", bounds.mu), ("b", bounds.b)):
        assert np.all((getattr(fit, name) >= lo) & (getattr(fit, name) <= hi))


_VALUE = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.125, 0.5, 0.875, 1.0]))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 6), st.integers(0, 5)),
    data=st.data(),
    anchors=st.booleans(),
)
def test_fit_output_is_finite_and_within_bounds(
    shape: tuple[int, int], data: st.DataObject, anchors: bool
) -> None:
    n = shape[0] * shape[1]
    rates = np.array(data.draw(st.lists(_VALUE, min_size=n, max_size=n))).reshape(shape)
    accs = np.array(data.draw(st.lists(_VALUE, min_size=n, max_size=n))).reshape(shape)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    bounds = FitBounds()
    fit = fit_curves(rates, accs, mask.reshape(shape), anchors=anchors)
    for name, (lo, hi) in (("k", bounds.k), ("mu", bounds.mu), ("b", bounds.b)):
        value = getattr(fit, name)
        assert value.shape == (shape[0],)
        assert np.all(np.isfinite(value) & (value >= lo) & (value <= hi))
    assert np.all(np.isfinite(fit.cost) & (fit.cost >= 0))
    assert np.all(fit.n_points <= shape[1] + 2 * anchors)


def test_a_problems_fit_does_not_depend_on_its_batch() -> None:
    # Curricula fit one problem (plain reset/step) or hundreds (grouping API); both must give
    # the same curve, bit for bit, or the two paths would choose different rates.
    rng = np.random.default_rng(1)
    rates = rng.uniform(0, 1, (40, 4))
    accuracies = rng.binomial(8, 0.5, (40, 4)) / 8
    rates[::3, 2:] = accuracies[::3, 2:] = np.nan
    batch = fit_curves(rates, accuracies)
    for i in range(40):
        keep = ~np.isnan(rates[i])
        alone = fit_curves([rates[i][keep]], [accuracies[i][keep]])
        assert (alone.k[0], alone.mu[0], alone.b[0]) == (batch.k[i], batch.mu[i], batch.b[i])
