"""SEELE's controller: per-problem hint rates from a 3PL accuracy curve refitted round by round.

Li et al., "Staying in the Sweet Spot: Responsive Reasoning Evolution via Capability-Adaptive
Hint Scaffolding" (arXiv 2509.06923). Each training step a problem gets ``m`` rounds of ``n``
rollouts. Round 1 uses the rate stored from the problem's previous visit, or ``(|y|-1)/|y|`` on a
first visit; rounds 2..m fit the curve ``f(p) = b + (1-b)/(1+exp(-k(p+mu)))`` to the rounds so
far and invert it for the target accuracy; after the last round the curve is refitted on all
rounds and its rate is stored for the next visit. The fit data are then discarded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seele_env.curricula.base import Curriculum, Visit, check_target_accuracy
from seele_env.errors import EnvUsageError
from seele_env.irt import FitBounds, fit_curves, invert_curve

FIRST_VISIT_RULES = ("all_but_last",)
STORE_RULES = ("refit", "last_round")


class SEELE(Curriculum):
    """SEELE's IRT controller (registered with the env as ``seele/SEELE-v0``).

    Args:
        env: The environment to wrap (``MathHintEnv`` or ``SyntheticEnv``).
        num_rounds: ``m``, rounds per problem per training step (paper: 4).
        group_size: ``n``, rollouts per round (paper: 8).
        target_accuracy: ``a*``, the accuracy the rates aim at (paper: 0.5).
        first_visit_rate: Round 1's rate on a problem's first visit: ``"all_but_last"``
            (``(|y|-1)/|y|``, the paper's rule) or a number in [0, 1].
        store: **[choice]** What a visit leaves for the next one: ``"refit"`` (default; refit on
            all ``m`` rounds and store the rate predicted for the target) or ``"last_round"``
            (store the rate round ``m`` used).
        anchors: Add the points (0, 0) and (1, 1) to each fit unless rate 0 / 1 was observed.
        bounds: Box bounds of the fit (:class:`~seele_env.irt.FitBounds`).
        frozen: Evaluation mode: rates from the stored state, nothing recorded.
        seed: Seed of the problem sampling of plain ``reset()`` calls.
        max_hint_rate: Cap on the rate shown (see :class:`~seele_env.curricula.Curriculum`).
        keep_answer_out: Never show a solution's last unit (see
            :class:`~seele_env.curricula.Curriculum`).
    """

    name = "seele"

    def __init__(
        self,
        env: Any,
        *,
        num_rounds: int = 4,
        group_size: int = 8,
        target_accuracy: float = 0.5,
        first_visit_rate: str | float = "all_but_last",
        store: str = "refit",
        anchors: bool = True,
        bounds: FitBounds | None = None,
        frozen: bool = False,
        seed: int | None = None,
        max_hint_rate: float = 1.0,
        keep_answer_out: bool = False,
    ) -> None:
        super().__init__(
            env, group_size=group_size, num_rounds=num_rounds, frozen=frozen, seed=seed,
            max_hint_rate=max_hint_rate, keep_answer_out=keep_answer_out,
        )  # fmt: skip
        if isinstance(first_visit_rate, str):
            if first_visit_rate not in FIRST_VISIT_RULES:
                raise EnvUsageError(
                    f"first_visit_rate={first_visit_rate!r} is not {FIRST_VISIT_RULES[0]!r} "
                    "or a number in [0, 1]."
                )
        elif isinstance(first_visit_rate, bool) or not 0.0 <= float(first_visit_rate) <= 1.0:
            raise EnvUsageError(f"first_visit_rate={first_visit_rate!r} must be in [0, 1].")
        if store not in STORE_RULES:
            raise EnvUsageError(f"store={store!r} is not one of {STORE_RULES}.")
        self.target_accuracy = check_target_accuracy(target_accuracy)
        self.first_visit_rate = first_visit_rate
        self.store = store
        self.anchors = bool(anchors)
        self.bounds = bounds if bounds is not None else FitBounds()
        # problem id -> (stored rate, k, mu, b) of the fit that chose it (NaN: no fit)
        self._stored: dict[str, tuple[float, float, float, float]] = {}

    def stored_rate(self, problem_id: str) -> float | None:
        """The rate a problem's next visit starts from, ``None`` before its first visit."""
        stored = self._stored.get(problem_id)
        return None if stored is None else stored[0]

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        count = len(problem_ids)
        rates = np.empty(count)
        params = {key: np.full(count, np.nan) for key in ("k", "mu", "b")}
        fitted = [i for i, v in enumerate(visits) if v.rounds]
        for i, (pid, visit) in enumerate(zip(problem_ids, visits, strict=True)):
            if visit.rounds:
                continue
            stored = self._stored.get(pid)
            if stored is not None:
                rates[i] = stored[0]
                for key, value in zip(("k", "mu", "b"), stored[1:], strict=True):
                    params[key][i] = value
            elif self.first_visit_rate == "all_but_last":
                rates[i] = (n_units[i] - 1) / n_units[i] if n_units[i] > 0 else 0.0
            else:
                rates[i] = float(self.first_visit_rate)
        if fitted:
            fit_rates, fit = self._fit([visits[i] for i in fitted])
            rates[fitted] = fit_rates
            for key in params:
                params[key][fitted] = getattr(fit, key)
        return rates, params  # NaN parameters: no fit behind the rate (reported as None)

    def _fit(self, visits: list[Visit]) -> tuple[np.ndarray, Any]:
        """Fit each visit's rounds and invert for the target: ``(rates [P], CurveFit)``."""
        rates = [[r for r, _, _ in v.rounds] for v in visits]
        accuracies = [[c / n for _, c, n in v.rounds] for v in visits]
        fit = fit_curves(rates, accuracies, bounds=self.bounds, anchors=self.anchors)
        return invert_curve(self.target_accuracy, fit.k, fit.mu, fit.b), fit

    def _finish(self, problem_ids: list[str], visits: list[Visit]) -> None:
        base = self.env.unwrapped
        if self.store == "last_round":
            for pid, visit in zip(problem_ids, visits, strict=True):
                self._stored[pid] = (visit.rounds[-1][0], np.nan, np.nan, np.nan)
            return
        rates, fit = self._fit(visits)
        for i, pid in enumerate(problem_ids):
            rate = self.realise(rates[i], base.n_units(pid))
            self._stored[pid] = (rate, float(fit.k[i]), float(fit.mu[i]), float(fit.b[i]))

    def _get_state(self) -> dict[str, Any]:
        return {pid: [_json_float(x) for x in values] for pid, values in self._stored.items()}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._stored = {
            pid: tuple(float("nan") if x is None else float(x) for x in values)  # type: ignore[misc]
            for pid, values in state.items()
        }


def _json_float(value: float) -> float | None:
    """NaN is not JSON; store it as ``None``."""
    return None if np.isnan(value) else float(value)
