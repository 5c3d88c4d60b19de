"""PPO with a value head: token-level GAE, value clipping, whitened advantages, KL in the reward.

A step (:meth:`PPOLearner.step`, the loop of :class:`~seele_agents.algos.learner.PolicyLearner`):

1. one pass without gradients gives the sampling policy's token log-probs and the critic's
   values ``V(s_t)`` (a linear :class:`ValueHead` on the policy's last hidden state, so actor
   and critic share the backbone);
2. token rewards (:func:`~seele_agents.algos.returns.token_rewards`): ``-beta * (log pi_old -
   log pi_ref)`` on every generated token and the verified reward at the last one;
3. GAE advantages and value targets over generated tokens only
   (:func:`~seele_agents.algos.returns.gae`), advantages whitened over the batch;
4. the clipped surrogate on generated tokens plus ``value_coef`` times the clipped value loss
   (:func:`~seele_agents.algos.returns.value_loss`), token-averaged.

Hint tokens are handled as in GRPO: no policy gradient, no reward, no value target, only the
optional imitation term ``-gamma * log pi(hint | x)``. PPO needs no groups: one rollout per
problem is enough, so it works with any curriculum (SEELE's controller pools a problem's
outcomes over the episodes of a visit, whatever the learner).

Example:
    >>> import torch
    >>> from seele_agents.models.tiny import build_tiny
    >>> model, _ = build_tiny(seed=0)
    >>> learner = PPOLearner(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    >>> learner.value_head.linear.in_features, len(learner.optimizer.param_groups)
    (64, 2)
"""

from __future__ import annotations

from typing import Any

import torch

from seele_agents.algos.learner import PolicyLearner, Targets, logprobs_from_logits
from seele_agents.algos.losses import AGGREGATIONS
from seele_agents.algos.returns import gae, masked_mean, token_rewards, value_loss, whiten
from seele_agents.training.rollout import RolloutBatch

__all__ = ["PPOLearner", "ValueHead"]


class ValueHead(torch.nn.Module):
    """``V(s) = w . h + b`` on the last hidden state; zero-initialised (all values start at 0,
    so the first advantages are plain discounted rewards)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, T, H]`` hidden states -> ``[B, T]`` float32 values."""
        return self.linear(hidden.float()).squeeze(-1)

    @classmethod
    def for_model(cls, model: Any) -> ValueHead:
        """A head sized for ``model``'s hidden states, on its device."""
        embeddings = model.get_input_embeddings()
        return cls(embeddings.embedding_dim).to(embeddings.weight.device)


