"""The machinery every hint curriculum shares: a ``gymnasium.Wrapper`` with rounds and steps.

A curriculum decides the hint rate of each problem. Training time is organised as in SEELE:

* a **round** is one group of ``group_size`` rollouts of a problem at one hint rate;
* a **visit** is ``num_rounds`` rounds of a problem within one training step;
* a **training step** ends when the agent calls :meth:`Curriculum.end_step` (schedules such as
  UFT's decay count these).

Two ways to drive a curriculum, which give the same rates for the same outcomes:

* **Plain** ``reset``/``step``: ``reset()`` picks the problem (it serves each sampled problem for
  one whole visit, ``num_rounds * group_size`` episodes) and its rate; ``step`` records the
  outcome, and after ``group_size`` outcomes the problem's round advances.
* **Grouping API** for batched agents: :meth:`~Curriculum.sample_problems`,
  :meth:`~Curriculum.hint_rates` ("this round's rate for these problems"),
  :meth:`~Curriculum.record` ("here are their outcomes"; closes the round), and
  :meth:`~Curriculum.end_step`. The agent then resets its envs with the rates pinned.

A rate pinned by the caller (``reset(options={"hint_rate": ...})``) is passed through untouched
and its outcome is not recorded (evaluation at fixed rates must not move the curriculum). A
frozen curriculum (``frozen=True``, for evaluation) chooses rates from its current state and
records nothing.

Subclasses implement :meth:`Curriculum._choose` (and, when they keep state,
:meth:`~Curriculum._finish`, :meth:`~Curriculum._get_state`, :meth:`~Curriculum._set_state`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np

from seele_env.errors import EnvUsageError
from seele_env.hints import hint_length
from seele_env.irt import accuracy_curve

STATE_VERSION = 1
DETAIL_KEYS = ("k", "mu", "b")


@dataclass
class Visit:
    """One problem's rounds within the current training step.

    Attributes:
        rounds: Closed rounds as ``(realised hint rate, number correct, number of rollouts)``.
        rate: The current round's realised rate, fixed when first asked for; ``None`` before.
        correct: Outcomes of the current round so far: sum of correctness.
        count: Outcomes of the current round so far: how many.
        details: The current round's fitted parameters (``k``, ``mu``, ``b``), when the
            curriculum has a model.
    """

    rounds: list[tuple[float, float, int]] = field(default_factory=list)
    rate: float | None = None
    correct: float = 0.0
    count: int = 0
    details: dict[str, float] = field(default_factory=dict)


class Curriculum(gym.Wrapper[str, str, str, str]):
    """Base class of hint curricula: chooses hint rates, observes outcomes, keeps state.

    The wrapped env must expose ``n_units(problem_id)`` and ``problem_ids`` on its
    ``unwrapped`` env, as :class:`~seele_env.env.MathHintEnv` and
    :class:`~seele_env.simulate.SyntheticEnv` do.

    Every ``reset`` and ``step`` adds these ``info`` keys: ``curriculum/name``,
    ``curriculum/hint_rate`` (the realised rate chosen), ``curriculum/round`` (1-based round of
    the visit), ``curriculum/step`` (training steps ended so far), ``curriculum/k``,
    ``curriculum/mu``, ``curriculum/b`` and ``curriculum/predicted_accuracy`` (``None`` for
    curricula without a fitted model), ``curriculum/pinned`` and ``curriculum/frozen``.

    Args:
        env: The environment to wrap.
        group_size: ``n``, rollouts per round.
        num_rounds: ``m``, rounds per problem per training step.
        frozen: Evaluation mode: choose rates from the current state, record nothing.
        seed: Seed of the curriculum's own RNG (problem sampling, random rates);
            ``reset(seed=...)`` reseeds it.
        max_hint_rate: No hint longer than this share of the solution (rounded down to whole
            units), whatever the curriculum asks for.
        keep_answer_out: Never show the last unit of a solution, the one that holds the
            answer: the rate is capped at ``(|y|-1)/|y|`` per problem (as SEELE's cold start).
    """

    name: ClassVar[str] = "curriculum"

    def __init__(
        self,
        env: gym.Env[str, str],
        *,
        group_size: int = 8,
        num_rounds: int = 1,
        frozen: bool = False,
        seed: int | None = None,
        max_hint_rate: float = 1.0,
        keep_answer_out: bool = False,
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not callable(getattr(base, "n_units", None)) or not hasattr(base, "problem_ids"):
            raise EnvUsageError(
                f"{type(self).__name__} needs an env with n_units(problem_id) and problem_ids "
                f"(MathHintEnv or SyntheticEnv); got {type(base).__name__}."
            )
        self.group_size = _positive_int("group_size", group_size)
        self.num_rounds = _positive_int("num_rounds", num_rounds)
        self.frozen = bool(frozen)
        if isinstance(max_hint_rate, bool) or not isinstance(max_hint_rate, (int, float)):
            raise EnvUsageError(f"max_hint_rate={max_hint_rate!r} must be a number in [0, 1].")
        if not 0.0 <= max_hint_rate <= 1.0:  # also rejects NaN
            raise EnvUsageError(
                f"max_hint_rate={max_hint_rate!r} must be in [0, 1] (1 = no cap on the hint)."
            )
        self.max_hint_rate = float(max_hint_rate)
        if not isinstance(keep_answer_out, (bool, np.bool_)):
            raise EnvUsageError(f"keep_answer_out={keep_answer_out!r} must be true or false.")
        self.keep_answer_out = bool(keep_answer_out)
        self.step_count = 0
        self.dropped_outcomes = 0
        self._visits: dict[str, Visit] = {}
        self._rng = np.random.default_rng(seed)
        self._serving: str | None = None  # the problem plain reset() callers get
        self._served = 0
        self._episode: tuple[str, float] | None = None  # (problem, rate) to record at step
        self._described: dict[str, Any] = {}

    # -- what subclasses implement -------------------------------------------------------------

    def _choose(
        self, problem_ids: list[str], n_units: np.ndarray, visits: list[Visit]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The desired (continuous) hint rates of these problems' current rounds.

        ``visits[i].rounds`` holds problem i's closed rounds of this training step. Returns the
        rates ``[P]`` and optional fitted parameters ``{"k": [P], "mu": [P], "b": [P]}``.
        Must not change state: a frozen curriculum calls it too.
        """
        raise NotImplementedError

    def _finish(self, problem_ids: list[str], visits: list[Visit]) -> None:
        """A visit ended (after ``num_rounds`` rounds, or at ``end_step``): update state."""

    def _observe_round(self, problem_id: str, rate: float, correct: float, count: int) -> None:
        """A round closed with ``correct`` of ``count`` rollouts right."""

    def _end_step(self) -> None:
        """A training step ended (``step_count`` is already incremented)."""

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        pass

    # -- grouping API ------------------------------------------------------------------------

    def sample_problems(self, num_problems: int) -> list[str]:
        """Draw problems for a training step: uniformly, without replacement while possible."""
        ids = self.env.unwrapped.problem_ids
        count = _positive_int("num_problems", num_problems)
        order = np.concatenate(
            [self._rng.permutation(len(ids)) for _ in range(-(-count // len(ids)))]
        )
        return [ids[i] for i in order[:count]]

    def hint_rates(self, problem_ids: Sequence[str]) -> np.ndarray:
        """The realised hint rates ``l/|y|`` of these problems' current rounds.

        Repeated calls within a round return the same rates; :meth:`record` closes the round.
        """
        return np.array([v.rate for v in self._current(_as_ids(problem_ids))], dtype=float)

    def record(self, problem_ids: Sequence[str], outcomes: Iterable[Iterable[float]]) -> None:
        """Outcomes (1 right, 0 wrong) of the current round of these problems; closes the round.

        Call :meth:`hint_rates` for the problems first. Does nothing when frozen.
        """
        problem_ids = _as_ids(problem_ids)
        groups = [np.asarray(list(o), dtype=float).ravel() for o in outcomes]
        if len(groups) != len(problem_ids):
            raise EnvUsageError(
                f"record() got {len(groups)} outcome groups for {len(problem_ids)} problems; "
                "pass one group of outcomes per problem id."
            )
        if self.frozen:
            return
        for pid, group in zip(problem_ids, groups, strict=True):
            visit = self._visits.get(pid)
            if visit is None or visit.rate is None:
                raise EnvUsageError(
                    f"record() for problem {pid!r}, whose round has no rate yet; call "
                    "hint_rates() for it first (that fixes the rate the outcomes belong to)."
                )
            if group.size == 0 or not np.all((group >= 0) & (group <= 1)):
                raise EnvUsageError(
                    f"Outcomes of problem {pid!r} must be a non-empty group of values in [0, 1] "
                    f"(1 = right), got {group.tolist()!r:.80}."
                )
            visit.correct += float(group.sum())
            visit.count += group.size
        self._close_rounds(problem_ids)

    def end_step(self) -> None:
        """End the training step: every visit still open is finished with the rounds it has."""
        if self.frozen:
            return
        pending = [pid for pid, v in self._visits.items() if v.count > 0]
        self._close_rounds(pending, finish=False)
        open_ids = [pid for pid, v in self._visits.items() if v.rounds]
        self._finish_visits(open_ids)
        self._visits.clear()
        self._serving = None
        self.step_count += 1
        self._end_step()

    def realise(self, rate: float, n_units: int) -> float:
        """The rate shown for a desired ``rate``: whole units, within this curriculum's caps."""
        return realise(
            rate, n_units, max_rate=self.max_hint_rate, keep_answer_out=self.keep_answer_out
        )

    def round_of(self, problem_id: str) -> int:
        """The 1-based round the problem is in within the current visit."""
        visit = self._visits.get(problem_id)
        return 1 + (len(visit.rounds) if visit is not None else 0)

    # -- the Gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        if options.get("hint_rate") is not None:
            obs, info = self.env.reset(seed=seed, options=options)
            self._described = self._describe(None, float(info["hint_rate"]))
            self._episode = None
            return obs, {**info, **self._described}
        problem_id = options.get("problem_id")
        problem_id = self._next_problem() if problem_id is None else str(problem_id)
        visit = self._current([problem_id])[0]
        assert visit.rate is not None  # _current fixes every rate
        options.update(problem_id=problem_id, hint_rate=visit.rate)
        obs, info = self.env.reset(seed=seed, options=options)
        described = self._describe(visit, visit.rate)
        self._episode = None if self.frozen else (problem_id, visit.rate)
        self._described = described
        return obs, {**info, **described}

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        described = self._described
        episode, self._episode = self._episode, None
        if episode is not None:
            problem_id, rate = episode
            correct = float(info["correct"]) if "correct" in info else float(float(reward) > 0.5)
            visit = self._visits.get(problem_id)
            if visit is None or visit.rate != rate:
                # The round closed under this episode (mixed use with record() or end_step()).
                self.dropped_outcomes += 1
            else:
                visit.correct += correct
                visit.count += 1
                if visit.count >= self.group_size:
                    self._close_rounds([problem_id])
        return obs, reward, terminated, truncated, {**info, **described}

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The curriculum's state as plain Python values (JSON-serialisable)."""
        return {
            "curriculum": self.name,
            "version": STATE_VERSION,
            "step_count": self.step_count,
            "dropped_outcomes": self.dropped_outcomes,
            "rng": self._rng.bit_generator.state,
            "serving": [self._serving, self._served],
            "visits": {
                pid: {
                    "rounds": [list(r) for r in v.rounds],
                    "rate": v.rate,
                    "correct": v.correct,
                    "count": v.count,
                    "details": dict(v.details),
                }
                for pid, v in self._visits.items()
            },
            "own": self._get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (of the same kind of curriculum)."""
        if not isinstance(state, dict) or state.get("curriculum") != self.name:
            found = state.get("curriculum") if isinstance(state, dict) else type(state).__name__
            raise EnvUsageError(
                f"This state is of curriculum {found!r}, not {self.name!r}; load it into a "
                f"{found!r} curriculum."
            )
        if state.get("version") != STATE_VERSION:
            raise EnvUsageError(
                f"Curriculum state version {state.get('version')!r} is not {STATE_VERSION}."
            )
        self.step_count = int(state["step_count"])
        self.dropped_outcomes = int(state["dropped_outcomes"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._serving, self._served = state["serving"][0], int(state["serving"][1])
        self._visits = {
            pid: Visit(
                rounds=[(float(r), float(c), int(n)) for r, c, n in v["rounds"]],
                rate=v["rate"],
                correct=float(v["correct"]),
                count=int(v["count"]),
                details={k: float(x) for k, x in v["details"].items()},
            )
            for pid, v in state["visits"].items()
        }
        self._episode = None
        self._set_state(state["own"])

    # -- internals -----------------------------------------------------------------------------

    def _decide(self, problem_ids: list[str], visits: list[Visit]) -> None:
        base = self.env.unwrapped
        n_units = np.array([base.n_units(pid) for pid in problem_ids], dtype=int)
        rates, details = self._choose(problem_ids, n_units, visits)
        rates = np.asarray(rates, dtype=float)
        if rates.shape != (len(problem_ids),) or not np.all(np.isfinite(rates)):
            raise RuntimeError(f"{type(self).__name__}._choose returned bad rates {rates!r}")
        for i, visit in enumerate(visits):
            visit.rate = self.realise(rates[i], int(n_units[i]))
            visit.details = {
                k: float(details[k][i])
                for k in DETAIL_KEYS
                if k in details and np.isfinite(details[k][i])
            }

    def _close_rounds(self, problem_ids: list[str], *, finish: bool = True) -> None:
        done = []
        for pid in problem_ids:
            visit = self._visits[pid]
            if visit.count == 0:
                continue
            assert visit.rate is not None  # a round with outcomes had its rate fixed
            visit.rounds.append((visit.rate, visit.correct, visit.count))
            self._observe_round(pid, visit.rate, visit.correct, visit.count)
            visit.rate, visit.correct, visit.count, visit.details = None, 0.0, 0, {}
            if len(visit.rounds) >= self.num_rounds:
                done.append(pid)
        if finish:
            self._finish_visits(done)

    def _finish_visits(self, problem_ids: list[str]) -> None:
        if not problem_ids:
            return
        visits = [self._visits.pop(pid) for pid in problem_ids]
        self._finish(problem_ids, visits)
        if self._serving in problem_ids:
            self._serving = None

    def _next_problem(self) -> str:
        if self.frozen:
            return self.sample_problems(1)[0]
        if self._serving is None or self._served >= self.num_rounds * self.group_size:
            self._serving, self._served = self.sample_problems(1)[0], 0
        self._served += 1
        return self._serving

    def _current(self, problem_ids: list[str]) -> list[Visit]:
        """The visits of these problems with their current round's rate fixed.

        A frozen curriculum works on throw-away visits, so its state never changes.
        """
        if self.frozen:
            visits = [Visit() for _ in problem_ids]
        else:
            visits = [self._visits.setdefault(pid, Visit()) for pid in problem_ids]
        todo = [i for i, v in enumerate(visits) if v.rate is None]
        if todo:
            self._decide([problem_ids[i] for i in todo], [visits[i] for i in todo])
        return visits

    def _describe(self, visit: Visit | None, rate: float) -> dict[str, Any]:
        """The ``curriculum/*`` info of an episode; ``visit`` is ``None`` for a pinned rate."""
        params = {k: (visit.details.get(k) if visit is not None else None) for k in DETAIL_KEYS}
        predicted = None
        if None not in params.values():
            predicted = float(accuracy_curve(rate, params["k"], params["mu"], params["b"]))
        return {
            "curriculum/name": self.name,
            "curriculum/hint_rate": rate,
            "curriculum/round": 0 if visit is None else 1 + len(visit.rounds),
            "curriculum/step": self.step_count,
            **{f"curriculum/{k}": v for k, v in params.items()},
            "curriculum/predicted_accuracy": predicted,
            "curriculum/pinned": visit is None,
            "curriculum/frozen": self.frozen,
        }


def realise(
    rate: float, n_units: int, *, max_rate: float = 1.0, keep_answer_out: bool = False
) -> float:
    """The rate the env actually shows: ``l/|y|`` with ``l = hint_length(rate, |y|)``, capped.

    ``max_rate`` caps ``l`` at ``floor(max_rate·|y|)`` units; ``keep_answer_out`` at ``|y|-1``
    (the last unit, which holds the answer, is never shown).

    Example:
        >>> realise(0.5, 3)  # l = floor(1.5 + 0.5) = 2 of 3 units
        0.6666666666666666
        >>> realise(0.7, 0)  # answer-only problem: no hint at all
        0.0
        >>> realise(1.0, 5, keep_answer_out=True)  # 4 of 5 steps: the last is left to do
        0.8
        >>> realise(0.5, 3, max_rate=0.5)  # 2 of 3 would exceed 0.5: floor(1.5) = 1 unit
        0.3333333333333333
    """
    if n_units <= 0:
        return 0.0
    clipped = min(max(float(rate), 0.0), 1.0)
    length = min(hint_length(clipped, n_units), math.floor(max_rate * n_units + 1e-9))
    if keep_answer_out:
        length = min(length, n_units - 1)
    return length / n_units


def find_curriculum(env: gym.Env[Any, Any]) -> Curriculum:
    """The :class:`Curriculum` inside a wrapper chain (e.g. under ``gym.make``'s wrappers)."""
    current: Any = env
    while True:
        if isinstance(current, Curriculum):
            return current
        if not isinstance(current, gym.Wrapper):
            raise EnvUsageError(
                f"No curriculum wrapper found around {type(current).__name__}; wrap the env in "
                "one (e.g. seele_env.curricula.SEELE(env)) or use gym.make('seele/SEELE-v0')."
            )
        current = current.env


def check_target_accuracy(value: object) -> float:
    """``value`` as a float strictly between 0 and 1, or a clear error."""
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
        raise EnvUsageError(f"target_accuracy={value!r} is not a number; pass e.g. 0.5.")
    if not 0.0 < float(value) < 1.0:  # also rejects NaN
        raise EnvUsageError(
            f"target_accuracy={value!r} must be strictly between 0 and 1 (the paper uses 0.5)."
        )
    return float(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EnvUsageError(f"{name}={value!r} must be a positive integer.")
    return int(value)


def _as_ids(problem_ids: Sequence[str]) -> list[str]:
    if isinstance(problem_ids, str):
        raise EnvUsageError(
            f"Pass a list of problem ids, not the single string {problem_ids!r}; "
            f"e.g. [{problem_ids!r}]."
        )
    return [str(pid) for pid in problem_ids]
