"""Token-level rewards, returns and advantages for learners without groups (PPO, REINFORCE++).

Pure functions on ``[B, T]`` tensors. ``mask`` marks the tokens the model generated; every other
position (prompt, forced hint tokens, padding) is *skipped*: it gets zeros in every output and
does not break the recursion, so a masked sequence behaves exactly as if its generated tokens
were packed together. The verified reward (the *score*) is paid at each sequence's last
generated token; a KL penalty to the reference model may be paid on every generated token.

- :func:`token_rewards`: ``r_t = -beta * (log pi_old - log pi_ref)_t`` plus the score at the
  last generated token (the usual RLHF reward shaping, Ouyang et al. 2022).
- :func:`gae`: generalised advantage estimation (Schulman et al. 2016, arXiv 1506.02438).
- :func:`discounted_returns`: ``G_t = sum_{s >= t} discount^(s-t) r_s`` (GAE with lambda = 1
  and no values), REINFORCE++'s return (Hu 2025, arXiv 2501.03262).
- :func:`whiten`: normalise over the masked tokens of the whole batch.
- :func:`value_loss`: PPO's clipped value loss per token.

Example:
    >>> mask = torch.tensor([[False, True, True, True]])  # a prompt token, then 3 generated
    >>> rewards = token_rewards(torch.tensor([1.0]), mask)
    >>> rewards.tolist()
    [[0.0, 0.0, 0.0, 1.0]]
    >>> values = torch.full((1, 4), 0.5)
    >>> advantages, returns = gae(rewards, values, mask, discount=1.0, lam=0.5)
    >>> advantages.tolist()  # deltas (0, 0, 0.5), accumulated backwards with factor 0.5
    [[0.0, 0.125, 0.25, 0.5]]
    >>> returns.tolist()
    [[0.0, 0.625, 0.75, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "discounted_returns",
    "gae",
    "last_token_index",
    "masked_mean",
    "token_rewards",
    "value_loss",
    "whiten",
]


def _check(name: str, tensor: torch.Tensor, mask: torch.Tensor) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.shape != mask.shape:
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"{name} has shape {got}; it must match the mask's {tuple(mask.shape)}.")


def _check_mask(mask: torch.Tensor) -> None:
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.dtype != torch.bool:
        got = (tuple(mask.shape), mask.dtype) if isinstance(mask, torch.Tensor) else mask
        raise ValueError(f"mask is {got}; pass a [B, T] bool tensor of generated tokens.")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Column of each row's last True entry; ``-1`` for a row with none. ``[B]`` long."""
    _check_mask(mask)
    columns = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # [B, T]
    return torch.where(mask, columns, -1).max(dim=-1).values  # [B]


