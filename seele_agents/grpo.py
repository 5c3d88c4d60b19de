"""The GRPO learner: advantages from group rewards, a clipped surrogate on generated tokens.

One call of :meth:`GRPOLearner.step` consumes a :class:`~seele_agents.rollout.RolloutBatch`:

1. advantages per sequence (:mod:`seele_agents.advantages`; Dr.GRPO pooled over a problem's
   rounds by default);
2. the "old" log-probs (the policy that sampled the batch) and the reference model's log-probs,
   without gradients;
3. ``epochs`` passes over the batch in minibatches of ``minibatch_size`` sequences, one
   optimiser update each (gradients accumulated over micro-batches of ``micro_batch_size``
   sequences, clipped to ``max_grad_norm``);
4. one scheduler step.

The loss (:func:`seele_agents.losses.policy_loss`) puts the policy gradient and the KL penalty
on generated tokens only; hint tokens get only the imitation term ``-gamma * log pi(hint|x)``.

Example:
    >>> import torch
    >>> from seele_agents.tiny import build_tiny
    >>> model, tokenizer = build_tiny(seed=0)
    >>> learner = GRPOLearner(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    >>> learner.beta, learner.loss_type
    (0.001, 'dr_grpo')
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from seele_agents.advantages import compute_advantages, group_stats
from seele_agents.losses import policy_loss
from seele_agents.rollout import RolloutBatch


def token_logprobs(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``log pi(token_t | tokens_<t)`` for t = 1..T-1, under the sampling temperature.

    Returns:
        ``[B, T-1]`` float32; column ``t-1`` is the log-prob of ``input_ids[:, t]``.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # [B, T, V]
    logits = logits[:, :-1].float()
    if temperature not in (0, 1):
        logits = logits / temperature
    targets = input_ids[:, 1:, None]  # [B, T-1, 1]
    return logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(-1)  # [B, T-1]


class GRPOLearner:
    """GRPO and its variants (Dr.GRPO, DAPO's token-mean with clip-higher) for a causal LM.

    Args:
        model: The policy (a transformers causal LM, or a peft model).
        optimizer: Its optimiser.
        scheduler: Optional LR scheduler, stepped once per :meth:`step`.
        ref_model: The frozen reference for the KL term. Default: a frozen copy of ``model`` as
            it is now (for a peft model: the same model with its adapters disabled). Unused
            when ``beta == 0``.
        advantage: ``"dr_grpo"`` (paper default) or ``"grpo"``.
        baseline: ``"pooled"`` (one baseline per problem over all rounds) or ``"round"``.
        loss_type: ``"dr_grpo"``, ``"grpo"`` or ``"dapo"``
            (:data:`~seele_agents.losses.LOSS_TYPES`).
        epsilon_low: Lower clip range of the ratio.
        epsilon_high: Upper clip range (``None``: the loss type's default).
        beta: Weight of the k3 KL to the reference model.
        gamma: Weight of the hint imitation term.
        epochs: Passes over each rollout batch.
        minibatch_size: Sequences per optimiser update (0: the whole batch).
        micro_batch_size: Sequences per forward/backward pass.
        max_grad_norm: Gradient clipping norm (0: no clipping).
        max_new_tokens: The generation limit (Dr.GRPO's constant normaliser).
        temperature: The sampling temperature (log-probs are taken under it).
    """

    def __init__(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        ref_model: Any = None,
        advantage: str = "dr_grpo",
        baseline: str = "pooled",
        loss_type: str = "dr_grpo",
        epsilon_low: float = 0.2,
        epsilon_high: float | None = None,
        beta: float = 0.001,
        gamma: float = 0.001,
        epochs: int = 1,
        minibatch_size: int = 0,
        micro_batch_size: int = 32,
        max_grad_norm: float = 1.0,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
    ) -> None:
        for name, value in (("epochs", epochs), ("micro_batch_size", micro_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an int >= 1.")
        if not isinstance(minibatch_size, int) or minibatch_size < 0:
            raise ValueError(f"minibatch_size={minibatch_size!r} must be an int >= 0.")
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.advantage, self.baseline, self.loss_type = advantage, baseline, loss_type
        self.epsilon_low, self.epsilon_high = epsilon_low, epsilon_high
        self.beta, self.gamma = beta, gamma
        self.epochs, self.minibatch_size = epochs, minibatch_size
        self.micro_batch_size = micro_batch_size
        self.max_grad_norm = max_grad_norm
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature if temperature > 0 else 1.0
        self.ref_model = ref_model
        if beta > 0 and ref_model is None and not _is_peft(model):
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)

    # -- the update --------------------------------------------------------------------------

    def step(self, batch: RolloutBatch) -> dict[str, float]:
        """Update the policy on one rollout batch; returns ``loss/*``, ``clip/*``, ... metrics."""
        device = next(self.model.parameters()).device
        rows = len(batch)
        advantages = compute_advantages(
            batch.rewards, batch.group_index, batch.round_index,
            estimator=self.advantage, baseline=self.baseline,
        ).to(device)  # fmt: skip
        ids = batch.input_ids.to(device)  # [B, T]
        attn = batch.attention_mask.to(device)
        gen = batch.gen_mask[:, 1:].to(device)  # [B, T-1], aligned with token_logprobs
        hint = batch.hint_mask[:, 1:].to(device)
        size = self.minibatch_size or rows
        # One update over exactly the sampled batch: the old policy is the current one, so the
        # ratio is exp(logp - logp.detach()) and no extra forward pass is needed.
        on_policy = self.epochs == 1 and size >= rows
        start = time.perf_counter()
        old = None if on_policy else self._no_grad_logprobs(self.model, ids, attn)
        ref = self._reference_logprobs(ids, attn) if self.beta > 0 else None
        seconds_reference = time.perf_counter() - start

        self.model.train()
        totals: dict[str, float] = {}
        grad_norms = []
        start = time.perf_counter()
        for _ in range(self.epochs):
            order = torch.randperm(rows) if size < rows else torch.arange(rows)
            for mb in order.split(size):
                counts = {
                    "num_sequences": len(mb),
                    "num_tokens": int(gen[mb].sum()),
                    "num_hint_tokens": int(hint[mb].sum()),
                    "max_new_tokens": self.max_new_tokens,
                }
                self.optimizer.zero_grad(set_to_none=True)
                for micro in mb.split(self.micro_batch_size):
                    width = int(attn[micro].sum(-1).max())  # trim right padding
                    logp = token_logprobs(
                        self.model, ids[micro, :width], attn[micro, :width], self.temperature
                    )
                    old_logp = logp.detach() if old is None else old[micro, : width - 1]
                    loss, metrics = policy_loss(
                        logp, old_logp, advantages[micro], gen[micro, : width - 1],
                        hint_mask=hint[micro, : width - 1],
                        ref_logp=None if ref is None else ref[micro, : width - 1],
                        loss_type=self.loss_type, epsilon_low=self.epsilon_low,
                        epsilon_high=self.epsilon_high, beta=self.beta, gamma=self.gamma,
                        **counts,
                    )  # fmt: skip
                    loss.backward()
                    for key, value in metrics.items():
                        totals[key] = totals.get(key, 0.0) + float(value)
                grad_norms.append(self._clip_and_step())
        if self.scheduler is not None:
            self.scheduler.step()
        updates = len(grad_norms)
        out = {key: value / updates for key, value in totals.items()}
        out.update(group_stats(batch.rewards, batch.group_index))
        out["grad/norm"] = sum(grad_norms) / updates
        out["optim/lr"] = float(self.optimizer.param_groups[0]["lr"])
        out["optim/updates"] = float(updates)
        out["advantage/abs_mean"] = float(advantages.abs().mean())
        out["time/reference_s"] = seconds_reference
        out["time/train_s"] = time.perf_counter() - start
        return out

    def _clip_and_step(self) -> float:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        else:
            grads = [p.grad.norm() for p in params if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())
        self.optimizer.step()
        return float(norm)

    @torch.no_grad()
    def _no_grad_logprobs(self, model: Any, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        was_training = model.training
        model.eval()
        parts = []
        for micro in torch.arange(len(ids)).split(self.micro_batch_size):
            parts.append(token_logprobs(model, ids[micro], attn[micro], self.temperature))
        model.train(was_training)
        return torch.cat(parts)  # [B, T-1]

    def _reference_logprobs(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        if self.ref_model is not None:
            return self._no_grad_logprobs(self.ref_model, ids, attn)
        with _adapters_disabled(self.model):
            return self._no_grad_logprobs(self.model, ids, attn)


def _is_peft(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextmanager
def _adapters_disabled(model: Any) -> Iterator[None]:
    """The base model of a peft policy is its reference: run it with the adapters off."""
    with model.disable_adapter() if _is_peft(model) else nullcontext():
        yield
