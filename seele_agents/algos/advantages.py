"""Per-sequence advantages from verifiable rewards, with group baselines.

A rollout batch holds ``B`` sequences. ``group_index[i]`` says which problem sequence ``i``
answers and ``round_index[i]`` which of SEELE's ``m`` sampling rounds (0-based) produced it. Each
sequence's advantage compares its reward with the other sequences of its *group*:

- ``baseline="pooled"`` (default, the paper's): the group is every output of the problem in this
  training step, all ``m·n`` of them, pooled across rounds (and so across hint rates).
- ``baseline="round"``: the group is (problem, round), so each round of ``n`` outputs, sampled at
  one hint rate, has its own baseline.

Estimators (``ADVANTAGES``):

- ``"dr_grpo"`` (default, the paper's): ``A_i = r_i - mean_group(r)``, no std normalisation
  (Dr.GRPO; Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective").
- ``"grpo"``: ``A_i = (r_i - mean_group(r)) / (std_group(r) + eps)`` (GRPO; Shao et al. 2024,
  "DeepSeekMath"). ``std_group`` is the *population* standard deviation (divide by the group size
  ``n``, not ``n - 1``): it is defined for groups of one sequence, and for 0/1 rewards it is
  ``sqrt(a (1 - a))`` with ``a`` the group's accuracy, the quantity SEELE reasons about.

A group whose rewards are all equal carries no learning signal: every estimator gives it exactly
0 (never NaN), whatever ``eps`` is.

Example:
    >>> rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    >>> problem = torch.tensor([0, 0, 0, 0, 1, 1])
    >>> compute_advantages(rewards, problem)  # problem 0: mean 0.5; problem 1: all correct
    tensor([ 0.5000, -0.5000, -0.5000,  0.5000,  0.0000,  0.0000])
    >>> compute_advantages(rewards, problem, estimator="grpo", eps=0.0)  # std of problem 0: 0.5
    tensor([ 1., -1., -1.,  1.,  0.,  0.])
    >>> group_stats(rewards, problem)
    {'reward/group_std_mean': 0.25, 'reward/zero_std_fraction': 0.5}
"""

from __future__ import annotations

import difflib
from typing import Protocol

import torch

__all__ = [
    "ADVANTAGES",
    "BASELINES",
    "AdvantageFn",
    "compute_advantages",
    "group_stats",
]

BASELINES = ("pooled", "round")


class AdvantageFn(Protocol):
    """An advantage estimator: per-sequence advantages from rewards and dense group ids."""

    def __call__(
        self, rewards: torch.Tensor, group_ids: torch.Tensor, num_groups: int, *, eps: float
    ) -> torch.Tensor:
        """Advantages ``[B]`` for ``rewards [B]`` (float64) in groups ``group_ids [B]``.

        Args:
            rewards: Rewards, float64, one per sequence.
            group_ids: Dense group ids in ``[0, num_groups)``, one per sequence.
            num_groups: Number of groups.
            eps: Added to any denominator so it cannot be 0.
        """
        ...


