"""The GRPO learner: advantages from group rewards, a clipped surrogate on generated tokens.

One call of :meth:`GRPOLearner.step` consumes a
:class:`~seele_agents.training.rollout.RolloutBatch`: advantages per sequence
(:mod:`seele_agents.algos.advantages`; Dr.GRPO pooled over a problem's rounds by default), the
sampling policy's log-probs when the update is off-policy, the reference model's log-probs for the
k3 KL in the loss, then the update loop shared by every learner
(:class:`~seele_agents.algos.learner.PolicyLearner`).

The loss (:func:`seele_agents.algos.losses.policy_loss`) puts the policy gradient and the KL penalty
on generated tokens only; hint tokens get only the imitation term ``-gamma * log pi(hint|x)``.

Example:
    >>> import torch
    >>> from seele_agents.models.tiny import build_tiny
    >>> model, tokenizer = build_tiny(seed=0)
    >>> learner = GRPOLearner(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    >>> learner.beta, learner.loss_type
    (0.001, 'dr_grpo')
"""

from __future__ import annotations

from typing import Any

import torch

from seele_agents.algos.advantages import compute_advantages
from seele_agents.algos.learner import PolicyLearner, Targets, token_logprobs
from seele_agents.training.rollout import RolloutBatch

__all__ = ["GRPOLearner", "token_logprobs"]


class GRPOLearner(PolicyLearner):
    """GRPO and its variants (Dr.GRPO, DAPO's token-mean with clip-higher) for a causal LM.

    Args:
        model: The policy (a transformers causal LM, or a peft model).
        optimizer: Its optimiser.
        scheduler: Optional LR scheduler, stepped once per :meth:`step`.
        advantage: ``"dr_grpo"`` (paper default) or ``"grpo"``.
        baseline: ``"pooled"`` (one baseline per problem over all rounds) or ``"round"``.
        **kwargs: The shared options of :class:`~seele_agents.algos.learner.PolicyLearner`
            (``loss_type``, ``epsilon_low``, ``epsilon_high``, ``beta`` (k3 KL in the loss),
            ``gamma``, ``epochs``, ``minibatch_size``, ``micro_batch_size``, ``max_grad_norm``,
            ``max_new_tokens``, ``temperature``, ``ref_model``).
    """

    name = "grpo"

    def __init__(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        advantage: str = "dr_grpo",
        baseline: str = "pooled",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, optimizer, scheduler, **kwargs)
        self.advantage, self.baseline = advantage, baseline

    def prepare(
        self, batch: RolloutBatch, ids: torch.Tensor, attn: torch.Tensor, gen: torch.Tensor
    ) -> Targets:
        """Group advantages; old log-probs only off-policy; reference log-probs when beta > 0."""
        advantages = compute_advantages(
            batch.rewards, batch.group_index, batch.round_index,
            estimator=self.advantage, baseline=self.baseline,
        ).to(ids.device)  # fmt: skip
        # On-policy the old policy is the current one: the loop uses exp(logp - logp.detach()).
        old = None if self.on_policy(len(batch)) else self.no_grad_forward(ids, attn)[0]
        ref = self.reference_logprobs(ids, attn) if self.beta > 0 else None
        return Targets(advantages, old_logp=old, ref_logp=ref)
