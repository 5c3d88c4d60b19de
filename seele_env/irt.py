"""SEELE's accuracy model: a 3PL item-response curve in the hint rate, its fit and its inverse.

Per problem, accuracy as a function of the hint rate ``p`` is modelled as
``f(p) = b + (1 - b) / (1 + exp(-k (p + mu)))`` (section 1 of DESIGN.md). :func:`fit_curves` fits
``(k, mu, b)`` for many problems at once by bounded least squares, vectorised over problems, and
:func:`invert_curve` gives the hint rate expected to reach ``target_accuracy``.

Example:
    >>> fit = fit_curves([[0.5]], [[0.5]])  # one problem, one round at p = 0.5, + anchors
    >>> round(float(invert_curve(0.5, fit.k, fit.mu, fit.b)[0]), 3)
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

_RATE_TOL = 1e-9  # rates closer than this are the same rate
# Starts (k, where the midpoint starts: None = at the interpolated 0.5 crossing, else that share
# of the way across the segment holding it); ties in cost keep the earliest. On ~2700 random
# problems these four found the best of a larger set of starts every time (the last one catches
# steep curves at the far end of a wide gap between points).
_STARTS: tuple[tuple[float, float | None], ...] = ((10, None), (3, None), (30, None), (40, 0.8))
_MAX_ITER = 100
_GTOL = 1e-10  # projected gradient, in box-normalised coordinates
_FTOL = 1e-10  # a row whose accepted step lowers its cost by less than this share has converged
# Residuals under ~4e-5 in accuracy are an exact fit; without this, fits that approach a step
# function (cost -> 0 as k grows) crawl on for all iterations.
_COST_TOL = 1e-9


@dataclass(frozen=True)
class FitBounds:
    """Box bounds of the 3PL fit, each a ``(low, high)`` pair.

    Attributes:
        k: Slope; must stay positive so the curve rises with the hint rate.
        mu: Shift; the curve's midpoint is at ``p = -mu``.
        b: Floor (guessing) accuracy, within ``[0, 1)``.

    Example:
        >>> FitBounds(k=(0.1, 20.0)).k
        (0.1, 20.0)
    """

    k: tuple[float, float] = (0.01, 50.0)
    mu: tuple[float, float] = (-1.5, 0.5)
    b: tuple[float, float] = (0.0, 0.99)

    def __post_init__(self) -> None:
        for name in ("k", "mu", "b"):
            pair = getattr(self, name)
            if len(pair) != 2 or not all(math.isfinite(v) for v in pair) or pair[0] >= pair[1]:
                raise ValueError(f"FitBounds.{name}={pair!r}; pass two finite floats (low, high).")
        if self.k[0] <= 0:
            raise ValueError(f"FitBounds.k={self.k!r}; the low bound must be > 0, e.g. 0.01.")
        if self.b[0] < 0 or self.b[1] >= 1:
            raise ValueError(f"FitBounds.b={self.b!r}; the floor accuracy must lie in [0, 1).")

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = zip(self.k, self.mu, self.b, strict=True)
        return np.array(low, dtype=float), np.array(high, dtype=float)


_DEFAULT_BOUNDS = FitBounds()


# eq=False: the generated __eq__ would compare arrays with ``==`` and fail on truth testing.
@dataclass(frozen=True, eq=False)
class CurveFit:
    """Fitted 3PL parameters per problem, each an array of shape ``[P]``.

    Attributes:
        k, mu, b: The parameters, within the fit's bounds.
        cost: ``0.5 * sum of squared residuals`` at the solution.
        n_points: Points fitted (distinct observed rates plus anchors).

    Example:
        >>> fit = fit_curves([[0.0, 1.0]], [[0.0, 1.0]])
        >>> fit.n_points.tolist()
        [2]
    """

    k: np.ndarray
    mu: np.ndarray
    b: np.ndarray
    cost: np.ndarray
    n_points: np.ndarray


def accuracy_curve(hint_rate: ArrayLike, k: ArrayLike, mu: ArrayLike, b: ArrayLike) -> np.ndarray:
    """``f(p) = b + (1 - b) / (1 + exp(-k (p + mu)))``, broadcasting over all arguments.

    Example:
        >>> accuracy_curve([0.0, 0.5, 1.0], 10.0, -0.5, 0.2).round(4).tolist()
        [0.2054, 0.6, 0.9946]
    """
    p, k, mu, b = (np.asarray(v, dtype=float) for v in (hint_rate, k, mu, b))
    # expit never overflows, unlike 1 / (1 + exp(-z)) for large negative z.
    return np.asarray(b + (1.0 - b) * expit(k * (p + mu)))


def invert_curve(
    target_accuracy: ArrayLike, k: ArrayLike, mu: ArrayLike, b: ArrayLike
) -> np.ndarray:
    """The hint rate where ``f(p) = target_accuracy``, clipped to [0, 1]; 0 where ``b >= target``.

    Raises:
        ValueError: if a target is not strictly between 0 and 1.

    Example:
        >>> invert_curve([0.5, 0.75, 0.1], 10.0, -0.5, 0.2).round(4).tolist()
        [0.4489, 0.5788, 0.0]
    """
    t = np.asarray(target_accuracy, dtype=float)
    if not np.all((t > 0) & (t < 1)):  # also rejects NaN
        raise ValueError(
            f"target_accuracy={target_accuracy!r} must lie strictly in (0, 1), e.g. 0.5."
        )
    k, mu, b = (np.asarray(v, dtype=float) for v in (k, mu, b))
    reachable = b < t
    # Where the floor already reaches the target the logit is undefined: 0 stands in for it.
    logit = np.log(np.where(reachable, (t - b) / (1.0 - t), 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):  # k = 0: a flat curve, p = +-inf
        shift = np.where(logit == 0.0, 0.0, logit / k)
    return np.asarray(np.where(reachable, np.clip(-mu + shift, 0.0, 1.0), 0.0))


def _group(
    rates: np.ndarray, accs: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: distinct valid rates (ascending, left-aligned), mean accuracy, count; [P, R]."""
    n, r = rates.shape
    key = np.where(valid, rates, 2.0)  # padding sorts last; 2 keeps diffs finite
    order = np.argsort(key, axis=1, kind="stable")
    xs = np.take_along_axis(key, order, axis=1)
    ys = np.take_along_axis(np.where(valid, accs, 0.0), order, axis=1)
    vs = np.take_along_axis(valid, order, axis=1)
    starts = vs & np.concatenate([np.ones((n, 1), bool), np.diff(xs, axis=1) > _RATE_TOL], axis=1)
    slot = np.maximum(np.cumsum(starts, axis=1) - 1, 0) + (np.arange(n) * r)[:, None]
    size = n * r
    counts = np.bincount(slot[vs], minlength=size).reshape(n, r)
    sums = np.bincount(slot[vs], weights=ys[vs], minlength=size).reshape(n, r)
    firsts = np.bincount(slot[starts], weights=xs[starts], minlength=size).reshape(n, r)
    means = np.divide(sums, counts, out=np.zeros((n, r)), where=counts > 0)
    return firsts, means, counts


