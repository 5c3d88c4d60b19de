"""Hint curricula: controllers of the hint rate, as ``gymnasium.Wrapper`` s.

Every curriculum shares one interface (:class:`Curriculum`): it picks the hint rate at ``reset``
unless the caller pinned one, records every ``step``'s outcome, reports what it did in ``info``
(``curriculum/*`` keys), has ``state_dict()`` / ``load_state_dict()`` for checkpoints and a
``frozen`` mode for evaluation, and offers a grouping API for batched agents
(``sample_problems``, ``hint_rates``, ``record``, ``end_step``).

Example:
    >>> import gymnasium as gym
    >>> import seele_env
    >>> env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=2)
    >>> seele = find_curriculum(env)
    >>> _, info = env.reset(seed=0)
    >>> info["curriculum/round"], info["hint_rate"] == info["curriculum/hint_rate"]
    (1, True)
    >>> ids = seele.sample_problems(2)  # the grouping API, for batched agents
    >>> rates = seele.hint_rates(ids)  # round 1: (|y| - 1) / |y| on a first visit
    >>> seele.record(ids, [[1, 0], [0, 0]])  # round 1's outcomes; round 2 fits the curve
    >>> seele.round_of(ids[0])
    2
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import gymnasium as gym

from seele_env.curricula.base import Curriculum, Visit, find_curriculum, realise
from seele_env.curricula.baselines import (
    Bisection,
    CosineDecay,
    DynamicSampling,
    FixedRate,
    NoHint,
    Staged,
    UniformRandom,
)
from seele_env.curricula.seele import SEELE
from seele_env.errors import EnvUsageError

CURRICULA: dict[str, type[Curriculum]] = {
    cls.name: cls
    for cls in (
        SEELE,
        NoHint,
        FixedRate,
        CosineDecay,
        Staged,
        UniformRandom,
        Bisection,
        DynamicSampling,
    )
}

__all__ = [
    "CURRICULA",
    "SEELE",
    "Bisection",
    "CosineDecay",
    "Curriculum",
    "DynamicSampling",
    "FixedRate",
    "NoHint",
    "Staged",
    "UniformRandom",
    "Visit",
    "curriculum_class",
    "find_curriculum",
    "make_curriculum",
    "make_curriculum_env",
    "make_seele_env",
    "realise",
]


def curriculum_class(name: str) -> type[Curriculum]:
    """The curriculum class registered as ``name``, or a clear error with a suggestion."""
    cls = CURRICULA.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, CURRICULA, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise EnvUsageError(
            f"Unknown curriculum {name!r}; the curricula are {sorted(CURRICULA)}.{hint}"
        )
    return cls


def make_curriculum(name: str, env: gym.Env[str, str], **kwargs: Any) -> Curriculum:
    """Wrap ``env`` in the curriculum registered as ``name`` (see ``CURRICULA``)."""
    return curriculum_class(name)(env, **kwargs)


def make_curriculum_env(curriculum: str = "seele", **kwargs: Any) -> Curriculum:
    """A ``MathHintEnv`` wrapped in a curriculum; keyword arguments go to whichever takes them.

    Registered as ``seele/Curriculum-v0``: ``gym.make("seele/Curriculum-v0", curriculum="uft",
    horizon=200, dataset="gsm8k")``.
    """
    from seele_env.env import MathHintEnv

    cls = curriculum_class(curriculum)
    names = set()
    for klass in cls.__mro__:
        if issubclass(klass, Curriculum):
            names |= set(inspect.signature(klass.__init__).parameters) - {"self", "env", "kwargs"}
    own = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    return cls(MathHintEnv(**kwargs), **own)


def make_seele_env(**kwargs: Any) -> Curriculum:
    """``MathHintEnv`` + :class:`SEELE`, registered as ``seele/SEELE-v0``."""
    return make_curriculum_env("seele", **kwargs)
