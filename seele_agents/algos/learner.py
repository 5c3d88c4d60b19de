"""What every policy-gradient learner shares: the update loop around a clipped surrogate.

A learner turns one :class:`~seele_agents.training.rollout.RolloutBatch` into optimiser updates.
:class:`PolicyLearner` does the part all of ours have in common:

1. :meth:`PolicyLearner.prepare` (the subclass's part): advantages (one per sequence, or one per
   generated token), the sampling policy's log-probs where needed, the reference log-probs and
   any per-row targets of extra losses (e.g. PPO's value targets), all without gradients;
2. ``epochs`` passes over the batch in minibatches of ``minibatch_size`` sequences, one
   optimiser update each, gradients accumulated over micro-batches of ``micro_batch_size``
   sequences and clipped to ``max_grad_norm``. Each micro-batch's loss is
   :func:`~seele_agents.algos.losses.policy_loss` (clipped surrogate on generated tokens, hint
   imitation on hint tokens, and the k3 KL when the learner keeps the KL in the loss) plus the
   subclass's :meth:`PolicyLearner.extra_loss`;
3. one scheduler step.

Learners: :class:`~seele_agents.algos.grpo.GRPOLearner` (group advantages, KL in the loss),
:class:`~seele_agents.algos.ppo.PPOLearner` (a value head, GAE, KL in the reward) and
:class:`~seele_agents.algos.reinforcepp.ReinforcePPLearner` (no critic, whitened returns, KL in the
reward). A new one subclasses :class:`PolicyLearner` and implements :meth:`prepare`; the training
loop only calls :meth:`step`, :meth:`state_dict` and :meth:`load_state_dict`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from seele_agents.algos.advantages import group_stats
from seele_agents.algos.losses import policy_loss
from seele_agents.training.distributed import (
    World,
    all_reduce_gradients,
    all_reduce_sum,
    current,
    is_sharded,
)
from seele_agents.training.rollout import RolloutBatch

__all__ = ["PolicyLearner", "Targets", "logprobs_from_logits", "token_logprobs"]


def logprobs_from_logits(
    logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``[B, T-1]`` float32 log-probs of ``input_ids[:, 1:]`` from ``[B, T, V]`` logits."""
    logits = logits[:, :-1].float()
    if temperature not in (0, 1):
        logits = logits / temperature
    targets = input_ids[:, 1:, None]  # [B, T-1, 1]
    return logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(-1)  # [B, T-1]


