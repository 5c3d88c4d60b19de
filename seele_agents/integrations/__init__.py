"""Other trainers driving seele's env: :mod:`~seele_agents.integrations.trl` runs TRL's
``GRPOTrainer`` against it (the ``trl`` extra). Reward functions for verl, TRL and OpenRLHF are
in :mod:`seele_env.rewards` (no torch needed)."""
