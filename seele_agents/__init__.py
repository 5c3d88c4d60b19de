"""Learners that train transformers models against ``seele_env`` environments.

The package is where torch and transformers are imported (``seele_env`` never imports them).
It is grouped by concept, each part usable on its own:

* :mod:`seele_agents.algos` -- the RL maths and the learners (GRPO, PPO, REINFORCE++) and their
  registry;
* :mod:`seele_agents.generation` -- the ``Generator`` protocol, the transformers backend and the
  optional vLLM one;
* :mod:`seele_agents.training` -- ``seele train``: the loop, its factories, rollouts, the
  supervised warm-up, checkpoints, interrupts, distributed training, tracking;
* :mod:`seele_agents.models` -- loading models, and the embedded tiny Llama;
* :mod:`seele_agents.evaluation` -- ``seele eval`` and its metrics;
* :mod:`seele_agents.bench` -- the ``seele bench`` suites;
* :mod:`seele_agents.integrations` -- TRL's ``GRPOTrainer`` against the env;
* :mod:`seele_agents.config` (every command's settings), :mod:`seele_agents.files` (atomic
  writes) and :mod:`seele_agents.cli` (the ``seele`` command).

Importing the package imports none of them, so ``import seele_agents`` is cheap. The module
paths from before the grouping (``seele_agents.train``, ``seele_agents.grpo``, ...) still import,
with a :class:`DeprecationWarning` naming the new path (:mod:`seele_agents._moved`).
``__version__`` is the version of the installed distribution, ``seele-rl``.
"""

from importlib import metadata as _metadata

from seele_agents import _moved

_moved.install()

try:  # the installed distribution's version; a source tree that was never installed has none
    __version__ = _metadata.version("seele-rl")
except _metadata.PackageNotFoundError:
    __version__ = "0+unknown"
