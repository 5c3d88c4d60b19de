"""Token-level policy losses: PPO clipped surrogate, k3 KL, hint imitation, and their reductions.

Token tensors are ``[B, T]`` and aligned by the caller: position ``t`` holds the log-prob of token
``t`` given the tokens before it. Two boolean masks say what each position is:

- ``gen_mask``: tokens the model generated. Only these get the policy-gradient and KL terms.
- ``hint_mask``: forced hint tokens (a response-side hint). These get only SEELE's imitation term
  ``-γ·log π(hint | x)``: the model did not choose them, so an advantage says nothing about them.

Positions in neither mask (prompt, padding) get no gradient and may hold any value, even
``-inf`` or NaN.

**Micro-batches.** An optimiser step uses a *minibatch* of sequences, which the caller may split
along the batch dimension into micro-batches to fit in memory, summing (accumulating) the
micro-batch losses. Every normaliser here (``num_sequences``, ``num_tokens``,
``num_hint_tokens``) is therefore a count over the **whole minibatch**, so the micro-batch losses
sum exactly to the loss of the minibatch in one piece. The metrics of :func:`policy_loss` are
micro-batch contributions with the same normalisers, so they also add up across micro-batches.

Loss types (``LOSS_TYPES``, named in :mod:`seele_agents.algos.registry`), each an aggregation
(``AGGREGATIONS``) plus a default upper clip:

- ``"grpo"``: per-sequence token mean, then mean over sequences; ε_high = 0.2 (Shao et al. 2024,
  "DeepSeekMath").
- ``"dr_grpo"`` (default, the paper's): token sum over a constant ``num_sequences ·
  max_new_tokens``, so long answers are not down-weighted per token; ε_high = 0.2 (Liu et al.
  2025, "Understanding R1-Zero-Like Training").
- ``"dapo"``: token mean over the minibatch; clip-higher ε_high = 0.28 (Yu et al. 2025, "DAPO").

Example:
    >>> logp = torch.log(torch.tensor([[0.5, 0.5, 0.25]]))  # [B=1, T=3]
    >>> gen_mask = torch.tensor([[False, True, True]])  # position 0 is a hint token
    >>> loss, metrics = policy_loss(
    ...     logp, logp, torch.tensor([1.0]), gen_mask, hint_mask=~gen_mask,
    ...     num_sequences=1, num_tokens=2, num_hint_tokens=1, max_new_tokens=4,
    ... )
    >>> round(float(metrics["loss/policy"]), 4)  # ratio 1: -(1 + 1) / (1 · 4)
    -0.5
    >>> round(float(metrics["loss/imitation"]), 4)  # -log 0.5 / 1
    0.6931
    >>> round(float(loss), 4)  # -0.5 + 0.001 · 0.6931
    -0.4993
"""

from __future__ import annotations

from typing import Protocol

import torch

from seele_agents.algos.registry import LOSS_TYPES, LossType, unknown

__all__ = [
    "AGGREGATIONS",
    "LOSS_TYPES",
    "AggregateFn",
    "LossType",
    "clipped_surrogate",
    "k3_kl",
    "policy_loss",
]