class PPOLearner(PolicyLearner):
    """PPO (Schulman et al. 2017) for a causal LM with a value head on the shared backbone.

    Args:
        model: The policy (a transformers causal LM, or a peft model).
        optimizer: The policy's optimiser. If ``value_head`` is ``None`` a fresh head is made and
            added to it as a new parameter group (so build any LR scheduler after the learner);
            a given ``value_head`` must already be in the optimiser.
        scheduler: Optional LR scheduler, stepped once per :meth:`step`.
        value_head: The critic (:class:`ValueHead`); ``None``: a new zero-initialised one.
        value_coef: Weight of the value loss.
        value_clip: Clip range of the value around the batch's old values (``None``: none).
        discount: Discount factor over generated tokens (1: undiscounted, as usual for LLMs).
        gae_lambda: GAE's lambda. The default 1 makes ``A_t = G_t - V(s_t)``: the critic is only
            a baseline. With a sparse reward at the last token and a critic that starts knowing
            nothing, bootstrapping (lambda < 1) passes the critic's noise into every advantage;
            on the easy arithmetic task of tests/test_ppo.py, lambda = 0.95 did not raise the
            reward in 8 steps where lambda = 1 did (verl's default is 1 too).
        whiten_advantages: Normalise advantages over the batch's generated tokens.
        **kwargs: The shared options of :class:`~seele_agents.algos.learner.PolicyLearner`;
            ``beta`` is the weight of the per-token KL penalty in the reward.
    """

    name = "ppo"
    kl_in_reward = True

    def __init__(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        value_head: ValueHead | None = None,
        value_coef: float = 0.1,
        value_clip: float | None = 0.2,
        discount: float = 1.0,
        gae_lambda: float = 1.0,
        whiten_advantages: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, optimizer, scheduler, **kwargs)
        if not value_coef >= 0:
            raise ValueError(f"value_coef={value_coef!r} must be >= 0.")
        if value_clip is not None and not value_clip > 0:
            raise ValueError(f"value_clip={value_clip!r} must be > 0, or None for no clipping.")
        for name, value in (("discount", discount), ("gae_lambda", gae_lambda)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name}={value!r} must be in [0, 1].")
        if value_head is None:
            value_head = ValueHead.for_model(model)
            optimizer.add_param_group({"params": list(value_head.parameters())})
        else:
            known = {id(p) for group in optimizer.param_groups for p in group["params"]}
            if any(id(p) not in known for p in value_head.parameters()):
                raise ValueError(
                    "value_head's parameters are not in the optimizer; add them as a parameter "
                    "group, or pass value_head=None to let the learner do it."
                )
        self.value_head = value_head
        self.value_coef, self.value_clip = value_coef, value_clip
        self.discount, self.gae_lambda = discount, gae_lambda
        self.whiten_advantages = whiten_advantages

    def forward(self, ids: torch.Tensor, attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token log-probs and the value of the state before each token, both ``[B, T-1]``."""
        out = self.model(input_ids=ids, attention_mask=attn, output_hidden_states=True)
        logp = logprobs_from_logits(out.logits, ids, self.temperature)
        values = self.value_head(out.hidden_states[-1][:, :-1])  # state before token t+1
        return logp, values

    def prepare(
        self, batch: RolloutBatch, ids: torch.Tensor, attn: torch.Tensor, gen: torch.Tensor
    ) -> Targets:
        """Old log-probs and values, KL-shaped token rewards, GAE, whitening."""
        old, values = self.no_grad_forward(ids, attn)
        assert values is not None
        ref = self.reference_logprobs(ids, attn) if self.beta > 0 else None
        rewards = token_rewards(
            batch.rewards.to(ids.device), gen, logp=old, ref_logp=ref, beta=self.beta
        )
        advantages, returns = gae(rewards, values, gen, discount=self.discount, lam=self.gae_lambda)
        if self.whiten_advantages:
            advantages = whiten(advantages, gen, all_reduce=self.batch_sum())
        metrics = {
            "value/mean": masked_mean(values, gen),
            "value/return_mean": masked_mean(returns, gen),
            "value/explained_variance": explained_variance(values, returns, gen),
        }
        if ref is not None:
            metrics["kl/reward_mean"] = masked_mean(old - ref, gen)
        return Targets(
            advantages, old_logp=old, extra={"returns": returns, "old_values": values},
            metrics=metrics,
        )  # fmt: skip

    def extra_loss(
        self,
        output: torch.Tensor | None,
        extra: dict[str, torch.Tensor],
        gen: torch.Tensor,
        counts: dict[str, int],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``value_coef`` times the clipped value loss, averaged over generated tokens."""
        assert output is not None
        per_token, clipped = value_loss(
            output, extra["old_values"], extra["returns"], clip=self.value_clip
        )
        loss = AGGREGATIONS["token_mean"](per_token, gen, **counts)
        fraction = (clipped & gen).sum().float() / max(counts["num_tokens"], 1)
        metrics = {"loss/value": loss.detach(), "value/clip_fraction": fraction}
        return self.value_coef * loss, metrics

    def state_dict(self) -> dict[str, Any]:
        """The value head's weights."""
        return {"value_head": self.value_head.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the value head from :meth:`state_dict`."""
        if "value_head" not in state:
            raise ValueError(
                "this checkpoint has no value head (was it saved by another algorithm?); "
                "resume it with the algo it was trained with."
            )
        self.value_head.load_state_dict(state["value_head"])


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over masked tokens (1: perfect critic, <= 0: no better than
    a constant); ``nan`` when the returns do not vary."""
    v, r = values[mask].float(), returns[mask].float()
    if r.numel() < 2 or float(r.var()) == 0:
        return float("nan")
    return float(1 - (r - v).var() / r.var())
