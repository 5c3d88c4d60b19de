"""Evaluating a model on math sets: :mod:`~seele_agents.evaluation.metrics` (pass@k, avg@k,
the resumable loop, reports and the hint curve) and :mod:`~seele_agents.evaluation.command`
(``seele eval``: its options, the output folder, loading models and data); docs/evaluation.md.

Names of :mod:`~seele_agents.evaluation.metrics` read from here (the module's old path) still
work, with a :class:`DeprecationWarning`.
"""

from seele_agents._moved import forwarding

__getattr__ = forwarding(
    __name__, into="seele_agents.evaluation.metrics", submodules=("metrics", "command")
)
