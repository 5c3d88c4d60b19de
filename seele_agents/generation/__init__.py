"""Text generation behind one protocol: batched sampling with per-token log-probs.

:mod:`~seele_agents.generation.protocol` defines what a backend is asked for
(:class:`GenerationRequest`, :class:`SamplingParams`) and what it returns (:class:`Sample`);
:mod:`~seele_agents.generation.transformers` is the default backend (CPU or GPU) and
:mod:`~seele_agents.generation.vllm` the optional vLLM one (imported only when chosen). The
protocol's names and :class:`TransformersGenerator` are importable from here.
"""

from seele_agents.generation.protocol import (
    FINISH_REASONS,
    GenerationRequest,
    Generator,
    Sample,
    SamplingParams,
    encode,
)
from seele_agents.generation.transformers import TransformersGenerator

__all__ = [
    "FINISH_REASONS",
    "GenerationRequest",
    "Generator",
    "Sample",
    "SamplingParams",
    "TransformersGenerator",
    "encode",
]
