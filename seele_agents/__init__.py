"""Learners that train transformers models against ``seele_env`` environments.

The package is where torch and transformers are imported (``seele_env`` never imports them).
Its parts, each usable on its own:

* :mod:`seele_agents.generation` -- the ``Generator`` protocol and the transformers backend
  (``vllm_generation`` holds the optional vLLM backend, imported only when chosen);
* :mod:`seele_agents.rollout` -- the only code that talks to both an env and a generator;
* :mod:`seele_agents.advantages`, :mod:`seele_agents.losses`, :mod:`seele_agents.returns` --
  the pure tensor maths (group advantages, policy losses, token rewards, GAE, value loss);
* :mod:`seele_agents.learner` -- the update loop every learner shares
  (``step(batch) -> metrics``); :mod:`seele_agents.grpo`, :mod:`seele_agents.ppo` and
  :mod:`seele_agents.reinforcepp` -- GRPO, PPO with a value head, REINFORCE++;
* :mod:`seele_agents.trl_adapter` -- TRL's ``GRPOTrainer`` against the env (optional extra);
* :mod:`seele_agents.train`, :mod:`seele_agents.config`, :mod:`seele_agents.checkpoint`,
  :mod:`seele_agents.cli` -- the training loop and the ``seele`` command.

Importing the package imports none of them, so ``import seele_agents`` is cheap.
``__version__`` is the version of the installed distribution, ``seele-rl``.
"""

from importlib import metadata as _metadata

try:  # the installed distribution's version; a source tree that was never installed has none
    __version__ = _metadata.version("seele-rl")
except _metadata.PackageNotFoundError:
    __version__ = "0+unknown"