def _group_moments(
    rewards: torch.Tensor, group_ids: torch.Tensor, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sequence's deviation from its group mean, and its group's population std (both [B])."""
    zeros = rewards.new_zeros(num_groups)  # [G]
    counts = zeros.index_add(0, group_ids, torch.ones_like(rewards))  # [G]
    means = zeros.index_add(0, group_ids, rewards) / counts  # [G]
    centred = rewards - means[group_ids]  # [B]
    # Two passes (mean, then squared deviations) rather than E[r²] − E[r]², which cancels badly.
    variances = zeros.index_add(0, group_ids, centred.square()) / counts  # [G]
    return centred, variances.sqrt()[group_ids]  # [B], [B]


def _constant_groups(
    rewards: torch.Tensor, group_ids: torch.Tensor, num_groups: int
) -> torch.Tensor:
    """``[G]`` bool: the group's rewards are all exactly equal."""
    # Exact equality, not std < tol: only a truly constant group has nothing to teach, and
    # rounding in its mean must not leak tiny advantages (amplified by 1/eps in GRPO).
    high = rewards.new_full((num_groups,), -torch.inf).scatter_reduce(0, group_ids, rewards, "amax")
    low = rewards.new_full((num_groups,), torch.inf).scatter_reduce(0, group_ids, rewards, "amin")
    return high == low  # [G]


def _grpo(
    rewards: torch.Tensor, group_ids: torch.Tensor, num_groups: int, *, eps: float
) -> torch.Tensor:
    """GRPO (Shao et al. 2024): deviation from the group mean over the group's population std."""
    centred, std = _group_moments(rewards, group_ids, num_groups)  # [B], [B]
    return centred / (std + eps)  # [B]


def _dr_grpo(
    rewards: torch.Tensor, group_ids: torch.Tensor, num_groups: int, *, eps: float
) -> torch.Tensor:
    """Dr.GRPO (Liu et al. 2025): deviation from the group mean; dividing by the std would
    up-weight problems that are nearly always solved or nearly always failed."""
    centred, _ = _group_moments(rewards, group_ids, num_groups)  # [B]
    return centred


ADVANTAGES: dict[str, AdvantageFn] = {"grpo": _grpo, "dr_grpo": _dr_grpo}
"""Advantage estimators by name; see the module docstring for each one's paper."""


def _unknown(kind: str, value: object, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(str(value), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {kind} {value!r}; choose one of {valid}.{hint}")


def _check_index(name: str, index: torch.Tensor, size: int) -> None:
    if not isinstance(index, torch.Tensor) or index.ndim != 1 or index.shape[0] != size:
        shape = tuple(index.shape) if isinstance(index, torch.Tensor) else type(index).__name__
        raise ValueError(
            f"{name} has shape {shape}; pass a 1-D tensor with one entry per reward ({size},)."
        )
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise ValueError(
            f"{name} has dtype {index.dtype}; pass integer ids (e.g. `{name}.long()`)."
        )


def _check_rewards(rewards: torch.Tensor) -> None:
    if not isinstance(rewards, torch.Tensor) or rewards.ndim != 1:
        shape = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards)
        raise ValueError(f"rewards has shape {shape}; pass a 1-D tensor, one reward per sequence.")
    if not torch.isfinite(rewards).all():
        bad = rewards[~torch.isfinite(rewards)][0].item()
        raise ValueError(f"rewards contain {bad}; every reward must be a finite number.")


def _dense_groups(group_index: torch.Tensor, round_index: torch.Tensor | None) -> torch.Tensor:
    """Dense ids ``[0, G)`` for the keys ``group_index`` or ``(group_index, round_index)``."""
    if round_index is None:
        _, ids = torch.unique(group_index, return_inverse=True)  # [B]
    else:
        keys = torch.stack([group_index.long(), round_index.long()], dim=1)  # [B, 2]
        _, ids = torch.unique(keys, dim=0, return_inverse=True)  # [B]
    return ids


def compute_advantages(
    rewards: torch.Tensor,
    group_index: torch.Tensor,
    round_index: torch.Tensor | None = None,
    *,
    estimator: str = "dr_grpo",
    baseline: str = "pooled",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Per-sequence advantages, each relative to its group's rewards.

    Args:
        rewards: ``[B]`` rewards (0/1 or any finite floats).
        group_index: ``[B]`` integer problem id of each sequence (any values, need not be dense).
        round_index: ``[B]`` integer round (0-based) of each sequence; needed for
            ``baseline="round"``, ignored by ``baseline="pooled"``.
        estimator: A key of ``ADVANTAGES``: ``"dr_grpo"`` (default) or ``"grpo"``.
        baseline: ``"pooled"`` (group = problem) or ``"round"`` (group = problem and round).
        eps: Added to the std in ``"grpo"`` so near-constant groups do not blow up; ``>= 0``.

    Returns:
        ``[B]`` float32 advantages on ``rewards``' device, without gradient. Groups whose
        rewards are all equal get exactly 0.

    Raises:
        ValueError: Unknown ``estimator`` or ``baseline`` (with a suggestion), tensors that are
            not 1-D of one length, non-integer indices, non-finite rewards, a negative ``eps``,
            or ``baseline="round"`` without ``round_index``.
    """
    if estimator not in ADVANTAGES:
        raise _unknown("estimator", estimator, sorted(ADVANTAGES))
    if baseline not in BASELINES:
        raise _unknown("baseline", baseline, list(BASELINES))
    if not eps >= 0:
        raise ValueError(f"eps={eps!r} must be >= 0 (it keeps the GRPO denominator positive).")
    _check_rewards(rewards)
    _check_index("group_index", group_index, rewards.shape[0])
    if baseline == "round":
        if round_index is None:
            raise ValueError(
                'baseline="round" needs round_index (the 0-based round of each sequence); '
                'pass it, or use baseline="pooled".'
            )
        _check_index("round_index", round_index, rewards.shape[0])
    if rewards.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float32, device=rewards.device)

    with torch.no_grad():
        keys_round = round_index if baseline == "round" else None
        ids = _dense_groups(group_index, keys_round)  # [B]
        num_groups = int(ids.max()) + 1
        r = rewards.double()  # [B]; float64 so 0/1 means and the all-equal test are exact
        adv = ADVANTAGES[estimator](r, ids, num_groups, eps=eps)  # [B]
        constant = _constant_groups(r, ids, num_groups)[ids]  # [B]
        adv = torch.where(constant, torch.zeros_like(adv), adv)  # [B]
    return adv.float()


def group_stats(rewards: torch.Tensor, group_index: torch.Tensor) -> dict[str, float]:
    """How much learning signal the groups carry.

    Args:
        rewards: ``[B]`` rewards.
        group_index: ``[B]`` integer group id of each sequence (a problem id; for per-round
            groups pass a combined id such as ``group_index * m + round_index``).

    Returns:
        ``"reward/group_std_mean"``: the mean over groups of each group's population std of
        rewards; ``"reward/zero_std_fraction"``: the fraction of groups whose rewards are all
        equal (they get zero advantage, so they teach nothing).

    Raises:
        ValueError: Tensors that are not 1-D of one length, non-integer ids, non-finite
            rewards, or an empty batch (there are no groups to describe).
    """
    _check_rewards(rewards)
    _check_index("group_index", group_index, rewards.shape[0])
    if rewards.shape[0] == 0:
        raise ValueError("rewards is empty; group_stats needs at least one sequence.")
    with torch.no_grad():
        ids = _dense_groups(group_index, None)  # [B]
        num_groups = int(ids.max()) + 1
        r = rewards.double()  # [B]
        _, std = _group_moments(r, ids, num_groups)  # [B]
        group_std = r.new_zeros(num_groups).scatter(0, ids, std)  # [G]
        constant = _constant_groups(r, ids, num_groups)  # [G]
    return {
        "reward/group_std_mean": float(group_std.mean()),
        "reward/zero_std_fraction": float(constant.double().mean()),
    }
