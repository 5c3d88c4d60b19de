"""Batched 3PL fit: 256 problems per call, the SEELE training batch.

Run: ``python -m pytest tests/benchmarks/test_bench_irt.py --benchmark-only``. Each problem has
1-4 observed rounds (a rate on the 1/5 grid, the mean of 8 Bernoulli rollouts of a random 3PL
curve with k in 4..50, midpoint in 0.4..0.9, b near 0), padded to 4 columns with NaN. The
process is pinned to one CPU core while measuring (where the OS allows it), since the budget is
50 ms per call on one core; ``extra_info["ms_per_call"]`` gives the mean.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from seele_env.irt import accuracy_curve, fit_curves

N_PROBLEMS = 256
MAX_ROUNDS = 4
ROLLOUTS = 8


def _seele_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rates = np.full((N_PROBLEMS, MAX_ROUNDS), np.nan)
    accs = np.full((N_PROBLEMS, MAX_ROUNDS), np.nan)
    for i in range(N_PROBLEMS):
        k, midpoint, b = rng.uniform(4, 50), rng.uniform(0.4, 0.9), rng.uniform(0, 0.05)
        m = int(rng.integers(1, MAX_ROUNDS + 1))
        p = rng.integers(0, 6, m) / 5
        rates[i, :m] = p
        accs[i, :m] = rng.binomial(ROLLOUTS, accuracy_curve(p, k, -midpoint, b)) / ROLLOUTS
    return rates, accs


@pytest.fixture
def one_core() -> Iterator[None]:
    """Pin this process to one core for the measurement, and restore the old affinity."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@pytest.mark.benchmark(group="irt fit")
def test_fit_256_problems(benchmark, one_core: None) -> None:
    rates, accs = _seele_batch()
    fit = benchmark.pedantic(fit_curves, args=(rates, accs), rounds=30, warmup_rounds=3)
    assert np.all(np.isfinite(fit.k) & np.isfinite(fit.mu) & np.isfinite(fit.b))
    benchmark.extra_info["ms_per_call"] = 1e3 * benchmark.stats.stats.mean