# -- per-token terms ------------------------------------------------------------------------------


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    *,
    epsilon_low: float,
    epsilon_high: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token PPO clipped objective, as a loss to minimise.

    ``loss = -min(ratio·A, clip(ratio, 1 - ε_low, 1 + ε_high)·A)`` with
    ``ratio = exp(logp - old_logp)`` and the sequence's advantage ``A`` on each of its tokens.

    Args:
        logp: ``[B, T]`` log-probs under the policy being trained (with gradient).
        old_logp: ``[B, T]`` log-probs under the policy that sampled the tokens.
        advantages: ``[B]`` one advantage per sequence (the sequence's advantage on each of its
            tokens), or ``[B, T]`` one per token (PPO, REINFORCE++).
        epsilon_low: Lower clip width; the ratio is floored at ``1 - epsilon_low``.
        epsilon_high: Upper clip width; the ratio is capped at ``1 + epsilon_high``.

    Returns:
        ``(loss, low_clipped, high_clipped)``, each ``[B, T]``. ``low_clipped`` marks where the
        min chose the clipped term because ``ratio < 1 - ε_low`` with ``A < 0``; ``high_clipped``
        where ``ratio > 1 + ε_high`` with ``A > 0``. There the loss has no gradient.

    Example:
        >>> loss, low, high = clipped_surrogate(
        ...     torch.log(torch.tensor([[1.5]])), torch.zeros(1, 1), torch.tensor([1.0]),
        ...     epsilon_low=0.2, epsilon_high=0.2,
        ... )
        >>> round(loss.item(), 4), high.item()  # -min(1.5, 1.2)
        (-1.2, True)
    """
    ratio = torch.exp(logp - old_logp)  # [B, T]
    adv = advantages.unsqueeze(-1) if advantages.ndim == 1 else advantages  # [B, 1] or [B, T]
    unclipped = ratio * adv  # [B, T]
    clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high) * adv  # [B, T]
    loss = -torch.minimum(unclipped, clipped)  # [B, T]
    low_clipped = (ratio < 1.0 - epsilon_low) & (adv < 0)  # [B, T]
    high_clipped = (ratio > 1.0 + epsilon_high) & (adv > 0)  # [B, T]
    return loss, low_clipped, high_clipped


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π ‖ π_ref) for tokens sampled from π.

    ``k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1`` (J. Schulman, "Approximating KL
    Divergence", 2020): unbiased, ``>= 0``, and exactly 0 where the two log-probs are equal.

    Args:
        logp: ``[B, T]`` log-probs under the policy.
        ref_logp: ``[B, T]`` log-probs under the reference (initial) policy.

    Returns:
        ``[B, T]`` per-token estimates.

    Example:
        >>> k3_kl(torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25])))  # 0.5+ln2-1
        tensor([0.1931])
    """
    log_ratio = ref_logp - logp  # [B, T]
    # expm1(d) - d rather than exp(d) - 1 - d: near d = 0 the value is ~d²/2, which the latter
    # loses to cancellation.
    return torch.expm1(log_ratio) - log_ratio  # [B, T]


# -- aggregation: [B, T] values under a mask -> scalar ---------------------------------------------


class AggregateFn(Protocol):
    """Reduces per-token values under a mask to a scalar, with whole-minibatch normalisers."""

    def __call__(
        self,
        values: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_sequences: int,
        num_tokens: int,
        max_new_tokens: int,
    ) -> torch.Tensor:
        """Scalar reduction of ``values [B, T]`` where ``mask [B, T]`` is True.

        Args:
            values: ``[B, T]`` per-token values; unmasked entries are ignored (even NaN).
            mask: ``[B, T]`` bool, the tokens that count.
            num_sequences: Sequences in the whole minibatch (``>= B``).
            num_tokens: True entries of the mask over the whole minibatch.
            max_new_tokens: The generation length limit (Dr.GRPO's constant).
        """
        ...


