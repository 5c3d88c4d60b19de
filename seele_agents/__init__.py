"""Learners (GRPO, PPO, ...) that train transformers models against ``seele_env`` environments.

Nothing lives here yet: the learners arrive with the training issues. This package is where
torch and transformers may be imported; ``seele_env`` never imports them.
"""
