"""Synthetic learners with known accuracy curves, for testing and benchmarking hint curricula.

A curriculum picks a hint rate ``p`` per problem to keep rollout accuracy near a target. With a
real model the true accuracy curve is never known; here every problem has a hidden 3PL curve
``f(p) = b + (1 − b)·σ(k·(p + mu))`` (section 1 of DESIGN.md), rollouts are Bernoulli draws from
it, and training moves ``mu`` by a simple learning model, so a controller's choices can be
scored against the truth. :class:`SyntheticEnv` wraps the learner in the ``MathHintEnv``
contract so curriculum wrappers run on it unchanged.

Example:
    >>> learner = SyntheticLearner(200, seed=1)
    >>> idx = learner.index(["syn-0000", "syn-0001"])
    >>> outcomes = learner.sample(idx, [0.6, 0.7], n=8)
    >>> outcomes.shape, outcomes.dtype
    ((2, 8), dtype('bool'))
    >>> before = learner.no_hint_accuracy()
    >>> metrics = learner.learn(idx, [0.6, 0.7], outcomes)
    >>> learner.no_hint_accuracy() >= before, learner.steps_trained
    (True, 1)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from seele_env.env import MAX_TEXT_CHARS, UnicodeText, check_reset_options, check_step
from seele_env.errors import EnvUsageError, HintError
from seele_env.hints import check_hint_rate, hint_length
from seele_env.irt import accuracy_curve
from seele_env.loaders.problem_set import UnknownProblemError

UNITS = ("tokens", "steps")
STATE_VERSION = 1
# Share of problems with a guessing floor (multiple-choice-like answers); the rest have b ≈ 0.
_GUESSING_SHARE = 0.1
_STEP_COUNTS = np.arange(1, 6)
_STEP_PROBS = np.array([0.05, 0.10, 0.25, 0.30, 0.30])  # mostly 3–5 steps, as in the paper


def _rates(hint_rates: ArrayLike) -> NDArray[np.float64]:
    """Hint rates as a float array, or a :class:`HintError` naming the first bad one."""
    if np.ndim(hint_rates) == 0:
        return np.asarray(check_hint_rate(hint_rates))
    try:
        rates = np.asarray(hint_rates, dtype=float)
    except (TypeError, ValueError):
        raise HintError(f"hint_rates={hint_rates!r:.80} are not numbers in [0, 1].") from None
    bad = ~((rates >= 0.0) & (rates <= 1.0))  # NaN is bad too
    if bad.any():
        check_hint_rate(rates[bad].flat[0])  # raises with the standard message
    return rates


def _pair(name: str, value: Sequence[float], lo: float, hi: float) -> tuple[float, float]:
    try:
        a, z = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a (low, high) pair of numbers.") from None
    if not lo <= a <= z <= hi:
        raise ValueError(f"{name}={value!r} must satisfy {lo} <= low <= high <= {hi}.")
    return a, z


def _int(name: str, value: int, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}={value!r} must be an int >= {lo}.")
    return int(value)


def _number(name: str, value: float, lo: float = 0.0, hi: float = 1e6) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}={value!r} must be a number in [{lo}, {hi}].")
    if not lo <= float(value) <= hi:  # also rejects NaN
        raise ValueError(f"{name}={value!r} must be in [{lo}, {hi}]; pass a value in that range.")
    return float(value)


class SyntheticLearner:
    """A population of synthetic problems, each with a hidden 3PL accuracy curve in the hint
    rate, and a learner whose ability improves when trained on informative groups.

    Population (fixed by ``seed``): ``k`` log-uniform in ``k_range``; midpoint ``-mu`` uniform
    in ``midpoint_range`` (so accuracy without a hint starts low); ``b`` near 0 for 90% of
    problems (Beta(1, 50)) and uniform in [0, 0.25] for 10% (a guessing floor); ``n_units``
    uniform in 100..800 for ``units="tokens"``, 1..5 (mostly 3–5) for ``units="steps"``.

    Learning model (a modelling choice, not the paper's): a group of ``n`` rollouts at rate
    ``p`` with mean outcome ``ō`` carries the GRPO signal ``4·ō(1−ō)`` — zero when all rollouts
    agree, which is why curricula matter — weighted by ``w = 1 − (1 − hint_transfer)·p``, as
    learning with a long hint transfers less to solving without one. One :meth:`learn` step
    raises each problem's ``mu`` by ``own_rate`` × (mean weighted signal of its groups) plus, for
    every problem, ``transfer_rate`` × (sum of weighted signals) / ``num_problems`` (RL
    generalises across problems), capped at ``mu_max``. ``k`` and ``b`` stay fixed. Rates are
    used as given: pass realised rates ``hint_len / n_units``, as :class:`SyntheticEnv` does.

    The default rates were tuned so that a perfect controller (token units, 1000 problems, 20
    steps of 250 problems with 4 rounds of 8 rollouts at true accuracy 0.5) lifts the no-hint
    accuracy from about 0.04 to about 0.4, while training without hints moves it by about 0.03.
    Step units (1–5 per problem) quantise the rates, so the same controller lifts it to ~0.2.

    Args:
        num_problems: Population size ``P``.
        units: ``"tokens"`` or ``"steps"``: the kind of hint unit ``n_units`` counts.
        seed: Seeds the population and the learner's sampling RNG.
        k_range: Range of the slopes ``k`` (log-uniform).
        midpoint_range: Range of the midpoints ``-mu`` at the start (uniform).
        own_rate: Gain of ``mu`` per unit of a problem's own mean weighted signal.
        transfer_rate: Gain of every problem's ``mu`` per unit of the population's mean signal.
        hint_transfer: Learning value of a fully hinted group relative to an unhinted one.
        mu_max: Cap of ``mu`` (``f(0)`` saturates near 1 once ``k·mu`` is large).

    Attributes:
        problem_ids: ``("syn-0000", ...)``.
        n_units: ``|y|`` per problem, ints ``[P]``.
        k, mu, b: Curve parameters ``[P]``; ``mu`` moves with learning.
        steps_trained: How many :meth:`learn` steps were taken.

    Example:
        >>> learner = SyntheticLearner(50, units="steps", seed=0)
        >>> learner.problem_ids[:2], learner.n_units.shape
        (('syn-0000', 'syn-0001'), (50,))
        >>> bool(learner.accuracy(0, 1.0) > learner.accuracy(0, 0.0))
        True
    """

    def __init__(
        self,
        num_problems: int = 1000,
        *,
        units: str = "tokens",
        seed: int = 0,
        k_range: Sequence[float] = (4.0, 50.0),
        midpoint_range: Sequence[float] = (0.4, 0.9),
        own_rate: float = 0.1,
        transfer_rate: float = 0.018,
        hint_transfer: float = 0.5,
        mu_max: float = 0.5,
    ) -> None:
        self.num_problems = _int("num_problems", num_problems, 1)
        self.seed = _int("seed", seed, 0)
        if units not in UNITS:
            raise ValueError(f"units={units!r} is not one of {UNITS}; pick one of those.")
        self.units = units
        k_lo, k_hi = _pair("k_range", k_range, 1e-6, 1e6)
        m_lo, m_hi = _pair("midpoint_range", midpoint_range, -0.5, 1.5)
        # The cap may not lie below a starting mu (that would make learning lower it).
        self.mu_max = _number("mu_max", mu_max, lo=-m_lo, hi=10.0)
        self.own_rate = _number("own_rate", own_rate)
        self.transfer_rate = _number("transfer_rate", transfer_rate)
        self.hint_transfer = _number("hint_transfer", hint_transfer, hi=1.0)
        self.k_range, self.midpoint_range = (k_lo, k_hi), (m_lo, m_hi)

        # Separate streams: the population must not depend on how much was sampled.
        pop_seq, sample_seq = np.random.SeedSequence(self.seed).spawn(2)
        pop = np.random.default_rng(pop_seq)
        P = self.num_problems
        self.k = np.exp(pop.uniform(np.log(k_lo), np.log(k_hi), P))
        self.mu = -pop.uniform(m_lo, m_hi, P)
        guessing = pop.random(P) < _GUESSING_SHARE
        self.b = np.where(guessing, pop.uniform(0.0, 0.25, P), pop.beta(1.0, 50.0, P))
        if units == "tokens":
            self.n_units = pop.integers(100, 801, P)
        else:
            self.n_units = pop.choice(_STEP_COUNTS, size=P, p=_STEP_PROBS)
        self.problem_ids = tuple(f"syn-{i:04d}" for i in range(P))
        self._ids = {pid: i for i, pid in enumerate(self.problem_ids)}
        self._rng = np.random.default_rng(sample_seq)
        self.steps_trained = 0

    # -- problems -------------------------------------------------------------------------------

    def index(self, problem_ids: ArrayLike) -> NDArray[np.intp]:
        """Indices of problems given by id (``"syn-0003"``) or index, in the input's shape.

        Raises:
            UnknownProblemError: (a ``KeyError``) an id or index the population does not hold.

        Example:
            >>> SyntheticLearner(10).index(["syn-0003", 7]).tolist()
            [3, 7]
        """
        arr = np.asarray(problem_ids)
        if arr.dtype.kind in "iu":  # the hot path: vectorised bounds check
            if arr.size and not ((arr >= 0) & (arr < self.num_problems)).all():
                self._lookup(int(arr[(arr < 0) | (arr >= self.num_problems)].flat[0]))
            return arr.astype(np.intp)
        arr = np.asarray(problem_ids, dtype=object)  # not arr: numpy turns [1, "x"] into strs
        return np.array([self._lookup(x) for x in arr.ravel()], dtype=np.intp).reshape(arr.shape)

    def _lookup(self, pid: object) -> int:
        if isinstance(pid, (int, np.integer)) and not isinstance(pid, bool):
            if 0 <= pid < self.num_problems:
                return int(pid)
        elif isinstance(pid, str) and pid in self._ids:
            return self._ids[pid]
        close = difflib.get_close_matches(str(pid), self.problem_ids, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise UnknownProblemError(
            f"unknown problem {pid!r}: the learner holds ids 'syn-0000'..{self.problem_ids[-1]!r} "
            f"(or indices 0..{self.num_problems - 1}){hint}"
        )

    # -- the true curves and rollouts -----------------------------------------------------------

    def accuracy(self, idx: ArrayLike, hint_rates: ArrayLike) -> NDArray[np.float64]:
        """The true expected accuracy now at the given hint rates (arguments broadcast).

        Example:
            >>> learner = SyntheticLearner(10)
            >>> learner.accuracy([0, 1, 2], 0.0).shape
            (3,)
        """
        i = self.index(idx)
        return accuracy_curve(_rates(hint_rates), self.k[i], self.mu[i], self.b[i])

    def no_hint_accuracy(self) -> float:
        """Population mean of the true accuracy at ``p = 0``.

        Example:
            >>> 0.0 < SyntheticLearner(1000).no_hint_accuracy() < 0.2
            True
        """
        return float(accuracy_curve(0.0, self.k, self.mu, self.b).mean())

    def oracle_hint_rate(self, idx: ArrayLike, target: float = 0.5) -> NDArray[np.float64]:
        """The hint rate whose true accuracy is ``target``, clipped to [0, 1] (a perfect
        controller's choice; 0 where the guessing floor ``b`` already reaches ``target``).

        Example:
            >>> learner = SyntheticLearner(10)
            >>> p = learner.oracle_hint_rate(3)
            >>> round(float(learner.accuracy(3, p)), 6)
            0.5
        """
        if not 0.0 < target < 1.0:
            raise ValueError(f"target={target!r} must be strictly between 0 and 1.")
        i = self.index(idx)
        k, mu, b = self.k[i], self.mu[i], self.b[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            p = -mu + np.log((target - b) / (1.0 - target)) / k
        return np.clip(np.where(b >= target, 0.0, p), 0.0, 1.0)

    def sample(self, idx: ArrayLike, hint_rates: ArrayLike, n: int) -> NDArray[np.bool_]:
        """``n`` Bernoulli rollout outcomes per (problem, rate) pair from the learner's RNG.

        Returns:
            Bools of shape ``broadcast(idx, hint_rates).shape + (n,)``: ``[G, n]`` for ``G``
            pairs.

        Example:
            >>> SyntheticLearner(10).sample([0, 1, 2], 1.0, n=4).shape
            (3, 4)
        """
        n = _int("n", n, 1)
        acc = self.accuracy(idx, hint_rates)
        return self._rng.random((*acc.shape, n)) < acc[..., None]

    # -- learning -------------------------------------------------------------------------------

    def learn(self, idx: ArrayLike, hint_rates: ArrayLike, outcomes: ArrayLike) -> dict[str, float]:
        """One training step on ``G`` groups (see the class docstring for the model).

        Args:
            idx: Problem of each group, ``[G]`` (ids or indices; repeats allowed).
            hint_rates: Hint rate of each group, ``[G]`` (or one for all).
            outcomes: Rollout outcomes, bools ``[G, n]``.

        Returns:
            ``signal`` and ``weighted_signal`` (group means), ``informative`` (share of groups
            with mixed outcomes), ``accuracy`` and ``hint_rate`` (means over groups), and after
            the update ``no_hint_accuracy`` and ``mu_mean``.

        Example:
            >>> learner = SyntheticLearner(10)
            >>> m = learner.learn([0, 1], [0.5, 0.5], [[True, False], [True, True]])
            >>> m["signal"], m["informative"]
            (0.5, 0.5)
        """
        i = np.atleast_1d(self.index(idx))
        out = np.asarray(outcomes)
        if i.ndim != 1 or out.ndim != 2 or out.shape[0] != i.shape[0] or out.shape[1] < 1:
            raise ValueError(
                f"learn() needs idx [G] and outcomes [G, n >= 1]; got idx shape {i.shape} and "
                f"outcomes shape {out.shape}."
            )
        if out.dtype != bool and not np.isin(out, (0, 1)).all():
            raise ValueError("outcomes must be bools (or 0/1): one rollout's correctness each.")
        p = np.broadcast_to(_rates(hint_rates), i.shape)
        o = out.mean(axis=1)
        signal = 4.0 * o * (1.0 - o)
        weighted = signal * (1.0 - (1.0 - self.hint_transfer) * p)
        P = self.num_problems
        counts = np.bincount(i, minlength=P)
        own = np.bincount(i, weights=weighted, minlength=P) / np.maximum(counts, 1)
        delta = self.own_rate * own + self.transfer_rate * weighted.sum() / P
        self.mu = np.minimum(self.mu + delta, self.mu_max)
        self.steps_trained += 1
        mean = (lambda x: float(np.mean(x))) if i.size else (lambda x: 0.0)
        return {
            "signal": mean(signal), "weighted_signal": mean(weighted),
            "informative": mean(signal > 0), "accuracy": mean(o), "hint_rate": mean(p),
            "no_hint_accuracy": self.no_hint_accuracy(), "mu_mean": float(self.mu.mean()),
        }  # fmt: skip

    # -- checkpoints ----------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready: ``SyntheticLearner(**config)`` rebuilds it.

        Example:
            >>> SyntheticLearner(**SyntheticLearner(5, seed=2).config()).config()["seed"]
            2
        """
        return {
            "num_problems": self.num_problems, "units": self.units, "seed": self.seed,
            "k_range": list(self.k_range), "midpoint_range": list(self.midpoint_range),
            "own_rate": self.own_rate, "transfer_rate": self.transfer_rate,
            "hint_transfer": self.hint_transfer, "mu_max": self.mu_max,
        }  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes, as plain JSON-serialisable types (plus the config, checked
        on load).

        Example:
            >>> import json
            >>> a, b = SyntheticLearner(10, seed=4), SyntheticLearner(10, seed=4)
            >>> _ = a.sample([1, 2], 0.5, n=3)
            >>> b.load_state_dict(json.loads(json.dumps(a.state_dict())))
            >>> bool((a.sample(0, 0.9, n=20) == b.sample(0, 0.9, n=20)).all())
            True
        """
        return {
            "version": STATE_VERSION,
            "config": self.config(),
            "mu": self.mu.tolist(),
            "steps_trained": self.steps_trained,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output into a learner built with the same config.

        Raises:
            ValueError: A missing key, another state version, or another config.

        Example:
            >>> learner = SyntheticLearner(5)
            >>> learner.load_state_dict({**learner.state_dict(), "steps_trained": 3})
            >>> learner.steps_trained
            3
        """
        missing = {"version", "config", "mu", "steps_trained", "rng"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; pass a state_dict() output.")
        if state["version"] != STATE_VERSION:
            raise ValueError(f"state version {state['version']!r} is not {STATE_VERSION}.")
        config = self.config()
        diff = sorted(key for key in config if state["config"].get(key) != config[key])
        if diff:
            raise ValueError(
                f"state was saved by a learner with other {diff}; build the learner with "
                "SyntheticLearner(**state['config']) first."
            )
        mu = np.asarray(state["mu"], dtype=float)
        if mu.shape != self.mu.shape or not (mu <= self.mu_max).all():
            raise ValueError(f"state['mu'] must be {self.num_problems} numbers <= mu_max.")
        self._rng.bit_generator.state = dict(state["rng"])
        self.mu = mu
        self.steps_trained = int(state["steps_trained"])


class SyntheticEnv(gym.Env[str, str]):
    """The synthetic learner as a one-step Gymnasium env with the same reset/info contract as
    ``MathHintEnv``, so hint-curriculum wrappers can run on it unchanged. The action is ignored:
    whether the episode is solved is drawn from the learner's true accuracy at the episode's
    realised hint rate.

    ``info`` has MathHintEnv's keys (``hint_text`` is ``""``, ``source`` is ``"synthetic"``)
    plus ``true_accuracy``. The learner is ``env.learner``; the env never trains it.

    Args:
        learner: The learner to expose; by default one is built from ``learner_kwargs``.
        **learner_kwargs: Arguments of :class:`SyntheticLearner`.

    Example:
        >>> env = SyntheticEnv(num_problems=20, units="steps")
        >>> obs, info = env.reset(seed=0, options={"problem_id": "syn-0003", "hint_rate": 0.5})
        >>> obs == f"synthetic problem syn-0003 (hint {info['hint_len']}/{info['n_units']} steps)"
        True
        >>> _, reward, terminated, truncated, info = env.step("anything")
        >>> reward == float(info["correct"]), terminated, truncated
        (True, True, False)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's API)

    def __init__(self, learner: SyntheticLearner | None = None, **learner_kwargs: Any) -> None:
        if learner is not None and learner_kwargs:
            raise EnvUsageError(
                "Pass either a learner or learner arguments, not both "
                f"(got {sorted(learner_kwargs)})."
            )
        if learner is not None and not isinstance(learner, SyntheticLearner):
            raise EnvUsageError(f"learner={learner!r:.80} is not a SyntheticLearner.")
        self.learner = learner if learner is not None else SyntheticLearner(**learner_kwargs)
        self.observation_space = UnicodeText(max_length=MAX_TEXT_CHARS, min_length=0)
        self.action_space = UnicodeText(max_length=MAX_TEXT_CHARS, min_length=0)
        self._info: dict[str, Any] | None = None

    @property
    def problem_ids(self) -> tuple[str, ...]:
        """The ids of the learner's problems.

        Example:
            >>> SyntheticEnv(num_problems=3).problem_ids
            ('syn-0000', 'syn-0001', 'syn-0002')
        """
        return self.learner.problem_ids

    def n_units(self, problem_id: str) -> int:
        """``|y|`` of a problem in the learner's unit.

        Example:
            >>> 1 <= SyntheticEnv(num_problems=3, units="steps").n_units("syn-0002") <= 5
            True
        """
        return int(self.learner.n_units[self.learner.index(problem_id)])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = check_reset_options(options)
        if options.get("problem_id") is not None:
            i = int(self.learner.index(options["problem_id"]))
        else:
            i = int(self.np_random.integers(self.learner.num_problems))
        rate = options.get("hint_rate")
        requested = 0.0 if rate is None else check_hint_rate(rate)
        n_units = int(self.learner.n_units[i])
        hint_len = hint_length(requested, n_units)
        realised = hint_len / n_units
        pid = self.learner.problem_ids[i]
        obs = f"synthetic problem {pid} (hint {hint_len}/{n_units} {self.learner.units})"
        self._info = {
            "problem_id": pid, "hint_rate": realised, "requested_hint_rate": requested,
            "hint_len": hint_len, "n_units": n_units, "hint_unit": self.learner.units,
            "hint_text": "", "placement": "response", "prompt": obs, "source": "synthetic",
            "true_accuracy": float(self.learner.accuracy(i, realised)),
        }  # fmt: skip
        return obs, dict(self._info)

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        check_step(self._info is not None, action)
        info, self._info = self._info, None
        correct = bool(self.np_random.random() < info["true_accuracy"])
        info = {**info, "correct": correct, "extracted_answer": None, "verify_error": None,
                "formatted": False}  # fmt: skip
        return "", float(correct), True, False, info


if __name__ == "__main__":  # the command's old name, kept working
    import runpy
    import sys

    print(
        "python -m seele_env.simulate is now python -m seele_env.curricula.compare; running that.",
        file=sys.stderr,
    )
    runpy.run_module("seele_env.curricula.compare", run_name="__main__", alter_sys=True)
