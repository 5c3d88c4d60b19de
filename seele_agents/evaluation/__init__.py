"""Evaluating a model on math sets: :mod:`~seele_agents.evaluation.metrics` (pass@k, avg@k,
the resumable loop, reports and the hint curve) and :mod:`~seele_agents.evaluation.command`
(``seele eval``: its options, the output folder, loading models and data); docs/evaluation.md.

Names of :mod:`~seele_agents.evaluation.metrics` read from here (the module's old path) still
work, with a :class:`DeprecationWarning`.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    import importlib
    import warnings

    if name.startswith("__") or name in ("metrics", "command"):
        # a submodule not imported yet: the import system loads it, not this forward
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    metrics = importlib.import_module("seele_agents.evaluation.metrics")
    if not hasattr(metrics, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"seele_agents.evaluation.{name} is now seele_agents.evaluation.metrics.{name}.",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(metrics, name)
