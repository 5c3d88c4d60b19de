"""``seele train``: the loop and what it needs around it.

* :mod:`~seele_agents.training.loop` -- :func:`~seele_agents.training.loop.train`: build,
  resume, evaluate, then per step rollouts -> update -> log -> checkpoint;
* :mod:`~seele_agents.training.build` -- the factories: model, envs, optimiser, generator,
  learner;
* :mod:`~seele_agents.training.rollout` -- the only code that talks to both an env and a
  generator;
* :mod:`~seele_agents.training.sft` -- the supervised warm-up;
* :mod:`~seele_agents.training.checkpoint` -- atomic checkpoints that resume exactly;
* :mod:`~seele_agents.training.interrupts` -- Ctrl-C and SIGTERM saving the last finished step;
* :mod:`~seele_agents.training.distributed` -- data-parallel and FSDP over several processes;
* :mod:`~seele_agents.training.tracking`, :mod:`~seele_agents.training.samples`,
  :mod:`~seele_agents.training.plots` -- metrics, sample completions, the training plot.
"""
