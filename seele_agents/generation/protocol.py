"""The generation protocol: what a backend is asked for and what it returns.

A :class:`Generator` turns :class:`GenerationRequest` s (a prompt, and optionally text the
response must start with: a response-side hint) into :class:`Sample` s that carry the token ids
of each part, the decoded completion, the sampling log-prob of every generated token and why
generation stopped. After the learner updates the policy, ``sync_weights()`` makes the backend
sample from the new weights (a no-op when it shares the model object, as
:class:`~seele_agents.generation.transformers.TransformersGenerator` does).

Backends: :mod:`seele_agents.generation.transformers` (CPU or GPU) and
:mod:`seele_agents.generation.vllm` (GPU, optional, imported only when chosen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class SamplingParams:
    """How to sample.

    Attributes:
        max_new_tokens: Most tokens generated after the prompt and forced text.
        temperature: Softmax temperature; ``0`` means greedy decoding.
        top_p: Nucleus sampling mass (1.0 = off).
        top_k: Keep only the k most likely tokens (0 = off).
        min_new_tokens: End-of-sequence tokens are masked out until this many tokens have
            been generated (transformers' ``min_new_tokens``, vLLM's ``min_tokens``); ``0`` =
            off. ``min_new_tokens = max_new_tokens`` gives every completion the same length,
            as the speed benchmark's fixed-length mode needs.
    """

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_new_tokens: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens!r} must be an int >= 1.")
        if not self.temperature >= 0:
            raise ValueError(f"temperature={self.temperature!r} must be >= 0 (0 = greedy).")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p!r} must be in (0, 1].")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k={self.top_k!r} must be an int >= 0 (0 = off).")
        if not isinstance(self.min_new_tokens, int) or not (
            0 <= self.min_new_tokens <= self.max_new_tokens
        ):
            raise ValueError(
                f"min_new_tokens={self.min_new_tokens!r} must be an int in 0..max_new_tokens="
                f"{self.max_new_tokens} (0 = off)."
            )


@dataclass(frozen=True)
class GenerationRequest:
    """One sequence to generate.

    Attributes:
        prompt: The text before the response (the env's ``info["prompt"]``, or the whole
            observation when the hint sits in the prompt).
        forced: Text the response must begin with; the model continues from it. With
            ``placement="response"`` this is the hint (``info["hint_text"]``).
    """

    prompt: str
    forced: str = ""


@dataclass
class Sample:
    """One generated sequence, in tokens and text.

    The model's input was ``prompt_ids + forced_ids``; it generated ``completion_ids``.

    Attributes:
        prompt_ids: Token ids of the prompt.
        forced_ids: Token ids of the forced start of the response (hint tokens); may be empty.
        completion_ids: Generated token ids, including the end-of-sequence token if one was
            generated.
        text: The decoded completion, special tokens removed (what ``env.step`` receives).
        logprobs: Log-probability of each generated token under the distribution it was
            sampled from (after temperature / top-p / top-k), one per ``completion_ids``.
        finish_reason: ``"stop"`` (end-of-sequence generated) or ``"length"``
            (``max_new_tokens`` reached).
    """

    prompt_ids: list[int]
    forced_ids: list[int]
    completion_ids: list[int]
    text: str
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "length"


@runtime_checkable
class Generator(Protocol):
    """What the rollout needs from a generation backend."""

    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams | None = None
    ) -> list[Sample]:
        """One :class:`Sample` per request, in order (repeat a request to sample it again)."""
        ...

    def sync_weights(self) -> None:
        """Make later samples come from the policy's current weights."""
        ...


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added (prompts carry their own)."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
