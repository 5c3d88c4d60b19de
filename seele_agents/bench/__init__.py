"""The ``seele bench`` suites: :mod:`~seele_agents.bench.curricula` (curricula at a matched
rollout budget, the default), :mod:`~seele_agents.bench.speed` (our GRPO step against TRL's),
:mod:`~seele_agents.bench.scaling` (step phases as the work grows) and
:mod:`~seele_agents.bench.parity` (our GRPO and TRL's trained from one start).

Names of :mod:`~seele_agents.bench.curricula` read from here (the module's old path) still
work, with a :class:`DeprecationWarning`.
"""

from seele_agents._moved import forwarding

__getattr__ = forwarding(
    __name__,
    into="seele_agents.bench.curricula",
    submodules=("curricula", "speed", "scaling", "parity"),
)