def token_rewards(
    scores: torch.Tensor,
    mask: torch.Tensor,
    *,
    logp: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """Per-token rewards: a KL penalty on generated tokens plus the score at the last one.

    Args:
        scores: ``[B]`` the verified reward of each sequence.
        mask: ``[B, T]`` bool, generated tokens.
        logp: ``[B, T]`` log-probs under the policy that sampled the tokens (for the KL).
        ref_logp: ``[B, T]`` log-probs under the reference model; ``None`` or ``beta = 0``:
            no KL penalty.
        beta: Weight of the per-token KL estimate ``logp - ref_logp`` (k1).

    Returns:
        ``[B, T]`` rewards, 0 outside ``mask``. A row with no generated token gets no score.
    """
    _check_mask(mask)
    if not isinstance(scores, torch.Tensor) or scores.shape != mask.shape[:1]:
        raise ValueError(f"scores must have shape ({mask.shape[0]},), one per sequence.")
    if not beta >= 0:
        raise ValueError(f"beta={beta!r} must be >= 0 (0 turns the KL penalty off).")
    rewards = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)  # [B, T]
    if beta > 0 and ref_logp is not None:
        if logp is None:
            raise ValueError("token_rewards got ref_logp but no logp; pass both for the KL.")
        _check("logp", logp, mask)
        _check("ref_logp", ref_logp, mask)
        kl = torch.where(mask, logp.float() - ref_logp.float(), 0.0)  # [B, T]
        rewards = rewards - beta * kl
    last = last_token_index(mask)  # [B]
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards[rows, last[rows]] += scores[rows].float()
    return rewards


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    discount: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets over each row's generated tokens.

    ``delta_t = r_t + discount * V_next - V_t`` and ``A_t = delta_t + discount * lam * A_next``,
    where "next" is the row's next generated token (none after the last: ``V = A = 0`` there).

    Args:
        rewards: ``[B, T]`` per-token rewards (:func:`token_rewards`).
        values: ``[B, T]`` the critic's value of the state before each token.
        mask: ``[B, T]`` bool, generated tokens.
        discount: The discount factor, in ``[0, 1]``.
        lam: GAE's lambda, in ``[0, 1]`` (0: one-step TD, 1: Monte Carlo minus V).

    Returns:
        ``(advantages, returns)``, each ``[B, T]`` float32 and 0 outside ``mask``;
        ``returns = advantages + values``, the value targets.
    """
    _check_mask(mask)
    _check("rewards", rewards, mask)
    _check("values", values, mask)
    for name, value in (("discount", discount), ("lam", lam)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name}={value!r} must be in [0, 1].")
    rewards, values = rewards.float(), values.float()
    advantages = torch.zeros_like(rewards)  # [B, T]
    next_value = torch.zeros_like(rewards[:, 0])  # [B]
    next_advantage = torch.zeros_like(rewards[:, 0])  # [B]
    for t in range(rewards.shape[1] - 1, -1, -1):
        here = mask[:, t]  # [B]
        delta = rewards[:, t] + discount * next_value - values[:, t]
        advantage = delta + discount * lam * next_advantage
        advantages[:, t] = torch.where(here, advantage, 0.0)
        # Skipped positions carry the "next" token's values through unchanged.
        next_value = torch.where(here, values[:, t], next_value)
        next_advantage = torch.where(here, advantage, next_advantage)
    returns = torch.where(mask, advantages + values, 0.0)
    return advantages, returns


def discounted_returns(
    rewards: torch.Tensor, mask: torch.Tensor, *, discount: float = 1.0
) -> torch.Tensor:
    """``G_t = r_t + discount * G_next`` over each row's generated tokens; 0 elsewhere."""
    _, returns = gae(rewards, torch.zeros_like(rewards), mask, discount=discount, lam=1.0)
    return returns


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``values`` where ``mask`` is True, as a float; 0 when nothing is masked."""
    return float(values[mask].float().mean()) if bool(mask.any()) else 0.0


def whiten(
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    shift_mean: bool = True,
    eps: float = 1e-8,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the masked entries of the whole batch; 0 elsewhere.

    The std is the unbiased one over all masked entries. With ``shift_mean=False`` the mean is
    added back (scale only). Fewer than two masked entries: returned unscaled (and centred if
    ``shift_mean``), since no spread can be estimated. ``all_reduce`` (a function summing a
    tensor over processes, in place) makes "the whole batch" the union of every process's
    batch: the count, the sum and the squared deviations are summed before use.
    """
    _check_mask(mask)
    _check("values", values, mask)
    selected = values.float()[mask]  # [N]
    if all_reduce is None:
        count = selected.numel()
        mean = selected.mean() if count else selected.new_zeros(())
        std = selected.std() if count > 1 else None
    else:
        moments = all_reduce(torch.stack([selected.new_tensor(float(selected.numel())),
                                          selected.sum()]).double())  # fmt: skip
        count, mean = int(moments[0]), (moments[1] / max(float(moments[0]), 1.0)).float()
        squares = all_reduce((selected - mean).square().sum().double().reshape(1))
        std = (squares[0] / (count - 1)).sqrt().float() if count > 1 else None
    if count == 0:
        return torch.zeros_like(values, dtype=torch.float32)
    scale = std + eps if std is not None else 1.0
    out = (values.float() - mean) / scale
    if not shift_mean:
        out = out + mean
    return torch.where(mask, out, 0.0)


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    *,
    clip: float | None = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss per token: ``0.5 * max((V - R)^2, (V_clip - R)^2)``.

    ``V_clip = V_old + clamp(V - V_old, -clip, clip)`` keeps the critic near the values it had
    when the batch was collected (as for the policy's ratio). ``clip=None``: plain squared error.

    Returns:
        ``(loss, clipped)``, each shaped like ``values``; ``clipped`` marks where the clipped
        term was the larger one (there the loss has no gradient). Aggregate under a mask.

    Example:
        >>> loss, clipped = value_loss(torch.tensor([1.0]), torch.tensor([0.0]),
        ...                            torch.tensor([2.0]), clip=0.2)
        >>> round(loss.item(), 4), clipped.item()  # max(1, 1.8^2) / 2
        (1.62, True)
    """
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped, torch.zeros_like(values, dtype=torch.bool)
    if not clip > 0:
        raise ValueError(f"clip={clip!r} must be > 0 (or None for no value clipping).")
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    clipped = (clipped_values - returns) ** 2
    return 0.5 * torch.maximum(unclipped, clipped), clipped > unclipped