def mean_by_rate(
    hint_rates: ArrayLike, accuracies: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one problem: distinct rates (sorted), mean accuracy and observation count per rate.

    Consecutive sorted rates closer than 1e-9 count as one rate (its smallest value); NaN
    entries are skipped.

    Example:
        >>> rates, means, counts = mean_by_rate([0.5, 0.25, 0.5], [1.0, 0.0, 0.5])
        >>> rates.tolist(), means.tolist(), counts.tolist()
        ([0.25, 0.5], [0.0, 0.75], [1, 2])
    """
    x = np.asarray(hint_rates, dtype=float).reshape(1, -1)
    y = np.asarray(accuracies, dtype=float).reshape(1, -1)
    if x.shape != y.shape:
        raise ValueError(f"hint_rates has {x.size} values, accuracies {y.size}; pass equal sizes.")
    firsts, means, counts = _group(x, y, ~(np.isnan(x) | np.isnan(y)))
    used = counts[0] > 0
    return firsts[0, used], means[0, used], counts[0, used]


def _as_padded(name: str, values: object) -> tuple[np.ndarray, np.ndarray]:
    """A [P, R] float array (ragged rows padded with NaN) and the mask of real entries."""
    if isinstance(values, np.ndarray):
        if values.ndim != 2:
            raise ValueError(
                f"{name} has shape {values.shape}; pass a [P, R] array (one row per problem)."
            )
        return values.astype(float), np.ones(values.shape, bool)
    rows = [np.asarray(row, dtype=float) for row in values]  # type: ignore[union-attr]
    if any(row.ndim != 1 for row in rows):
        raise ValueError(f"{name} must be a [P, R] array or a list of 1-D arrays, one per problem.")
    width = max((row.size for row in rows), default=0)
    out, mask = np.full((len(rows), width), np.nan), np.zeros((len(rows), width), bool)
    for i, row in enumerate(rows):
        out[i, : row.size], mask[i, : row.size] = row, True
    return out, mask


_ROW, _COL = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 2, 1, 2, 2])  # upper triangle, 3x3


def _model(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, u: np.ndarray, lo: np.ndarray, span: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residuals [N, M], Jacobian [3, N, M] in box-normalised coordinates ``u`` [3, N], cost [N]."""
    log_k, mu, b = (lo[:, None] + u * span[:, None])[..., None]
    k = np.exp(log_k)
    shifted = x + mu
    s, s_neg = expit(k * shifted), expit(-k * shifted)
    r = w * (b + (1.0 - b) * s - y)
    slope = w * (1.0 - b) * s * s_neg
    jac = np.stack([slope * shifted * k, slope * k, w * s_neg]) * span[:, None, None]
    return r, jac, 0.5 * np.einsum("nm,nm->n", r, r)


def _solve3(hess: np.ndarray, damp: np.ndarray, fixed: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve the damped 3x3 systems (upper triangles ``hess`` [6, N]) by cofactors, [3, N].

    A fixed parameter gets an identity row and column, so its step is 0. Cofactors beat
    ``np.linalg.solve`` on thousands of 3x3 systems several times over.
    """
    keep = ~(fixed[_ROW] | fixed[_COL])
    a00, a01, a02, a11, a12, a22 = np.where(keep, hess, 0.0)
    a00, a11, a22 = (np.where(fixed[i], 1.0, a + damp[i]) for i, a in enumerate((a00, a11, a22)))
    c00, c01, c02 = a11 * a22 - a12 * a12, a02 * a12 - a01 * a22, a01 * a12 - a02 * a11
    c11, c12, c22 = a00 * a22 - a02 * a02, a01 * a02 - a00 * a12, a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    # det > 0 for the positive definite damped system; a tiny one just yields a rejected step.
    inv_det = 1.0 / np.maximum(det, 1e-300)
    adjugate = np.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22]).reshape(3, 3, -1)
    return np.einsum("ijn,jn->in", adjugate, rhs) * inv_det


def _solve(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, theta0: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Batched projected Levenberg–Marquardt over rows; ``theta0`` [3, N] -> (theta, cost).

    Works in coordinates ``u = (theta - lo) / (hi - lo)`` in ``[0, 1]^3`` so one tolerance fits
    all three parameters. Parameters at a bound whose gradient points out of the box are held
    fixed (a projected-Newton active set); the others take a damped Gauss–Newton step, projected
    onto the box and kept only if it lowers the cost. Nielsen's damping update (driven by the
    ratio of actual to predicted reduction) stops the zig-zag that plain LM shows in the narrow
    valleys of large-residual fits. Converged rows are dropped from the working set.
    """
    # Steps in log k take a slope from 3 to 50 in a few iterations; steps in k crawl there.
    log_lo, log_hi = lo.copy(), hi.copy()
    log_lo[0], log_hi[0] = np.log(lo[0]), np.log(hi[0])
    span = log_hi - log_lo
    theta_start = np.clip(theta0, lo[:, None], hi[:, None])
    u = (np.vstack([np.log(theta_start[0]), theta_start[1:]]) - log_lo[:, None]) / span[:, None]
    u = np.clip(u, 0.0, 1.0)
    r, jac, cost = _model(x, y, w, u, log_lo, span)
    u_out, cost_out, rows = u.copy(), cost.copy(), np.arange(u.shape[1])
    moved = np.zeros(len(rows), bool)  # rows never moved return their start exactly
    lam, nu = np.full(len(rows), 1e-3), np.full(len(rows), 2.0)
    stalled = np.zeros(len(rows), bool)
    scale = np.full((3, len(rows)), 1e-10)  # Moré's running column norms: damping per parameter
    for _ in range(_MAX_ITER):
        grad = np.einsum("inm,nm->in", jac, r)
        fixed = ((u <= 0.0) & (grad > 0)) | ((u >= 1.0) & (grad < 0))
        pgrad = np.where(fixed, 0.0, grad)
        active = ~stalled & (np.abs(pgrad).max(axis=0) > _GTOL) & (lam < 1e12)
        active &= cost > _COST_TOL
        if active.sum() <= 0.75 * len(active):  # compact: converged rows leave the working set
            u_out[:, rows], cost_out[rows] = u, cost
            if not active.any():
                break
            rows, x, y, w, r, cost, lam, nu, stalled = (
                v[active] for v in (rows, x, y, w, r, cost, lam, nu, stalled)
            )
            u, jac, scale, grad, fixed, pgrad = (
                v[:, active] for v in (u, jac, scale, grad, fixed, pgrad)
            )
            active = active[active]
        hess = np.einsum("inm,inm->in", jac[_ROW], jac[_COL])
        scale = np.maximum(scale, hess[[0, 3, 5]])
        u_new = np.clip(u + _solve3(hess, lam * scale, fixed, -pgrad), 0.0, 1.0)
        h = u_new - u
        quad = hess * h[_ROW] * h[_COL]
        predicted = -np.einsum("in,in->n", grad, h) - 0.5 * (quad.sum(0) + quad[[1, 2, 4]].sum(0))
        r_new, jac_new, cost_new = _model(x, y, w, u_new, log_lo, span)
        gain = cost - cost_new
        better = active & (gain > 0) & (predicted > 0)
        stalled |= better & (gain <= _FTOL * cost_new)
        rho = gain / np.where(predicted > 0, predicted, 1.0)
        moved[rows[better]] = True
        u = np.where(better, u_new, u)
        r = np.where(better[:, None], r_new, r)
        jac = np.where(better[:, None], jac_new, jac)
        cost = np.where(better, cost_new, cost)
        shrink = np.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
        lam = np.where(better, np.maximum(lam * shrink, 1e-12), np.where(active, lam * nu, lam))
        nu = np.where(better, 2.0, np.where(active, nu * 2.0, nu))
    else:
        u_out[:, rows], cost_out[rows] = u, cost
    theta = log_lo[:, None] + u_out * span[:, None]
    theta[0] = np.exp(theta[0])
    # Bounds exactly, not exp(log(hi)), where a parameter ended on one.
    theta = np.where(u_out <= 0.0, lo[:, None], np.where(u_out >= 1.0, hi[:, None], theta))
    return np.where(moved, np.clip(theta, lo[:, None], hi[:, None]), theta_start), cost_out


def _initial_guess(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Starting (k, mu, b) per row and start, [S, 3, N]; ``S = len(_STARTS)``.

    The midpoint ``-mu`` starts where the sorted points first reach accuracy 0.5 (linear
    interpolation), or inside the segment where that happens: with a wide gap between points
    the steep curves at either end of the gap are separate local minima.
    """
    n = x.shape[0]
    order = np.argsort(np.where(w > 0, x, 2.0), axis=1, kind="stable")
    xs, ys = np.take_along_axis(x, order, axis=1), np.take_along_axis(y, order, axis=1)
    ok = np.take_along_axis(w > 0, order, axis=1)
    count, rows = ok.sum(axis=1), np.arange(n)
    last = xs[rows, np.maximum(count - 1, 0)]
    # Pad one column so that rows with a single point still have a (never crossing) segment.
    xs, ys, ok = (np.pad(v, ((0, 0), (0, 1)), mode="edge") for v in (xs, ys, ok))
    cross = ok[:, :-1] & ok[:, 1:] & (ys[:, :-1] < 0.5) & (ys[:, 1:] >= 0.5)
    first = np.argmax(cross, axis=1)
    x0, x1, y0, y1 = xs[rows, first], xs[rows, first + 1], ys[rows, first], ys[rows, first + 1]
    found = cross.any(axis=1)
    at = x0 + (0.5 - y0) / np.where(found, y1 - y0, 1.0) * (x1 - x0)
    # No crossing: the points start above 0.5 (midpoint at the first) or stay below (the last).
    start = np.where(ys[:, 0] >= 0.5, xs[:, 0], last)
    x0, x1, at = (np.where(found, v, start) for v in (x0, x1, at))
    x0, x1, at = (np.where(count > 0, v, 0.5) for v in (x0, x1, at))
    floor = np.where(count > 0, np.where(ok, ys, np.inf).min(axis=1), 0.0)
    guesses = []
    for k0, share in _STARTS:
        mid = at if share is None else x0 + share * (x1 - x0)
        guesses.append(np.stack([np.full(n, k0), -mid, floor]))
    return np.clip(np.array(guesses), lo[:, None], hi[:, None])


def fit_curves(
    hint_rates: ArrayLike | Sequence[ArrayLike],
    accuracies: ArrayLike | Sequence[ArrayLike],
    mask: ArrayLike | Sequence[ArrayLike] | None = None,
    *,
    bounds: FitBounds = _DEFAULT_BOUNDS,
    anchors: bool = True,
) -> CurveFit:
    """Fit one 3PL curve per problem by bounded least squares, all problems at once.

    Per problem, observations are averaged per distinct rate (one point per rate, equal weight);
    with ``anchors`` the points (0, 0) and (1, 1) are added unless rate 0, resp. 1, was observed.
    The fit runs from four starts at once and keeps the lowest cost per problem.

    Args:
        hint_rates: ``[P, R]`` array (padded) or a list of P 1-D arrays (ragged).
        accuracies: Same layout as ``hint_rates``: mean accuracy of each round.
        mask: Optional, same layout; False marks padding. NaN entries are padding too.
        bounds: Box bounds of the parameters.
        anchors: Whether to add the anchor points.

    Raises:
        ValueError: if layouts differ or a rate or accuracy lies outside [0, 1].

    Example:
        >>> fit = fit_curves([[0.0, 0.4, 0.6, 1.0]], [[0.0, 0.1, 0.9, 1.0]])
        >>> round(float(-fit.mu[0]), 3), int(fit.n_points[0])
        (0.5, 4)
    """
    x, x_real = _as_padded("hint_rates", hint_rates)
    y, y_real = _as_padded("accuracies", accuracies)
    valid = np.ones(x.shape, bool) if mask is None else _as_padded("mask", mask)[0] == 1
    if x.shape != y.shape or valid.shape != x.shape or (x_real != y_real).any():
        raise ValueError(
            f"hint_rates {x.shape}, accuracies {y.shape} and mask {valid.shape} differ in layout; "
            "pass the same [P, R] shape (or the same row lengths) for all three."
        )
    valid &= ~(np.isnan(x) | np.isnan(y))
    for name, values in (("hint_rates", x[valid]), ("accuracies", y[valid])):
        bad = values[(values < 0) | (values > 1)]  # NaN is padding, +-inf is caught here
        if bad.size:
            raise ValueError(
                f"{name} holds {float(bad[0])!r}, outside [0, 1]; pass values in [0, 1] "
                "(NaN or a False mask entry marks padding)."
            )
    n = x.shape[0]
    firsts, means, counts = _group(x, y, valid)
    width = int((counts > 0).sum(axis=1).max(initial=0))
    seen = counts[:, :width] > 0
    rates = firsts[:, :width]
    add0 = anchors & ~(seen & (rates <= _RATE_TOL)).any(axis=1)
    add1 = anchors & ~(seen & (rates >= 1.0 - _RATE_TOL)).any(axis=1)
    px = np.concatenate([np.zeros((n, 1)), rates, np.ones((n, 1))], axis=1)
    py = np.concatenate([np.zeros((n, 1)), means[:, :width], np.ones((n, 1))], axis=1)
    pw = np.concatenate([add0[:, None], seen, add1[:, None]], axis=1).astype(float)
    lo, hi = bounds._arrays()
    reps = len(_STARTS)
    theta0 = _initial_guess(px, py, pw, lo, hi).transpose(1, 0, 2).reshape(3, reps * n)
    theta, cost = _solve(
        np.tile(px, (reps, 1)), np.tile(py, (reps, 1)), np.tile(pw, (reps, 1)), theta0, lo, hi
    )
    best = np.argmin(cost.reshape(reps, n), axis=0)  # first minimum: the primary start wins ties
    pick = best * n + np.arange(n)
    k, mu, b = theta[:, pick]
    return CurveFit(k=k, mu=mu, b=b, cost=cost[pick], n_points=pw.sum(1).astype(int))
