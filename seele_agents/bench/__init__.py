"""The ``seele bench`` suites: :mod:`~seele_agents.bench.curricula` (curricula at a matched
rollout budget, the default), :mod:`~seele_agents.bench.speed` (our GRPO step against TRL's),
:mod:`~seele_agents.bench.scaling` (step phases as the work grows) and
:mod:`~seele_agents.bench.parity` (our GRPO and TRL's trained from one start).

Names of :mod:`~seele_agents.bench.curricula` read from here (the module's old path) still
work, with a :class:`DeprecationWarning`.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    import importlib
    import warnings

    if name.startswith("__") or name in ("curricula", "speed", "scaling", "parity"):
        # a submodule not imported yet: the import system loads it, not this forward
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    curricula = importlib.import_module("seele_agents.bench.curricula")
    if not hasattr(curricula, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"seele_agents.bench.{name} is now seele_agents.bench.curricula.{name}.",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(curricula, name)
