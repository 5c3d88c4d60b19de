"""Sampling with a transformers causal LM: the default backend of the generation protocol.

Example:
    >>> from seele_agents.models.tiny import build_tiny
    >>> model, tokenizer = build_tiny(seed=0)
    >>> generator = TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=8))
    >>> request = GenerationRequest("Problem: 1 + 1\\nSolution:\\n", forced="Step 1:")
    >>> [sample] = generator.generate([request])
    >>> len(sample.completion_ids) == len(sample.logprobs) <= 8
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from seele_agents.generation.protocol import (
    GenerationRequest,
    Sample,
    SamplingParams,
    encode,
)


class TransformersGenerator:
    """Sampling with a transformers causal LM and a KV cache, batched with left padding.

    The generator shares the policy model object, so ``sync_weights()`` has nothing to copy. It
    draws random numbers from its own ``torch.Generator`` (seeded by ``seed``), whose state is
    part of a training checkpoint (:meth:`get_rng_state` / :meth:`set_rng_state`), so a resumed
    run samples the same tokens.

    Args:
        model: A causal LM (``transformers`` ``PreTrainedModel`` or a peft wrapper of one).
        tokenizer: Its tokenizer; needs ``eos_token_id`` and ``pad_token_id``.
        params: Default sampling parameters (a call may pass others).
        batch_size: Most sequences per forward pass; longer request lists are split.
        seed: Seed of the sampling RNG.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        params: SamplingParams | None = None,
        *,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("The tokenizer has no eos_token_id; generation could never stop.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be an int >= 1.")
        self.model = model
        self.tokenizer = tokenizer
        self.params = params or SamplingParams()
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        self.eos_ids = _eos_ids(model, tokenizer)
        device = next(model.parameters()).device
        self.rng = torch.Generator(device=device).manual_seed(seed)

    def get_rng_state(self) -> torch.Tensor:
        """The sampling RNG's state (for checkpoints)."""
        return self.rng.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore the sampling RNG's state."""
        self.rng.set_state(state)

    def sync_weights(self) -> None:
        """Nothing to do: the generator samples from the training model itself."""

    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams | None = None
    ) -> list[Sample]:
        """One sample per request. Requests are batched by length to limit padding."""
        params = params or self.params
        encoded = [
            (encode(self.tokenizer, r.prompt), encode(self.tokenizer, r.forced)) for r in requests
        ]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
        samples: list[Sample | None] = [None] * len(encoded)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                inputs = [encoded[i][0] + encoded[i][1] for i in chunk]
                for i, (ids, logps, reason) in zip(
                    chunk, self._sample(inputs, params), strict=True
                ):
                    prompt_ids, forced_ids = encoded[i]
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    samples[i] = Sample(prompt_ids, forced_ids, ids, text, logps, reason)
        finally:
            self.model.train(was_training)
        return [s for s in samples if s is not None]

    @torch.no_grad()
    def _sample(
        self, inputs: list[list[int]], params: SamplingParams
    ) -> list[tuple[list[int], list[float], str]]:
        device = self.rng.device
        width = max(len(x) for x in inputs)
        if width == 0:
            raise ValueError("A generation request has an empty prompt; give at least one token.")
        ids = torch.full((len(inputs), width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(inputs):  # left padding: every sequence ends at column -1
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, W]
        eos = torch.tensor(self.eos_ids, device=device)
        out_ids: list[list[int]] = [[] for _ in inputs]
        out_logps: list[list[float]] = [[] for _ in inputs]
        reasons = ["length"] * len(inputs)
        alive = torch.arange(len(inputs), device=device)  # rows still generating
        cache = None
        step_ids, step_pos = ids, positions
        for step in range(params.max_new_tokens):
            out = self.model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()  # [A, V]
            if step < params.min_new_tokens:
                logits[:, eos] = float("-inf")
            token, logp = _pick(logits, params, self.rng)  # [A], [A]
            finished = torch.isin(token, eos)  # [A]
            for row, t, lp, f in zip(alive.tolist(), token.tolist(), logp.tolist(),
                                     finished.tolist(), strict=True):  # fmt: skip
                out_ids[row].append(t)
                out_logps[row].append(lp)
                if f:
                    reasons[row] = "stop"
            if bool(finished.all()) or step == params.max_new_tokens - 1:
                break
            if bool(finished.any()):
                # Drop finished rows from the batch and the KV cache: the rest runs faster.
                keep = (~finished).nonzero().squeeze(-1)  # [A']
                cache.batch_select_indices(keep)
                alive, token, mask, step_pos = alive[keep], token[keep], mask[keep], step_pos[keep]
            step_ids = token[:, None]  # [A, 1]
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        return [(out_ids[r], out_logps[r], reasons[r]) for r in range(len(inputs))]


def _pick(
    logits: torch.Tensor, params: SamplingParams, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample (or take the argmax of) one token per row; its log-prob under that distribution."""
    if params.temperature == 0:
        token = logits.argmax(dim=-1)
        return token, torch.zeros_like(token, dtype=torch.float)
    logits = logits / params.temperature
    if params.top_k > 0 and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the mass before it already reaches top_p (the first one always stays).
        drop = (cumulative - sorted_logits.softmax(-1)) >= params.top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    logprobs = logits.log_softmax(dim=-1)  # [B, V]
    token = torch.multinomial(logprobs.exp(), 1, generator=rng).squeeze(-1)  # [B]
    return token, logprobs.gather(-1, token[:, None]).squeeze(-1)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end a response: the tokenizer's EOS and any in the generation config."""
    ids = {int(tokenizer.eos_token_id)}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif isinstance(config_eos, list):
        ids.update(int(i) for i in config_eos)
    return sorted(ids)
