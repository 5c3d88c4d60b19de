"""The curricula SEELE is compared with, each a small :class:`~seele_env.curricula.Curriculum`.

* :class:`NoHint` — plain GRPO: never a hint.
* :class:`FixedRate` — the same hint rate for every problem, always.
* :class:`CosineDecay` — UFT (Liu et al., 2025, arXiv 2505.16984): the hint rate anneals from
  high to 0 over training on a cosine schedule.
* :class:`Staged` — QuestA (Li et al., 2025, arXiv 2507.13266): a static partial solution whose
  rate drops in stages (50%, then 25%).
* :class:`UniformRandom` — a rate drawn uniformly per problem and round.
* :class:`Bisection` — per-problem bisection search on the hint rate for the target accuracy:
  the simple adaptive alternative to SEELE's curve fit.
* :class:`DynamicSampling` — DAPO-style (Yu et al., 2025, arXiv 2503.14476) problem selection:
  a problem whose last group was all right or all wrong is left out for a few steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from seele_env.curricula.base import Curriculum, Visit, check_target_accuracy
from seele_env.errors import EnvUsageError
from seele_env.hints import check_hint_rate


class NoHint(Curriculum):
    """No hint, ever: plain GRPO on the problems as they are."""

    name = "none"

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.zeros(len(problem_ids)), {}


class FixedRate(Curriculum):
    """The same hint rate for every problem and every step.

    Args:
        env: The environment to wrap.
        hint_rate: The rate, in [0, 1].
        **kwargs: ``group_size``, ``num_rounds``, ``frozen``, ``seed`` (see
            :class:`~seele_env.curricula.Curriculum`).
    """

    name = "fixed"

    def __init__(self, env: Any, *, hint_rate: float = 0.5, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.hint_rate = check_hint_rate(hint_rate)

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.full(len(problem_ids), self.hint_rate), {}


class CosineDecay(Curriculum):
    """UFT-style: the rate falls from ``start_rate`` to ``end_rate`` on a half cosine.

    ``rate(t) = end + (start - end) * (1 + cos(pi * min(t / horizon, 1))) / 2`` where ``t`` is
    the number of training steps ended (:meth:`end_step` calls).

    Args:
        env: The environment to wrap.
        start_rate: The rate at step 0 (UFT starts from the whole solution).
        end_rate: The rate from step ``horizon`` on.
        horizon: Training steps over which the rate decays.
        **kwargs: ``group_size``, ``num_rounds``, ``frozen``, ``seed``.
    """

    name = "uft"

    def __init__(
        self,
        env: Any,
        *,
        start_rate: float = 1.0,
        end_rate: float = 0.0,
        horizon: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, **kwargs)
        self.start_rate = check_hint_rate(start_rate)
        self.end_rate = check_hint_rate(end_rate)
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise EnvUsageError(f"horizon={horizon!r} must be a positive number of steps.")
        self.horizon = horizon

    def rate_at(self, step: int) -> float:
        """The schedule's rate after ``step`` training steps."""
        progress = min(step / self.horizon, 1.0)
        cosine = (1 + math.cos(math.pi * progress)) / 2
        return self.end_rate + (self.start_rate - self.end_rate) * cosine

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.full(len(problem_ids), self.rate_at(self.step_count)), {}


class Staged(Curriculum):
    """QuestA-style: fixed rates in stages, e.g. 0.5 for the first 50 steps, then 0.25.

    Args:
        env: The environment to wrap.
        rates: The rate of each stage.
        boundaries: The training steps at which each next stage starts (one fewer than
            ``rates``, increasing).
        **kwargs: ``group_size``, ``num_rounds``, ``frozen``, ``seed``.
    """

    name = "questa"

    def __init__(
        self,
        env: Any,
        *,
        rates: Sequence[float] = (0.5, 0.25),
        boundaries: Sequence[int] = (50,),
        **kwargs: Any,
    ) -> None:
        super().__init__(env, **kwargs)
        self.rates = tuple(check_hint_rate(r) for r in rates)
        self.boundaries = tuple(int(b) for b in boundaries)
        if len(self.boundaries) != len(self.rates) - 1 or list(self.boundaries) != sorted(
            set(self.boundaries)
        ):
            raise EnvUsageError(
                f"boundaries={tuple(boundaries)!r} must be {len(self.rates) - 1} increasing "
                f"step numbers, one per change between the rates {self.rates}."
            )

    def rate_at(self, step: int) -> float:
        """The stage's rate after ``step`` training steps."""
        return self.rates[sum(step >= b for b in self.boundaries)]

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.full(len(problem_ids), self.rate_at(self.step_count)), {}


