"""REINFORCE++ (Hu 2025, arXiv 2501.03262): PPO's clipped loss without a critic.

Each generated token's advantage is the return that follows it, ``G_t = sum_{s >= t} r_s``, with
the token rewards of PPO (a ``-beta * (log pi_old - log pi_ref)`` KL penalty on every generated
token and the verified reward at the last one), whitened over all generated tokens of the batch
(the "global batch normalisation" that replaces a critic or a group baseline). The policy loss
is the shared clipped surrogate (:class:`~seele_agents.algos.learner.PolicyLearner`); hint tokens
get only the imitation term.

Why this as the third learner: unlike RLOO (a leave-one-out variant of GRPO's group baseline,
which is an advantage estimator rather than a new learner), REINFORCE++ needs no groups, no critic
and puts the KL in the reward, so it exercises the learner interface from a third side while
reusing PPO's returns code; like PPO it works with one rollout per problem.

Example:
    >>> import torch
    >>> from seele_agents.models.tiny import build_tiny
    >>> model, _ = build_tiny(seed=0)
    >>> learner = ReinforcePPLearner(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    >>> learner.name, learner.kl_in_reward
    ('reinforcepp', True)
"""

from __future__ import annotations

from typing import Any

import torch

from seele_agents.algos.learner import PolicyLearner, Targets
from seele_agents.algos.returns import discounted_returns, masked_mean, token_rewards, whiten
from seele_agents.training.rollout import RolloutBatch

__all__ = ["ReinforcePPLearner"]


class ReinforcePPLearner(PolicyLearner):
    """REINFORCE++ for a causal LM.

    Args:
        model: The policy (a transformers causal LM, or a peft model).
        optimizer: Its optimiser.
        scheduler: Optional LR scheduler, stepped once per :meth:`step`.
        discount: Discount factor over generated tokens (1 in the paper).
        **kwargs: The shared options of :class:`~seele_agents.algos.learner.PolicyLearner`;
            ``beta`` is the weight of the per-token KL penalty in the reward.
    """

    name = "reinforcepp"
    kl_in_reward = True

    def __init__(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        discount: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, optimizer, scheduler, **kwargs)
        if not 0 <= discount <= 1:
            raise ValueError(f"discount={discount!r} must be in [0, 1].")
        self.discount = discount

    def prepare(
        self, batch: RolloutBatch, ids: torch.Tensor, attn: torch.Tensor, gen: torch.Tensor
    ) -> Targets:
        """KL-shaped token rewards, returns-to-go, whitened over the batch."""
        on_policy = self.on_policy(len(batch))
        need_old = not on_policy or self.beta > 0  # the KL reward needs the sampling log-probs
        old = self.no_grad_forward(ids, attn)[0] if need_old else None
        ref = self.reference_logprobs(ids, attn) if self.beta > 0 else None
        rewards = token_rewards(
            batch.rewards.to(ids.device), gen, logp=old, ref_logp=ref, beta=self.beta
        )
        returns = discounted_returns(rewards, gen, discount=self.discount)
        metrics = {"return/mean": masked_mean(returns, gen)}
        if ref is not None and old is not None:
            metrics["kl/reward_mean"] = masked_mean(old - ref, gen)
        return Targets(
            whiten(returns, gen, all_reduce=self.batch_sum()),
            old_logp=None if on_policy else old,
            metrics=metrics,
        )
