"""The learners and the policy-loss types, by name: one source for the config's choices, the
factories (:func:`seele_agents.training.build.make_learner`) and the docs.

Only the standard library is imported, so ``seele --help`` and config checks never wait for
torch; a learner's class is imported when :func:`learner_class` is first asked for it.

A new learner is one :func:`register_learner` call (its class takes the model, the optimiser,
the scheduler, the shared options of :class:`~seele_agents.algos.learner.PolicyLearner` and the
``algo.*`` fields named in ``options``); it is then a valid ``algo.name``.

Example:
    >>> sorted(LEARNERS), sorted(LOSS_TYPES)
    (['grpo', 'ppo', 'reinforcepp'], ['dapo', 'dr_grpo', 'grpo'])
    >>> LEARNERS["grpo"].options
    ('advantage', 'baseline')
    >>> LOSS_TYPES["dapo"].default_epsilon_high
    0.28
    >>> learner_class("reinforcepp").__name__
    'ReinforcePPLearner'
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

AGGREGATION_NAMES = ("seq_mean", "token_mean", "seq_sum_constant")
"""The reductions of :data:`seele_agents.algos.losses.AGGREGATIONS`, by name."""


def unknown(kind: str, value: object, valid: list[str]) -> ValueError:
    """``Unknown <kind> <value>; choose one of [...]. Did you mean ...?``"""
    close = difflib.get_close_matches(str(value), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {kind} {value!r}; choose one of {valid}.{hint}")


@dataclass(frozen=True)
class LossType:
    """A named policy-loss recipe.

    Attributes:
        aggregation: Key of ``AGGREGATIONS`` used for the surrogate and the KL term.
        default_epsilon_high: Upper clip width used when ``policy_loss`` gets
            ``epsilon_high=None`` (and ``algo.epsilon_high`` is null).
        paper: Where the recipe comes from.
    """

    aggregation: str
    default_epsilon_high: float
    paper: str

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATION_NAMES:
            raise unknown("aggregation", self.aggregation, sorted(AGGREGATION_NAMES))
        if not self.default_epsilon_high > 0:
            raise ValueError(f"default_epsilon_high={self.default_epsilon_high!r} must be > 0.")


LOSS_TYPES: dict[str, LossType] = {
    "grpo": LossType("seq_mean", 0.2, "Shao et al. 2024, DeepSeekMath (arXiv 2402.03300)"),
    "dr_grpo": LossType(
        "seq_sum_constant",
        0.2,
        "Liu et al. 2025, Understanding R1-Zero-Like Training (arXiv 2503.20783)",
    ),
    "dapo": LossType("token_mean", 0.28, "Yu et al. 2025, DAPO (arXiv 2503.14476)"),
}
"""Policy-loss recipes by name; see :mod:`seele_agents.algos.losses`."""


@dataclass(frozen=True)
class LearnerSpec:
    """How to build one learner.

    Attributes:
        entry_point: ``"module:Class"``, imported on first use.
        summary: One line for ``algo.name``'s help and the docs.
        options: The ``algo.*`` fields passed to the class as keyword arguments of the same name.
        value_head: Whether it trains a value head (built by the factory, with its own LR).
    """

    entry_point: str
    summary: str
    options: tuple[str, ...] = ()
    value_head: bool = False


LEARNERS: dict[str, LearnerSpec] = {}
"""Learners by ``algo.name``."""


def register_learner(
    name: str,
    entry_point: str,
    summary: str,
    *,
    options: tuple[str, ...] = (),
    value_head: bool = False,
) -> None:
    """Make ``name`` a valid ``algo.name`` (an existing name is refused)."""
    if name in LEARNERS:
        raise ValueError(f"learner {name!r} is already registered ({LEARNERS[name].entry_point}).")
    if ":" not in entry_point:
        raise ValueError(f"entry_point={entry_point!r}: write it as 'package.module:ClassName'.")
    LEARNERS[name] = LearnerSpec(entry_point, summary, tuple(options), value_head)


def learner_class(name: str) -> type:
    """The class ``name`` is registered with (imports its module)."""
    spec = LEARNERS.get(name)
    if spec is None:
        raise unknown("learner", name, sorted(LEARNERS))
    module, _, attribute = spec.entry_point.partition(":")
    return getattr(importlib.import_module(module), attribute)


register_learner(
    "grpo",
    "seele_agents.algos.grpo:GRPOLearner",
    "group advantages: GRPO, Dr.GRPO",
    options=("advantage", "baseline"),
)
register_learner(
    "ppo",
    "seele_agents.algos.ppo:PPOLearner",
    "value head + GAE",
    options=("value_coef", "value_clip", "discount", "gae_lambda"),
    value_head=True,
)
register_learner(
    "reinforcepp",
    "seele_agents.algos.reinforcepp:ReinforcePPLearner",
    "REINFORCE++: whitened returns, no critic",
    options=("discount",),
)