class UniformRandom(Curriculum):
    """A rate drawn uniformly from ``[low, high]`` for each problem and round."""

    name = "random"

    def __init__(self, env: Any, *, low: float = 0.0, high: float = 1.0, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.low, self.high = check_hint_rate(low), check_hint_rate(high)
        if self.low > self.high:
            raise EnvUsageError(f"low={low!r} must not exceed high={high!r}.")

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self._rng.uniform(self.low, self.high, size=len(problem_ids)), {}


class Bisection(Curriculum):
    """Per-problem bisection on the hint rate for the target accuracy, one step per round.

    A visit searches a bracket: ``[0, 1]`` on a problem's first visit (round 1 at its middle),
    else ``stored ± window`` (round 1 at the stored rate). After each round the half that must
    hold the target is kept (accuracy above the target: the rate was too high) and the next
    round tries its middle. The next visit starts from the middle of the final bracket.

    Args:
        env: The environment to wrap.
        target_accuracy: The accuracy aimed at.
        window: Half-width of the bracket around the stored rate on later visits.
        num_rounds: Rounds per visit (bisection steps); 4 matches SEELE's budget.
        **kwargs: ``group_size``, ``frozen``, ``seed``.
    """

    name = "bisection"

    def __init__(
        self,
        env: Any,
        *,
        target_accuracy: float = 0.5,
        window: float = 0.25,
        num_rounds: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, num_rounds=num_rounds, **kwargs)
        if not 0.0 < float(window) <= 1.0:
            raise EnvUsageError(f"window={window!r} must be in (0, 1].")
        self.target_accuracy = check_target_accuracy(target_accuracy)
        self.window = float(window)
        self._stored: dict[str, float] = {}

    def _bracket(self, problem_id: str, visit: Visit) -> tuple[float, float]:
        stored = self._stored.get(problem_id)
        if stored is None:
            low, high = 0.0, 1.0
        else:
            low, high = max(0.0, stored - self.window), min(1.0, stored + self.window)
        for rate, correct, count in visit.rounds:
            accuracy = correct / count
            if accuracy > self.target_accuracy:
                high = min(high, rate)
            elif accuracy < self.target_accuracy:
                low = max(low, rate)
            else:
                low = high = rate
            low = min(low, high)
        return low, high

    def _next(self, problem_id: str, visit: Visit) -> float:
        if not visit.rounds and problem_id in self._stored:
            return self._stored[problem_id]
        low, high = self._bracket(problem_id, visit)
        return (low + high) / 2

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.array([self._next(p, v) for p, v in zip(problem_ids, visits, strict=True)]), {}

    def _finish(self, problem_ids: list[str], visits: list[Visit]) -> None:
        for pid, visit in zip(problem_ids, visits, strict=True):
            self._stored[pid] = self._next(pid, visit)

    def _get_state(self) -> dict[str, Any]:
        return dict(self._stored)

    def _set_state(self, state: dict[str, Any]) -> None:
        self._stored = {pid: float(rate) for pid, rate in state.items()}


class DynamicSampling(Curriculum):
    """DAPO-style selection: skip problems whose last group was all right or all wrong.

    Such a group has zero GRPO advantage, so it teaches nothing. Unlike DAPO, which filters
    groups after generating them and samples more, this curriculum leaves those problems out of
    :meth:`sample_problems` for ``cooldown_steps`` training steps (then tries them again: the
    learner may have moved), so no rollouts are spent on them. When too few problems are
    eligible, the ones whose cooldown ends soonest fill the batch.

    Args:
        env: The environment to wrap.
        hint_rate: The (fixed) hint rate; 0 is DAPO.
        cooldown_steps: Training steps a problem sits out after a uniform group.
        **kwargs: ``group_size``, ``num_rounds``, ``frozen``, ``seed``.
    """

    name = "dynamic"

    def __init__(
        self, env: Any, *, hint_rate: float = 0.0, cooldown_steps: int = 4, **kwargs: Any
    ) -> None:
        super().__init__(env, **kwargs)
        self.hint_rate = check_hint_rate(hint_rate)
        if isinstance(cooldown_steps, bool) or not isinstance(cooldown_steps, int):
            raise EnvUsageError(f"cooldown_steps={cooldown_steps!r} must be an integer >= 0.")
        if cooldown_steps < 0:
            raise EnvUsageError(f"cooldown_steps={cooldown_steps!r} must be an integer >= 0.")
        self.cooldown_steps = cooldown_steps
        self._skip_until: dict[str, int] = {}

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.full(len(problem_ids), self.hint_rate), {}

    def _observe_round(self, problem_id: str, rate: float, correct: float, count: int) -> None:
        if correct == 0 or correct == count:
            self._skip_until[problem_id] = self.step_count + 1 + self.cooldown_steps
        else:
            self._skip_until.pop(problem_id, None)

    def sample_problems(self, num_problems: int) -> list[str]:
        """Problems for a training step, skipping those in cooldown while others remain."""
        ids = self.env.unwrapped.problem_ids
        if num_problems > len(ids):
            return super().sample_problems(num_problems)
        until = np.array([self._skip_until.get(pid, 0) for pid in ids])
        # Eligible problems first in random order, then the rest by when their cooldown ends.
        noise = self._rng.random(len(ids))
        order = np.lexsort((noise, np.maximum(until - self.step_count, 0)))
        return [ids[i] for i in order[:num_problems]]

    @property
    def filtered(self) -> int:
        """How many problems sit out the current training step."""
        return sum(until > self.step_count for until in self._skip_until.values())

    def _get_state(self) -> dict[str, Any]:
        return dict(self._skip_until)

    def _set_state(self, state: dict[str, Any]) -> None:
        self._skip_until = {pid: int(step) for pid, step in state.items()}
