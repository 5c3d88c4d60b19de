"""The RL algorithms: pure tensor maths, the shared update loop, and the learners.

* :mod:`~seele_agents.algos.advantages`, :mod:`~seele_agents.algos.returns`,
  :mod:`~seele_agents.algos.losses` -- group advantages, token rewards and GAE, policy losses;
* :mod:`~seele_agents.algos.learner` -- the clipped-surrogate update loop every learner shares
  (``step(batch) -> metrics``);
* :mod:`~seele_agents.algos.grpo`, :mod:`~seele_agents.algos.ppo`,
  :mod:`~seele_agents.algos.reinforcepp` -- GRPO (and Dr.GRPO), PPO with a value head,
  REINFORCE++;
* :mod:`~seele_agents.algos.registry` -- the learners and loss types by name (torch-free: the
  config reads it).
"""