def _check_aggregate_args(
    values: torch.Tensor,
    mask: torch.Tensor,
    num_sequences: int,
    num_tokens: int,
    max_new_tokens: int,
) -> None:
    if values.ndim != 2 or mask.shape != values.shape:
        raise ValueError(
            f"values {tuple(values.shape)} and mask {tuple(mask.shape)} must both be [B, T]."
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask has dtype {mask.dtype}; pass a bool tensor (e.g. `mask.bool()`).")
    if not isinstance(num_sequences, int) or num_sequences < max(values.shape[0], 1):
        raise ValueError(
            f"num_sequences={num_sequences!r} is fewer than the {values.shape[0]} sequences "
            "given; pass the number of sequences in the whole minibatch."
        )
    if not isinstance(num_tokens, int) or num_tokens < 0:
        raise ValueError(
            f"num_tokens={num_tokens!r}; pass the count of masked tokens in the whole minibatch."
        )
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be an int >= 1.")


def _masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where, not values * mask: NaN or inf at an unmasked position would survive a product.
    return torch.where(mask, values, torch.zeros_like(values))  # [B, T]


def _seq_mean(
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_sequences: int,
    num_tokens: int,
    max_new_tokens: int,
) -> torch.Tensor:
    """GRPO: mean over each sequence's masked tokens, summed over sequences / num_sequences."""
    _check_aggregate_args(values, mask, num_sequences, num_tokens, max_new_tokens)
    per_seq_sum = _masked(values, mask).sum(dim=-1)  # [B]
    per_seq_count = mask.sum(dim=-1).clamp(min=1)  # [B]; an empty sequence's sum is 0 anyway
    return (per_seq_sum / per_seq_count).sum() / num_sequences


def _token_mean(
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_sequences: int,
    num_tokens: int,
    max_new_tokens: int,
) -> torch.Tensor:
    """DAPO: sum of masked values / num_tokens (0 when there are no tokens)."""
    _check_aggregate_args(values, mask, num_sequences, num_tokens, max_new_tokens)
    return _masked(values, mask).sum() / max(num_tokens, 1)


def _seq_sum_constant(
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_sequences: int,
    num_tokens: int,
    max_new_tokens: int,
) -> torch.Tensor:
    """Dr.GRPO: sum of masked values / (num_sequences · max_new_tokens)."""
    _check_aggregate_args(values, mask, num_sequences, num_tokens, max_new_tokens)
    return _masked(values, mask).sum() / (num_sequences * max_new_tokens)


AGGREGATIONS: dict[str, AggregateFn] = {
    "seq_mean": _seq_mean,
    "token_mean": _token_mean,
    "seq_sum_constant": _seq_sum_constant,
}
"""Reductions of per-token values to a scalar, by name; each is additive over micro-batches."""


# -- the loss --------------------------------------------------------------------------------------


def _check_token_tensor(name: str, tensor: torch.Tensor, shape: torch.Size, is_mask: bool) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.shape != shape:
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"{name} has shape {got}; it must match logp's shape {tuple(shape)}.")
    if is_mask and tensor.dtype != torch.bool:
        raise ValueError(f"{name} has dtype {tensor.dtype}; pass a bool tensor.")
    if not is_mask and not tensor.is_floating_point():
        raise ValueError(f"{name} has dtype {tensor.dtype}; pass floating-point log-probs.")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    gen_mask: torch.Tensor,
    *,
    hint_mask: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    loss_type: str = "dr_grpo",
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.001,
    gamma: float = 0.001,
    num_sequences: int,
    num_tokens: int,
    num_hint_tokens: int,
    max_new_tokens: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SEELE's loss for one (micro-)batch: clipped surrogate + β·KL + γ·hint imitation.

    ``total = agg(surrogate) + beta · agg(k3 KL) + gamma · imitation``, where ``agg`` is the loss
    type's aggregation over ``gen_mask`` and
    ``imitation = -(Σ logp over hint tokens) / num_hint_tokens`` (``-log π(hint | x)`` as a token
    mean over the minibatch). Hint tokens get no surrogate or KL term.

    Args:
        logp: ``[B, T]`` token log-probs under the policy being trained (with gradient).
        old_logp: ``[B, T]`` log-probs under the sampling policy (only read under ``gen_mask``).
        advantages: ``[B]`` one advantage per sequence, or ``[B, T]`` one per token (only read
            under ``gen_mask``).
        gen_mask: ``[B, T]`` bool, tokens the model generated.
        hint_mask: ``[B, T]`` bool, forced hint tokens; must not overlap ``gen_mask``.
            ``None``: no hint tokens.
        ref_logp: ``[B, T]`` log-probs under the reference (initial) model; ``None``: no KL.
        loss_type: A key of ``LOSS_TYPES``: ``"dr_grpo"`` (default), ``"grpo"`` or ``"dapo"``.
        epsilon_low: Lower clip width, in ``(0, 1)``.
        epsilon_high: Upper clip width, ``> 0``; ``None`` uses the loss type's default.
        beta: KL weight, ``>= 0``; with 0 the KL adds nothing to the loss.
        gamma: Imitation weight, ``>= 0``.
        num_sequences: Sequences in the whole minibatch.
        num_tokens: Generated tokens (True in ``gen_mask``) in the whole minibatch.
        num_hint_tokens: Hint tokens (True in ``hint_mask``) in the whole minibatch.
        max_new_tokens: The generation length limit (used by ``"dr_grpo"``).

    Returns:
        ``(loss, metrics)``: the scalar loss to backpropagate, and detached scalars that are this
        micro-batch's contributions under the minibatch normalisers (sum them over
        micro-batches to get the minibatch's values):

        - ``loss/policy``: the aggregated surrogate.
        - ``loss/kl``: the aggregated k3 KL before ``beta`` (reported whenever ``ref_logp`` is
          given, even with ``beta = 0``; 0 without ``ref_logp``).
        - ``loss/imitation``: the imitation term before ``gamma`` (0 without hint tokens).
        - ``loss/total``: the returned loss.
        - ``clip/low_fraction``, ``clip/high_fraction``: clipped generated tokens /
          ``num_tokens``.
        - ``policy/ratio_mean``: sum of ``exp(logp - old_logp)`` over generated tokens /
          ``num_tokens`` (a token mean whatever the loss type).

    Raises:
        ValueError: Unknown ``loss_type`` (with a suggestion); shapes that differ; masks that
            are not bool or that overlap; out-of-range epsilons, ``beta``, ``gamma`` or counts.
    """
    spec = LOSS_TYPES.get(loss_type)
    if spec is None:
        raise unknown("loss_type", loss_type, sorted(LOSS_TYPES))
    eps_high = spec.default_epsilon_high if epsilon_high is None else epsilon_high
    if not 0 < epsilon_low < 1:
        raise ValueError(f"epsilon_low={epsilon_low!r} must be in (0, 1) (the floor is 1 - it).")
    if not eps_high > 0:
        raise ValueError(f"epsilon_high={eps_high!r} must be > 0 (or None for the default).")
    if not beta >= 0:
        raise ValueError(f"beta={beta!r} must be >= 0 (0 turns the KL term off).")
    if not gamma >= 0:
        raise ValueError(f"gamma={gamma!r} must be >= 0 (0 turns hint imitation off).")
    if not isinstance(num_hint_tokens, int) or num_hint_tokens < 0:
        raise ValueError(
            f"num_hint_tokens={num_hint_tokens!r}; pass the count of hint tokens in the whole "
            "minibatch (0 if none)."
        )
    if not isinstance(logp, torch.Tensor) or logp.ndim != 2 or not logp.is_floating_point():
        got = tuple(logp.shape) if isinstance(logp, torch.Tensor) else type(logp).__name__
        raise ValueError(f"logp has shape {got}; pass [B, T] floating-point log-probs.")
    shape = logp.shape
    _check_token_tensor("old_logp", old_logp, shape, is_mask=False)
    _check_token_tensor("gen_mask", gen_mask, shape, is_mask=True)
    if hint_mask is not None:
        _check_token_tensor("hint_mask", hint_mask, shape, is_mask=True)
        if (hint_mask & gen_mask).any():
            raise ValueError(
                "hint_mask and gen_mask overlap; a token is either forced (hint) or generated."
            )
    if ref_logp is not None:
        _check_token_tensor("ref_logp", ref_logp, shape, is_mask=False)
    if not isinstance(advantages, torch.Tensor) or advantages.shape not in (shape[:1], shape):
        got = tuple(advantages.shape) if isinstance(advantages, torch.Tensor) else advantages
        raise ValueError(
            f"advantages has shape {got}; pass one per sequence, ({shape[0]},), or one per "
            f"token, {tuple(shape)}."
        )
    if advantages.ndim == 2:  # per token: values outside gen_mask must not reach any gradient
        advantages = torch.where(gen_mask, advantages, torch.zeros_like(advantages))

    aggregate = AGGREGATIONS[spec.aggregation]
    counts = {
        "num_sequences": num_sequences,
        "num_tokens": num_tokens,
        "max_new_tokens": max_new_tokens,
    }
    # Outside gen_mask the log-probs are replaced by 0 before any exp: a -inf or NaN at a hint or
    # padding position would otherwise turn into NaN gradients there (0 · inf) through `where`.
    zeros = torch.zeros_like(logp)  # [B, T]
    gen_logp = torch.where(gen_mask, logp, zeros)  # [B, T]
    gen_old = torch.where(gen_mask, old_logp.detach(), zeros)  # [B, T]
    surrogate, low, high = clipped_surrogate(
        gen_logp, gen_old, advantages.detach(), epsilon_low=epsilon_low, epsilon_high=eps_high
    )  # [B, T] x3
    policy = aggregate(surrogate, gen_mask, **counts)
    total = policy

    kl = policy.new_zeros(())
    if ref_logp is not None:
        gen_ref = torch.where(gen_mask, ref_logp.detach(), zeros)  # [B, T]
        kl = aggregate(k3_kl(gen_logp, gen_ref), gen_mask, **counts)
        if beta > 0:
            total = total + beta * kl

    imitation = policy.new_zeros(())
    if hint_mask is not None:
        hint_logp = torch.where(hint_mask, logp, zeros)  # [B, T]
        imitation = -hint_logp.sum() / max(num_hint_tokens, 1)
        if gamma > 0:
            total = total + gamma * imitation

    # Counts become at least float32 so fractions of bf16 runs are not rounded to 3 digits.
    stat_dtype = torch.promote_types(logp.dtype, torch.float32)
    denom = max(num_tokens, 1)
    ratio = torch.exp(gen_logp.detach() - gen_old).to(stat_dtype)  # [B, T]
    metrics = {
        "loss/policy": policy.detach(),
        "loss/kl": kl.detach(),
        "loss/imitation": imitation.detach(),
        "loss/total": total.detach(),
        "clip/low_fraction": (low & gen_mask).sum().to(stat_dtype) / denom,
        "clip/high_fraction": (high & gen_mask).sum().to(stat_dtype) / denom,
        "policy/ratio_mean": ratio.masked_fill(~gen_mask, 0).sum() / denom,
    }
    return total, metrics