def token_logprobs(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``log pi(token_t | tokens_<t)`` for t = 1..T-1, under the sampling temperature.

    Returns:
        ``[B, T-1]`` float32; column ``t-1`` is the log-prob of ``input_ids[:, t]``.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # [B, T, V]
    return logprobs_from_logits(logits, input_ids, temperature)


@dataclass
class Targets:
    """What :meth:`PolicyLearner.prepare` hands the update loop (no gradients anywhere).

    Attributes:
        advantages: ``[B]`` one per sequence, or ``[B, T-1]`` one per token (aligned with
            :func:`token_logprobs`; only generated tokens are read).
        old_logp: ``[B, T-1]`` log-probs under the policy that sampled the batch; ``None`` when
            the update is on-policy (one epoch, one minibatch: the ratio is then exactly 1).
        ref_logp: ``[B, T-1]`` reference log-probs for a KL term *in the loss*; ``None``: none.
        extra: ``[B, T-1]`` tensors that :meth:`PolicyLearner.extra_loss` reads, sliced to
            each micro-batch's rows and width (e.g. PPO's value targets).
        metrics: Scalars to report for the step.
    """

    advantages: torch.Tensor
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class PolicyLearner:
    """Base class: the clipped-surrogate update loop; subclasses supply :meth:`prepare`.

    Args:
        model: The policy (a transformers causal LM, or a peft model).
        optimizer: Its optimiser (and that of any extra module, e.g. a value head).
        scheduler: Optional LR scheduler, stepped once per :meth:`step`.
        ref_model: The frozen reference for the KL term. Default: a frozen copy of ``model`` as
            it is now (for a peft model: the same model with its adapters disabled). Unused
            when ``beta == 0``.
        loss_type: ``"dr_grpo"``, ``"grpo"`` or ``"dapo"``: how token terms are normalised
            (:data:`~seele_agents.algos.losses.LOSS_TYPES`).
        epsilon_low: Lower clip range of the ratio.
        epsilon_high: Upper clip range (``None``: the loss type's default).
        beta: Weight of the KL to the reference model (in the loss or in the reward, as the
            learner says).
        gamma: Weight of the hint imitation term.
        epochs: Passes over each rollout batch.
        minibatch_size: Sequences per optimiser update (0: the whole batch).
        micro_batch_size: Sequences per forward/backward pass.
        max_grad_norm: Gradient clipping norm (0: no clipping).
        max_new_tokens: The generation limit (Dr.GRPO's constant normaliser).
        temperature: The sampling temperature (log-probs are taken under it).
        world: The processes training together (default: the running process group, or this
            process alone). With several, each rank's batch is its shard of the global batch,
            ``minibatch_size`` counts global sequences (a multiple of the world size), losses
            are normalised by global counts and gradients summed over ranks before clipping,
            so every rank takes the step one process would take on the whole batch. A model
            sharded by :func:`~seele_agents.training.distributed.shard_model` (FSDP) averages its
            gradients itself; the loss is then scaled by the world size to keep the sum.
    """

    name: ClassVar[str] = "policy"
    kl_in_reward: ClassVar[bool] = False
    """True: the KL to the reference is paid in the token rewards, not added to the loss."""

    def __init__(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        ref_model: Any = None,
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
        world: World | None = None,
    ) -> None:
        for name, value in (("epochs", epochs), ("micro_batch_size", micro_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an int >= 1.")
        if not isinstance(minibatch_size, int) or minibatch_size < 0:
            raise ValueError(f"minibatch_size={minibatch_size!r} must be an int >= 0.")
        self.world = world or current()
        self.loss_scale = float(self.world.size) if is_sharded(model) else 1.0
        if minibatch_size % self.world.size:
            raise ValueError(
                f"minibatch_size={minibatch_size} is not a multiple of the {self.world.size} "
                "processes; each takes an equal share of a minibatch (0 = the whole batch)."
            )
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.loss_type = loss_type
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

    # -- what subclasses provide --------------------------------------------------------------

    def prepare(
        self, batch: RolloutBatch, ids: torch.Tensor, attn: torch.Tensor, gen: torch.Tensor
    ) -> Targets:
        """Advantages and other targets for ``batch`` (``gen`` is ``[B, T-1]``, aligned with
        :func:`token_logprobs`)."""
        raise NotImplementedError

    def forward(
        self, ids: torch.Tensor, attn: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(token log-probs [B, T-1], anything extra_loss needs or None)`` under the policy."""
        return token_logprobs(self.model, ids, attn, self.temperature), None

    def extra_loss(
        self,
        output: torch.Tensor | None,
        extra: dict[str, torch.Tensor],
        gen: torch.Tensor,
        counts: dict[str, int],
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """A loss added to the policy loss for one micro-batch (``None``: nothing)."""
        return None, {}

    def state_dict(self) -> dict[str, Any]:
        """The learner's own state beyond the model and optimiser (e.g. a value head)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    # -- the update ----------------------------------------------------------------------------

    def local_minibatch(self, rows: int) -> int:
        """Rows of this rank's ``rows`` per optimiser update."""
        return min(self.minibatch_size // self.world.size or rows, rows)

    def on_policy(self, rows: int) -> bool:
        """One epoch over one minibatch of ``rows``: the policy updated is the one that sampled."""
        return self.epochs == 1 and self.local_minibatch(rows) >= rows

    def step(self, batch: RolloutBatch) -> dict[str, float]:
        """Update the policy on one rollout batch; returns ``loss/*``, ``clip/*``, ... metrics."""
        device = next(self.model.parameters()).device
        rows = len(batch)
        ids = batch.input_ids.to(device)  # [B, T]
        attn = batch.attention_mask.to(device)
        gen = batch.gen_mask[:, 1:].to(device)  # [B, T-1], aligned with token_logprobs
        hint = batch.hint_mask[:, 1:].to(device)
        size = self.local_minibatch(rows)
        start = time.perf_counter()
        targets = self.prepare(batch, ids, attn, gen)
        seconds_prepare = time.perf_counter() - start

        self.model.train()
        totals: dict[str, float] = {}
        grad_norms = []
        seconds = {"forward_backward": 0.0, "optimizer": 0.0, "all_reduce": 0.0}
        for _ in range(self.epochs):
            order = torch.randperm(rows) if size < rows else torch.arange(rows)
            for mb in order.split(size):
                with _timed(seconds, "optimizer"):
                    self.optimizer.zero_grad(set_to_none=True)
                with _timed(seconds, "forward_backward"):
                    self._accumulate(mb, ids, attn, gen, hint, targets, totals)
                with _timed(seconds, "all_reduce"):
                    all_reduce_gradients(self.trainable_parameters(), self.world)
                with _timed(seconds, "optimizer"):
                    grad_norms.append(self._clip_and_step())
        with _timed(seconds, "optimizer"):
            if self.scheduler is not None:
                self.scheduler.step()
        updates = len(grad_norms)
        keys = sorted(totals)  # loss terms of globally normalised losses: they add over ranks
        summed = all_reduce_sum(torch.tensor([totals[k] for k in keys], dtype=torch.float64),
                                self.world)  # fmt: skip
        out = {key: float(value) / updates for key, value in zip(keys, summed, strict=True)}
        out.update(group_stats(batch.rewards, batch.group_index))
        out.update(targets.metrics)
        advantages = targets.advantages
        if advantages.ndim == 2:
            advantages = advantages[gen]
        out["advantage/abs_mean"] = float(advantages.abs().mean()) if advantages.numel() else 0.0
        out["grad/norm"] = sum(grad_norms) / updates
        out["optim/lr"] = float(self.optimizer.param_groups[0]["lr"])
        out["optim/updates"] = float(updates)
        out["time/reference_s"] = seconds_prepare
        out["time/forward_backward_s"] = seconds["forward_backward"]
        out["time/optimizer_s"] = seconds["optimizer"]
        out["time/all_reduce_s"] = seconds["all_reduce"]
        out["time/train_s"] = sum(seconds.values())
        return out

    def _accumulate(
        self,
        mb: torch.Tensor,
        ids: torch.Tensor,
        attn: torch.Tensor,
        gen: torch.Tensor,
        hint: torch.Tensor,
        targets: Targets,
        totals: dict[str, float],
    ) -> None:
        """Forward, loss and backward of one minibatch's rows ``mb``, in micro-batches; adds the
        loss metrics to ``totals``."""
        local = torch.tensor([len(mb), int(gen[mb].sum()), int(hint[mb].sum())])
        sequences, tokens, hint_tokens = all_reduce_sum(local, self.world).tolist()  # global
        counts = {
            "num_sequences": sequences,
            "num_tokens": tokens,
            "max_new_tokens": self.max_new_tokens,
        }
        beta_in_loss = 0.0 if self.kl_in_reward else self.beta
        for micro in mb.split(self.micro_batch_size):
            width = int(attn[micro].sum(-1).max())  # trim right padding
            logp, output = self.forward(ids[micro, :width], attn[micro, :width])
            cols = slice(0, width - 1)
            old = targets.old_logp
            ref = targets.ref_logp
            advantages = targets.advantages[micro]
            if advantages.ndim == 2:
                advantages = advantages[:, cols]
            loss, metrics = policy_loss(
                logp, logp.detach() if old is None else old[micro, cols], advantages,
                gen[micro, cols], hint_mask=hint[micro, cols],
                ref_logp=None if ref is None else ref[micro, cols],
                loss_type=self.loss_type, epsilon_low=self.epsilon_low,
                epsilon_high=self.epsilon_high, beta=beta_in_loss, gamma=self.gamma,
                num_hint_tokens=hint_tokens, **counts,
            )  # fmt: skip
            sliced = {k: v[micro][:, cols] for k, v in targets.extra.items()}
            extra, extra_metrics = self.extra_loss(output, sliced, gen[micro, cols], counts)
            if extra is not None:
                loss = loss + extra
                metrics["loss/total"] = loss.detach()
            (loss * self.loss_scale if self.loss_scale != 1 else loss).backward()
            for key, value in {**metrics, **extra_metrics}.items():
                totals[key] = totals.get(key, 0.0) + float(value)

    def batch_sum(self) -> Any:
        """For statistics of the *global* batch (e.g. whitening): a function summing a tensor
        over ranks in place, or ``None`` in a single process."""
        if self.world.size == 1:
            return None
        return lambda tensor: all_reduce_sum(tensor, self.world)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimiser updates (those that require gradients)."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        return [p for p in params if p.requires_grad]

    def _clip_and_step(self) -> float:
        params = self.trainable_parameters()
        # An infinite limit measures the norm and scales nothing (max_grad_norm 0: no clipping).
        norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm or float("inf"))
        if hasattr(norm, "full_tensor"):  # FSDP: a sharded norm
            norm = norm.full_tensor()
        self.optimizer.step()
        return float(norm)

    # -- passes without gradients ---------------------------------------------------------------

    @torch.no_grad()
    def no_grad_forward(
        self, ids: torch.Tensor, attn: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` over the whole batch in micro-batches, in eval mode, no gradients."""
        was_training = self.model.training
        self.model.eval()
        logps, outputs = [], []
        for micro in torch.arange(len(ids)).split(self.micro_batch_size):
            logp, output = self.forward(ids[micro], attn[micro])
            logps.append(logp)
            outputs.append(output)
        self.model.train(was_training)
        joined = None if outputs[0] is None else torch.cat(outputs)
        return torch.cat(logps), joined

    @torch.no_grad()
    def reference_logprobs(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """``[B, T-1]`` log-probs under the reference model (the base model for peft)."""
        model = self.ref_model if self.ref_model is not None else self.model
        context = nullcontext() if self.ref_model is not None else _adapters_disabled(model)
        was_training = model.training
        model.eval()
        parts = []
        with context:
            for micro in torch.arange(len(ids)).split(self.micro_batch_size):
                parts.append(token_logprobs(model, ids[micro], attn[micro], self.temperature))
        model.train(was_training)
        return torch.cat(parts)  # [B, T-1]


def _is_peft(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextmanager
def _timed(seconds: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``seconds[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[key] += time.perf_counter() - start


@contextmanager
def _adapters_disabled(model: Any) -> Iterator[None]:
    """The base model of a peft policy is its reference: run it with the adapters off."""
    with model.disable_adapter() if _is_peft(model) else nullcontext():
        yield
